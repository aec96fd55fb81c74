"""File digests, as the manifests, model cards and the demo's stage stamps cite them."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file's bytes, read in 1 MiB blocks (a checkpoint can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
