"""Lightning checkpoint files that a kill cannot corrupt, and a clear error for one that is.

``AtomicCheckpointIO`` is the ``CheckpointIO`` plugin that ``python -m training`` gives every trainer
(``trainer.plugins`` in ``--print_config``). Lightning's own ``TorchCheckpointIO`` writes through an
fsspec transaction whose temp file lives in ``$TMPDIR``; when ``$TMPDIR`` is another filesystem than
``runs/`` (a tmpfs ``/tmp``, a node-local ``/tmp`` with ``runs/`` on NFS) the final "move" is a copy,
and a kill during it left a 0-byte ``last.ckpt``, once in place of the previous good one, plus a
13 MB orphan in ``$TMPDIR`` per kill. Here the temp file is written in the
checkpoint's own folder, fsynced and renamed over the old file (``common.io.atomic_write``).

Loading wraps Lightning's loader so that a truncated or foreign file stops the run with one line
that names it, instead of a bare ``EOFError`` from deep inside ``torch.load``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from common.io import atomic_write, remove_stale_temps

__all__ = ["AtomicCheckpointIO", "CheckpointFileError", "check_checkpoint_file"]


class CheckpointFileError(ValueError):
    """A checkpoint file that cannot be read: empty, truncated, or not a PyTorch checkpoint."""


def _siblings(path: Path) -> str:
    others = sorted(p.name for p in path.parent.glob("*.ckpt") if p != path and p.stat().st_size > 0)
    return f"; other checkpoints in {path.parent}: {', '.join(others)}" if others else ""


def check_checkpoint_file(path: str | os.PathLike) -> None:
    """Raise ``CheckpointFileError`` for an empty or truncated ``torch.save`` file, cheaply.

    ``torch.save`` writes a zip archive whose directory is at the end of the file, so a file cut
    short by a kill or a full disk has no readable directory. Reads the directory only.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointFileError(
            f"{path}: empty checkpoint file (0 bytes): a save was interrupted or the disk was full{_siblings(path)}"
        )
    if not zipfile.is_zipfile(path):
        raise CheckpointFileError(
            f"{path}: not a complete PyTorch checkpoint ({size} bytes, no zip directory at its "
            f"end: cut short by an interrupted save, or not a .ckpt at all){_siblings(path)}"
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with an atomic, fsynced save on local paths and a clear load error.

    Remote paths (``s3://`` and the like) keep Lightning's own save: object stores replace an
    object whole anyway.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        fs, _ = fsspec.core.url_to_fs(str(path))
        if storage_options is not None or not isinstance(fs, LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return

        atomic_write(path, lambda f: torch.save(checkpoint, f))

    def load_checkpoint(
        self, path: _PATH, map_location: Any | None = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        fs, _ = fsspec.core.url_to_fs(str(path))
        if isinstance(fs, LocalFileSystem) and Path(path).is_file():
            check_checkpoint_file(path)
            remove_stale_temps(path)  # a resume after a kill mid-save: the killed writer's temp file
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except (EOFError, zipfile.BadZipFile, pickle.UnpicklingError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointFileError(f"{path}: not a readable checkpoint ({type(e).__name__}: {first})") from e
