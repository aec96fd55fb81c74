"""Where a photo goes in the model's input, which lens it gets, and where the photo itself is kept.

Steps 2-5 of ``eval.render`` (its package docstring). The web page (``web_demo/photo.js``) and the
app (``ImageOps.kt``) port these functions; their tests compare the ports with them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.renderers.lens import LensParams, auto_focus, blur_radius

from .inputs import RenderError

# Blur radius (px at the photo's resolution) below which the photo itself is kept, fading to the
# model's output at the second value: under ~1 px a blur is invisible, and the photo has the detail.
SHARP_RADIUS = (0.5, 1.5)
FOCUS_WINDOW = 0.02  # tap-to-focus: median depth in a square this share of the photo's short side


def resize(x: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """(C, h, w) float32 → (C, H, W); antialiased when it shrinks."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    t = torch.from_numpy(np.ascontiguousarray(x))[None]
    return F.interpolate(t, size=size, mode=mode, align_corners=False, antialias=True)[0].numpy()


def size_multiple(runner: Any) -> int:
    """What the sides of a model's input must be multiples of (a checkpoint's generator says; 16 otherwise)."""
    generator = getattr(runner, "generator", None)
    return int(getattr(generator, "multiple", 16))


def _tap_disparity(depth: np.ndarray, focus: Sequence[float]) -> float:
    """Tap to focus at fractions (x, y) of the width and height: the median depth in a square
    FOCUS_WINDOW of the short side around it."""
    x, y = (float(v) for v in focus)
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise RenderError(f"focus {x},{y}: X and Y are fractions of the width and height, in [0, 1]")
    H, W = depth.shape
    half = max(1, round(FOCUS_WINDOW * min(H, W) / 2))
    cy, cx = min(round(y * (H - 1)), H - 1), min(round(x * (W - 1)), W - 1)
    return float(np.median(depth[max(cy - half, 0) : cy + half + 1, max(cx - half, 0) : cx + half + 1]))


@dataclass(frozen=True)
class Frame:
    """Where a photo of (H, W) goes in the model's input (``eval/render/__init__.py``, steps 2-3)."""

    turn: bool  # turned by 90° (np.rot90 k=1) into the model's orientation, and back (k=-1) after
    scale: float  # model pixels per photo pixel
    content: tuple[int, int]  # (ch, cw): the photo's size in the model's input
    canvas: tuple[int, int]  # the model's input size
    top: int  # reflection padding above and to the left of the content
    left: int


def model_frame(
    photo_size: tuple[int, int], model_size: tuple[int, int], fixed: bool = True, multiple: int = 16
) -> Frame:
    """The frame of a (H, W) photo in a (mh, mw) model input; for a model that takes any size
    (``fixed=False``) the canvas is the content rounded up to ``multiple``. The web page
    (``web_demo/photo.js``) and the app (``ImageOps.kt``) mirror this; tests compare them."""
    H, W = photo_size
    mh, mw = model_size
    turn = (H > W and mw > mh) or (W > H and mh > mw)
    h, w = (W, H) if turn else (H, W)
    scale = min(mh / h, mw / w)
    ch, cw = min(mh, max(1, round(h * scale))), min(mw, max(1, round(w * scale)))
    canvas = (mh, mw) if fixed else (math.ceil(ch / multiple) * multiple, math.ceil(cw / multiple) * multiple)
    return Frame(turn, scale, (ch, cw), canvas, (canvas[0] - ch) // 2, (canvas[1] - cw) // 2)


def sharp_keep(disp: np.ndarray, lens: LensParams, scale: float) -> np.ndarray:
    """(H, W) weight of the photo itself in the result: 1 where the lens's blur radius at the
    photo's resolution (``blur_radius / scale``) is under SHARP_RADIUS[0] px, 0 above [1], a
    smoothstep between (``eval/render/__init__.py``, step 5)."""
    r = blur_radius(torch.from_numpy(np.asarray(disp, np.float32)), lens).numpy() / scale
    lo, hi = SHARP_RADIUS
    t = np.clip((hi - r) / (hi - lo), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def choose_lens(
    depth_model_scale: np.ndarray,
    depth: np.ndarray,
    focus: Sequence[float] | None = None,
    focus_disparity: float | None = None,
    strength: float | None = None,
    dof: float | None = None,
) -> LensParams:
    """auto_focus of the depth at the model's scale, each given value replacing its own
    (``eval/render/__init__.py``, step 4). ``focus`` is tapped on ``depth`` at the photo's resolution."""
    lens = auto_focus(depth_model_scale)
    d_f = _tap_disparity(depth, focus) if focus is not None else focus_disparity
    changes = {k: v for k, v in (("d_f", d_f), ("K", strength), ("dof", dof)) if v is not None}
    try:
        return dataclasses.replace(lens, **{k: float(v) for k, v in changes.items()})
    except (TypeError, ValueError) as e:
        raise RenderError(str(e)) from None
