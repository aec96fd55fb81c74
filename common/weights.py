"""Where pretrained weight files are looked for: nothing is downloaded at run time (no network on
the build machines), so each loader finds a local file or says which file is missing and where to
put it.

Order: an explicit path, else the file named by an environment variable, else the defaults:
torchvision's cache ``$TORCH_HOME/hub/checkpoints/<file>`` and the repo's ``weights/<file>``.
An explicit path or a set variable is the only candidate: a typo there must not silently fall
back to some other copy.

``TORCH_HOME`` defaults as in ``torch.hub``: ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from common.paths import REPO

__all__ = ["REPO_WEIGHTS", "torch_home", "repo_weights_file", "weight_candidates", "find_weights"]

REPO_WEIGHTS = REPO / "weights"  # git-ignored: a user's local copies


def torch_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"
    return Path(os.environ.get("TORCH_HOME", default)).expanduser()


def repo_weights_file(filename: str) -> Path:
    return REPO_WEIGHTS / filename  # read at call time, so a test can point REPO_WEIGHTS elsewhere


def weight_candidates(
    filename: str, explicit: str | os.PathLike | None, env: str, defaults: Sequence[Path] | None = None
) -> list[Path]:
    """The places ``find_weights`` tries, in order (``defaults``: the torch cache, then weights/)."""
    if explicit is not None:
        return [Path(explicit).expanduser()]
    if os.environ.get(env):
        return [Path(os.environ[env]).expanduser()]
    if defaults is None:
        defaults = [torch_home() / "hub" / "checkpoints" / filename, repo_weights_file(filename)]
    return list(defaults)


def find_weights(
    filename: str, explicit: str | os.PathLike | None, env: str, defaults: Sequence[Path] | None = None
) -> tuple[Path | None, list[str]]:
    """(the first existing candidate or None, the candidates tried, each as a message names it)."""
    candidates = weight_candidates(filename, explicit, env, defaults)
    from_env = explicit is None and bool(os.environ.get(env))
    for p in candidates:
        if p.is_file():
            return p, [str(p)]
    return None, [f"{p} (from ${env})" if from_env else str(p) for p in candidates]
