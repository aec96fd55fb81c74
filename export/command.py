"""The ``python -m export`` command line, for the tools and tests that run the exporter
(``export.compare``, ``tests.fixture_model``, the export tests): one place that spells its flags.

Kept free of heavy imports (no torch, no TensorFlow), so that building a command costs nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["export_args", "export_command"]


def export_args(
    checkpoint: str | os.PathLike,
    size: str | tuple[int, int],
    out: str | os.PathLike,
    *,
    precisions: Sequence[str] | None = None,
    converter: str | None = None,
    calib_data: str | os.PathLike | None = None,
    calib_samples: int | None = None,
    parity_data: str | os.PathLike | None = None,
    parity_samples: int | None = None,
    threads: int | None = None,
) -> list[str]:
    """``["--checkpoint", CKPT, "--size", HxW, "--out", OUT, ...]``: the arguments of
    ``export.__main__.main``. ``size`` is ``"HxW"`` or ``(H, W)``. An option left at ``None`` is not
    passed, so the exporter's own default applies (``export.__main__.build_parser``)."""
    size_arg = size if isinstance(size, str) else f"{size[0]}x{size[1]}"
    args = ["--checkpoint", str(checkpoint), "--size", size_arg, "--out", str(out)]
    options: dict[str, object] = {
        "--precisions": ",".join(precisions) if precisions is not None else None,
        "--converter": converter,
        "--calib-data": calib_data,
        "--calib-samples": calib_samples,
        "--parity-data": parity_data,
        "--parity-samples": parity_samples,
        "--threads": threads,
    }
    for flag, value in options.items():
        if value is not None:
            args += [flag, str(value)]
    return args


def export_command(
    checkpoint: str | os.PathLike, size: str | tuple[int, int], out: str | os.PathLike, **options: Any
) -> list[str]:
    """``[sys.executable, "-m", "export", *export_args(checkpoint, size, out, **options)]``: the
    exporter in a child process, with this interpreter."""
    return [sys.executable, "-m", "export", *export_args(checkpoint, size, out, **options)]
