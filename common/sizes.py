"""``HEIGHTxWIDTH`` image sizes on command lines (synth, export, eval, benchmarks, fixtures)."""

from __future__ import annotations

import argparse

__all__ = ["MAX_SIZE_MPX", "SizeError", "parse_size"]

# The largest model input accepted: a 12 Mpx phone photo at full resolution (3008x4000 in multiples
# of 16). The export held ~1.7 GiB per Mpx (2.6 GiB at 1024x1536), so 12 Mpx already needs ~20 of
# the build machines' 24 GiB; a larger size used to end in an allocator traceback minutes in.
MAX_SIZE_MPX = 12.5


class SizeError(ValueError, argparse.ArgumentTypeError):
    """A ValueError for callers, and an ArgumentTypeError so that argparse prints its message
    (for a plain ValueError from a ``type=`` function it prints only "invalid value")."""


def parse_size(text: str, multiple: int = 16, max_mpx: float | None = MAX_SIZE_MPX) -> tuple[int, int]:
    """``"1024x1536"`` → (1024, 1536) = (H, W); both positive multiples of ``multiple`` (the
    generator downsamples 4 times, hence 16), at most ``max_mpx`` megapixels in all (None: no cap)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SizeError(f"size {text!r}: expected HEIGHTxWIDTH, e.g. 1024x1536") from None
    if h <= 0 or w <= 0 or h % multiple or w % multiple:
        raise SizeError(f"size {text!r}: height and width must be positive multiples of {multiple}")
    if max_mpx is not None and h * w > max_mpx * 1e6:
        raise SizeError(
            f"size {text!r}: {h * w / 1e6:.0f} Mpx, more than the {max_mpx:g} Mpx this "
            "project runs a model at (the phone model is 1024x1536, 1.6 Mpx)"
        )
    return h, w
