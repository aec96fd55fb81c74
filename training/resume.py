"""A resume continues one run: ``--ckpt_path`` with model settings that differ from the
checkpoint's is an error that names each value (``BokehGAN.on_load_checkpoint`` calls it)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

__all__ = ["RESUME_MAY_CHANGE", "ResumeMismatchError", "check_resumed_hparams"]


# Settings a resumed run may change: how fast a step runs, or where a file lives, not what a step
# computes (init_generator only seeds a fresh run; a resume loads every weight from the checkpoint).
RESUME_MAY_CHANGE = frozenset(
    {"channels_last", "compile", "fused_adam", "num_sample_images", "vgg_weights", "init_generator"}
)


class ResumeMismatchError(ValueError):
    """``--ckpt_path`` given with model settings that differ from the checkpoint's."""


def _plain(v: Any) -> Any:
    """YAML, the CLI and a checkpoint spell a sequence as a list or a tuple (1 == 1.0 already)."""
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def check_resumed_hparams(
    hparams: dict[str, Any], module: type, checkpoint: dict[str, Any], ckpt_path: str | None
) -> None:
    """Raise ResumeMismatchError when ``hparams`` (``module``'s settings now) differ from the checkpoint's.

    Lightning's CLI used to replace every ``model.*`` value of the YAML and the command line with
    the checkpoint's, silently: ``--config stage2.yaml --ckpt_path <stage-1 ckpt>`` trained stage 1
    again into runs/stage2. ``training.__main__`` no longer does, and this makes a difference an
    error that names each value. ``RESUME_MAY_CHANGE`` lists what may differ.
    """

    saved = checkpoint.get("hyper_parameters") or {}
    defaults = {k: p.default for k, p in inspect.signature(module.__init__).parameters.items() if k != "self"}
    diffs = []
    for key, now in hparams.items():
        if key in RESUME_MAY_CHANGE or key not in defaults:
            continue
        then = saved.get(key, defaults[key])  # a key added after the checkpoint had its default then
        if _plain(then) != _plain(now):
            diffs.append((key, then, now))
    if not diffs:
        return
    path = Path(ckpt_path) if ckpt_path else None
    where = f"{path}: " if path else ""
    listed = ", ".join(f"model.{k}={_plain(a)!r} (config: {_plain(b)!r})" for k, a, b in diffs[:6])
    more = f" and {len(diffs) - 6} more" if len(diffs) > 6 else ""
    hint = ""
    if not saved.get("adv_weight") and hparams.get("adv_weight"):
        hint = " It is a stage-1 checkpoint and the config is stage 2's."
    run_config = path.parent.parent / "config.yaml" if path else None
    own = f" (--config {run_config})" if run_config is not None and run_config.is_file() else ""
    raise ResumeMismatchError(
        f"{where}--ckpt_path resumes the run this checkpoint belongs to, but it was trained with {listed}{more}."
        f"{hint} To resume, use the run's own settings{own}; to start a new run from its weights, pass "
        f"--model.init_generator {path or 'CKPT'} instead of --ckpt_path."
    )
