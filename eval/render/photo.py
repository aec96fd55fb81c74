"""Photo in, bokeh out: :func:`render` and :func:`render_photo` (steps 1-5 of ``eval.render``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common.paths import REPO
from eval.photos import depth_for
from eval.runners import RendererRunner
from export.runtime import load_runner
from training.renderers import RENDERERS
from training.renderers.lens import LensParams

from .frame import choose_lens, model_frame, resize, sharp_keep, size_multiple
from .inputs import RenderError, dpt_depth, load_depth, matte_depth, name_of, open_photo

DEFAULT_MODEL = REPO / "tflite_models" / "nafnet_w8_lens_cpu" / "bokeh_fp16.tflite"
DEFAULT_SIZE = (1024, 1536)  # (H, W) for models that take any size: the shipped model's input


@dataclass
class Rendered:
    bokeh: Image.Image  # RGB, the photo's size and orientation
    photo: Image.Image  # the photo as rendered: EXIF orientation applied, RGB
    depth: np.ndarray  # (H, W) float32 disparity in [0, 1] (1 = near) that was used
    lens: LensParams  # at the model's scale: K in pixels of the model's input
    scale: float  # model pixels per photo pixel


def load_model(model: str | os.PathLike | None = None, num_threads: int = 2) -> Any:
    """A runner (``runner(image, depth[, lens])``, NCHW float32) for a ``.tflite`` / ``.onnx`` /
    checkpoint / ``.safetensors`` file (``export.runtime.load_runner``) or a classical renderer
    by name (scatter, layered, blend); None = the shipped fp16 model."""

    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, str) and model in RENDERERS:
        return RendererRunner(model)
    try:
        return load_runner(model, num_threads=num_threads)
    except (FileNotFoundError, ValueError) as e:
        raise RenderError(str(e)) from None


def render_photo(
    photo: str | os.PathLike | Image.Image | np.ndarray,
    depth: str | os.PathLike | np.ndarray | Image.Image | None = None,
    model: Any = None,
    *,
    depth_model: Any = None,
    matte: Any = None,
    focus: Sequence[float] | None = None,
    focus_disparity: float | None = None,
    strength: float | None = None,
    dof: float | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    num_threads: int = 2,
) -> Rendered:
    """:func:`render` (its docstring gives the arguments), with the depth and lens it used (what
    the command writes)."""
    if focus is not None and focus_disparity is not None:
        raise RenderError("give focus (a point) or focus_disparity (a depth), not both")
    runner = model if callable(model) and not isinstance(model, (str, os.PathLike)) else load_model(model, num_threads)
    lens_given = any(v is not None for v in (focus, focus_disparity, strength, dof))
    if lens_given and not runner.lens_input:
        raise RenderError(f"{runner.name} reads no lens: focus, strength and dof need a lens-conditioned model")
    img = open_photo(photo)
    W, H = img.size
    if depth is not None:
        disp = load_depth(depth, (H, W), photo)
    elif depth_model is not None:
        disp = dpt_depth(img, depth_model)
    elif matte is not None and matte is not False:
        disp = matte_depth(img, matte)
    elif isinstance(photo, (str, os.PathLike)) and depth_for(Path(photo)).is_file():
        disp = load_depth(depth_for(Path(photo)), (H, W), photo)
    else:
        where = f" (looked for {depth_for(Path(photo))})" if isinstance(photo, (str, os.PathLike)) else ""
        raise RenderError(
            f"{name_of(photo)}: no depth map{where}; pass --depth FILE_OR_DIR (disparity, bright = "
            f"near), --depth-model DIR (local DPT weights, see python -m training.depth) or --matte "
            f"(a person matte: the person sharp, the rest blurred)"
        )
    rgb = np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0  # (3, H, W)

    # the model's frame: turned to the model's orientation, scaled to fit (package docstring, 2-3)
    fixed = runner.input_size is not None
    f = model_frame((H, W), runner.input_size if fixed else size, fixed, size_multiple(runner))
    turn, scale, (ch, cw), canvas, top, left = f.turn, f.scale, f.content, f.canvas, f.top, f.left
    x, d = (np.rot90(a, 1, axes=(-2, -1)) for a in (rgb, disp[None])) if turn else (rgb, disp[None])
    x = np.clip(resize(x, (ch, cw), "bicubic"), 0.0, 1.0)
    d = np.clip(resize(d, (ch, cw), "bilinear"), 0.0, 1.0)
    lens = choose_lens(d[0], disp, focus, focus_disparity, strength, dof)
    pad = ((0, 0), (top, canvas[0] - ch - top), (left, canvas[1] - cw - left))
    x_in, d_in = (np.pad(a, pad, mode="reflect")[None].astype(np.float32) for a in (x, d))  # (1, C, *canvas)
    try:
        out = runner(x_in, d_in, lens)  # a depth-only model reads no lens
    except ValueError as e:  # the runner's own input checks (sizes, lens range)
        raise RenderError(f"{name_of(photo)}: {e}") from None
    out = np.asarray(out, np.float32)[0, :, top : top + ch, left : left + cw]  # (3, ch, cw)
    if turn:
        out = np.rot90(out, -1, axes=(-2, -1))
    up = np.clip(resize(out, (H, W), "bicubic"), 0.0, 1.0)

    # the photo itself where the blur at full resolution is under a pixel (package docstring, 5);
    # a depth-only model (the paper's) reads no lens, and auto_focus's stands in for the one it learnt
    keep = sharp_keep(disp, lens, scale)[None]
    final = keep * rgb + (1.0 - keep) * up
    bokeh = Image.fromarray((final.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))
    return Rendered(bokeh, img, disp, lens, scale)


def render(
    photo: str | os.PathLike | Image.Image | np.ndarray,
    depth: str | os.PathLike | np.ndarray | Image.Image | None = None,
    model: Any = None,
    **options: Any,
) -> Image.Image:
    """The bokeh image of ``photo`` at its own size and orientation (a PIL RGB image).

    photo: a path (JPEG/PNG, EXIF orientation applied), a PIL image or an (H, W, 3) uint8 array.
    depth: disparity (bright = near) as a path, PIL image or (H, W) array of the photo as
        displayed; None = ``depth_model`` if given, else the file beside the photo
        (``<id>.depth.png``, or ``depth/<id>.png`` for ``original/<id>.jpg``).
    model: a .tflite / .onnx / checkpoint / .safetensors path, a renderer name ("scatter",
        "layered", "blend"), or a runner from :func:`load_model` (load once for many photos);
        None = the shipped ``bokeh_fp16.tflite``.

    The keyword options are :func:`render_photo`'s:

    depth_model: a local DPT weights folder, or ``training.depth.load_dpt(...)``'s result.
    matte: no depth map: a person matte as the depth (True, a prepared model's path, or an
        ``eval.matte.PersonMatte``); the person stays sharp and the rest is blurred.
    focus: (x, y), fractions of the width and height: focus on the depth there.
    focus_disparity: d_f itself, in [0, 1]. strength: K, blur radius in pixels of the model's
        input per unit of disparity. dof: half-width of the sharp band, in disparity.
    size: (H, W) to run checkpoints and renderers at (an exported model has its own).
    num_threads: CPU threads of the runtime.
    Raises :class:`RenderError` (a ValueError) naming the file and the problem.
    """
    return render_photo(photo, depth, model, **options).bokeh
