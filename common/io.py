"""Atomic file writes: the one writer every stage uses, with one permission policy.

A reader (a resumed run, the web demo, a second process) sees the old file or the new one, whole.
The bytes go to a temp file in the destination folder (``.NAME.tmp-HOST-PID``), are fsynced, and
``os.replace`` renames it over the destination: one rename within one filesystem, atomic on POSIX
(a temp file under $TMPDIR, as fsspec's transactions use, can be on another filesystem, where the
"move" is a copy that a kill leaves half done). The folder is fsynced too, so the rename survives a
power cut. A writer killed before the rename leaves its temp file; the next write of the same file
on this host deletes it (``remove_stale_temps``; ``training.checkpoint_io`` also calls it when it
loads a checkpoint).

Permissions: the file is created by ``open(..., "wb")``, so it gets what a plain write would
(0666 less the umask). Data sets, models, manifests and reports are meant to be read by other users
and served by the web demo; ``tempfile.mkstemp`` would make them owner-only (0600).
"""

from __future__ import annotations

import glob
import io
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_save_image", "remove_stale_temps"]


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-{socket.gethostname()}-"


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Delete the temp files that killed writers of ``path`` left on this host (their pid is gone)."""
    path = Path(path)
    prefix = _temp_prefix(path)
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*"):
        try:
            pid = int(tmp.name[len(prefix) :])
            os.kill(pid, 0)
        except ValueError:
            continue  # not one of ours
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Write ``path`` through ``write(file)`` so that a reader sees the old file or the new one, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = path.with_name(f"{_temp_prefix(path)}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened (some network filesystems): the rename is done anyway
        return path
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_image(path: str | os.PathLike, img: Any, format: str = "PNG", **save_kwargs: Any) -> Path:
    """Save a PIL image atomically; encoded in memory first, so a failing encoder leaves no file."""
    buf = io.BytesIO()
    img.save(buf, format=format, **save_kwargs)
    return atomic_write_bytes(path, buf.getvalue())
