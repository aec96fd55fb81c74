"""Photo in, bokeh out, at the photo's own resolution: ``python -m eval.render``.

    python -m eval.render photo.jpg --out runs/render             # depth from photo.depth.png beside it
    python -m eval.render PHOTOS_DIR --out runs/render  # a folder: <id>.jpg + <id>.depth.png
    python -m eval.render photo.jpg --depth-model weights/dpt-hybrid-midas --focus 0.5,0.4 --out runs/render
    python -m eval.render portrait.jpg --matte --out runs/render   # no depth map: the person matte (eval.matte)

    from eval.render import render
    bokeh = render("photo.jpg", "photo.depth.png")  # a PIL image of the photo's size

Writes ``<id>.bokeh.png`` (PNG: the render is what a user judges, so it is not re-compressed
lossily), ``<id>.depth.png`` (the disparity used, 16-bit, at the photo's size, so that a re-run
with ``--depth`` on it gives the same picture to 16-bit precision) and ``<id>.side_by_side.jpg`` (photo | depth | bokeh,
small). Every file is written atomically; a photo whose three files exist is skipped.

Why it lives in ``eval/``: this folder holds the commands that run a finished model on inputs
(``eval.photos`` on real photos, ``eval.controls``), and the render reuses their pieces: the
photo + depth layouts of ``eval.photos`` (``depth_for``, its renderer runner) and the atomic writer
of ``eval.evaluate``. A new top-level folder for one command would add a stage that the user does
not walk through (training → export → tflite_models → eval / android_demo).

How one photo is rendered:

1. The photo is read with its EXIF orientation applied (``ImageOps.exif_transpose``): the photo
   as it is displayed. The depth map must be in that orientation (``training.depth`` writes it
   so); it is read with ``training.data.read_depth`` (same aspect ratio or rejected, upsampled to
   the photo's size) and min-max normalised as a monocular estimate is
   (``training.depth.normalise_disparity``), or computed by DPT from local weights.
2. A photo whose orientation (portrait / landscape) differs from the model's input is turned by
   90° and turned back after. Rotation rather than padding or cropping: a portrait photo padded
   into a landscape input would use 44 % of a 1024×1536 input, and a crop would leave pixels
   without an output. Checkpoints and renderers, which take any size, are turned too, so a
   photo gets the same lens and the same picture whichever way the camera was held.
3. The photo is scaled uniformly to fit the model's input and reflection-padded to it (the
   padding is cut off after). Uniform scaling rather than stretching keeps the aperture round and
   keeps K's unit (pixels at the model's input) the same in x and y; for a 4:3 phone photo in a
   3:2 input, a stretch would make every bokeh disk an ellipse 12.5 % wider than high.
4. The lens is ``auto_focus`` of the depth at the model's scale, with the flags replacing their
   own values: ``--focus X,Y`` (tap to focus) and ``--focus-disparity`` set d_f and keep
   auto-focus's K (refocusing does not change the aperture, as in ``training.synth.refocus``),
   ``--strength`` sets K, ``--dof`` the sharp band.
5. The model's output is cut out of the padding, turned back and upsampled to the photo's size.
   Where the lens's blur radius at the photo's resolution is under ``SHARP_RADIUS`` px the photo
   itself is kept, with a soft transition: in-focus pixels keep their full-resolution detail,
   which a model run at 1024×1536 cannot give back to a 12 Mpx photo.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from common.io import atomic_save_image
from common.paths import REPO
from eval.photos import PHOTO_EXTS, RendererRunner, depth_for
from training.renderers import RENDERERS
from training.renderers.lens import LensParams, auto_focus, blur_radius

__all__ = [
    "render",
    "render_photo",
    "Rendered",
    "RenderError",
    "load_model",
    "output_paths",
    "model_frame",
    "sharp_keep",
    "main",
]

DEFAULT_MODEL = REPO / "tflite_models" / "nafnet_w8_lens_cpu" / "bokeh_fp16.tflite"
DEFAULT_SIZE = (1024, 1536)  # (H, W) for models that take any size: the shipped model's input
# The largest photo accepted. Phone sensors top out around 50 Mpx in their full-resolution mode;
# a render holds about six float copies of the photo (~3.6 GB at 50 Mpx), and a few hundred KB
# of PNG can claim 10000² pixels (a decompression bomb), so the size is checked before decoding.
MAX_PIXELS = 50_000_000
# Blur radius (px at the photo's resolution) below which the photo itself is kept, fading to the
# model's output at the second value: under ~1 px a blur is invisible, and the photo has the detail.
SHARP_RADIUS = (0.5, 1.5)
FOCUS_WINDOW = 0.02  # tap-to-focus: median depth in a square this share of the photo's short side
SIDE_BY_SIDE_HEIGHT = 512  # panel height of the side-by-side picture (smaller photos keep theirs)
SUFFIXES = {"bokeh": ".bokeh.png", "depth": ".depth.png", "side_by_side": ".side_by_side.jpg"}


class RenderError(ValueError):
    """Bad input; the message names the file and the problem in one line."""


@dataclass
class Rendered:
    bokeh: Image.Image  # RGB, the photo's size and orientation
    photo: Image.Image  # the photo as rendered: EXIF orientation applied, RGB
    depth: np.ndarray  # (H, W) float32 disparity in [0, 1] (1 = near) that was used
    lens: LensParams  # at the model's scale: K in pixels of the model's input
    scale: float  # model pixels per photo pixel


# ----------------------------------------------------------------------------- inputs


def _name(x: Any) -> str:
    return str(x) if isinstance(x, (str, os.PathLike)) else f"<{type(x).__name__}>"


def _check_pixels(path: Path | str, size: tuple[int, int], what: str) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise RenderError(
            f"{path}: {what} is {w}x{h} = {w * h / 1e6:.0f} Mpx, over the {MAX_PIXELS / 1e6:.0f} Mpx "
            f"limit (eval.render.MAX_PIXELS); downscale it first"
        )


def open_photo(photo: str | os.PathLike | Image.Image | np.ndarray) -> Image.Image:
    """The photo as displayed: EXIF orientation applied, RGB. Checked for size before decoding."""
    if isinstance(photo, np.ndarray):
        if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
            raise RenderError(f"photo array must be (H, W, 3) uint8, got {photo.shape} {photo.dtype}")
        photo = Image.fromarray(photo)
    if isinstance(photo, Image.Image):
        img, name = photo, "<image>"
    else:
        name = str(photo)
        path = Path(photo)
        if not path.is_file():
            raise RenderError(f"{path}: no such file")
        try:
            img = Image.open(path)  # reads the header only
        except Image.DecompressionBombError as e:
            raise RenderError(f"{path}: {e}") from None
        except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError...
            raise RenderError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    _check_pixels(name, img.size, "the photo")
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr"):
        raise RenderError(f"{name}: PIL mode {img.mode!r} (16-bit or float) is not a photo; save it as 8-bit RGB")
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except Exception as e:  # truncated data, or EXIF PIL cannot parse
        raise RenderError(f"{name}: unreadable or truncated image ({type(e).__name__}: {e})") from None
    return img.convert("RGB")


def _orientation(photo: Any) -> int:
    try:
        with Image.open(photo) as img:
            return int(img.getexif().get(0x0112, 1))
    except Exception:
        return 1


def load_depth(
    depth: str | os.PathLike | np.ndarray | Image.Image, size: tuple[int, int], photo: Any = None
) -> np.ndarray:
    """(H, W) float32 disparity in [0, 1] for a photo of ``size`` = (H, W), min-max normalised.

    A file goes through ``training.data.read_depth`` (8- or 16-bit grayscale; another size with
    the same aspect ratio is upsampled bilinearly, another aspect ratio rejected)."""
    from training.data import BadSampleError, read_depth
    from training.depth import normalise_disparity

    H, W = size
    if isinstance(depth, (str, os.PathLike)):
        path = Path(depth)
        if not path.is_file():
            raise RenderError(f"{path}: depth map not found")
        try:
            with Image.open(path) as img:
                _check_pixels(path, img.size, "the depth map")
            d = read_depth(path, (H, W))[0]
        except BadSampleError as e:
            hint = ""
            if "aspect" in str(e) and _orientation(photo) in (5, 6, 7, 8):
                hint = " (the photo is turned by its EXIF orientation; the depth map must be of the photo as displayed)"
            raise RenderError(f"{e}{hint}") from None
        except Image.DecompressionBombError as e:
            raise RenderError(f"{path}: {e}") from None
        except Exception as e:
            raise RenderError(f"{path}: not a readable depth map ({type(e).__name__}: {e})") from None
    else:
        arr = np.asarray(depth)
        if arr.ndim != 2:
            raise RenderError(f"depth array must be (H, W), got shape {arr.shape}")
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(arr.dtype, 1.0)
        d = torch.from_numpy(arr.astype(np.float32) / scale)
        if tuple(d.shape) != (H, W):
            h, w = d.shape
            if abs(h / w - H / W) > 0.02 * (H / W):
                raise RenderError(f"depth array is {w}x{h} (WxH) but the photo is {W}x{H}; aspect ratios differ")
            d = F.interpolate(d[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    if not torch.isfinite(d).all():
        raise RenderError(f"{_name(depth)}: depth contains NaN or inf")
    return normalise_disparity(d).numpy().astype(np.float32)


def dpt_depth(img: Image.Image, depth_model: Any) -> np.ndarray:
    """Disparity of ``img`` from DPT: ``depth_model`` is a local weights folder or
    ``training.depth.load_dpt``'s result (load it once for many photos)."""
    from training.depth import load_dpt, predict_disparity

    net, pre = load_dpt(str(depth_model)) if isinstance(depth_model, (str, os.PathLike)) else depth_model
    return predict_disparity(net, pre, [img], "cpu")[0].numpy().astype(np.float32)


def matte_depth(img: Image.Image, matte: Any = True) -> np.ndarray:
    """The person matte as disparity (person = 1 = near; ``eval.matte``). ``matte``: True (the
    prepared model in web_demo/matte/), a model path, or a loaded ``eval.matte.PersonMatte``."""
    from eval.matte import MatteError, PersonMatte

    try:
        runner = matte if isinstance(matte, PersonMatte) else PersonMatte(None if matte is True else matte)
    except MatteError as e:
        raise RenderError(str(e)) from None
    return runner(img)


# ----------------------------------------------------------------------------- model


def load_model(model: str | os.PathLike | None = None, num_threads: int = 2) -> Any:
    """A runner (``runner(image, depth[, lens])``, NCHW float32) for a ``.tflite`` / ``.onnx`` /
    checkpoint / ``.safetensors`` file (``export.runtime.load_runner``) or a classical renderer
    by name (scatter, layered, blend); None = the shipped fp16 model."""
    from export.runtime import load_runner

    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, str) and model in RENDERERS:
        return RendererRunner(model)
    try:
        return load_runner(model, num_threads=num_threads)
    except (FileNotFoundError, ValueError) as e:
        raise RenderError(str(e)) from None


def _resize(x: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """(C, h, w) float32 → (C, H, W); antialiased when it shrinks."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    t = torch.from_numpy(np.ascontiguousarray(x))[None]
    return F.interpolate(t, size=size, mode=mode, align_corners=False, antialias=True)[0].numpy()


def _multiple(runner: Any) -> int:
    generator = getattr(runner, "generator", None)
    return int(getattr(generator, "multiple", 16))


def _tap_disparity(depth: np.ndarray, focus: Sequence[float]) -> float:
    x, y = (float(v) for v in focus)
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise RenderError(f"focus {x},{y}: X and Y are fractions of the width and height, in [0, 1]")
    H, W = depth.shape
    half = max(1, round(FOCUS_WINDOW * min(H, W) / 2))
    cy, cx = min(round(y * (H - 1)), H - 1), min(round(x * (W - 1)), W - 1)
    return float(np.median(depth[max(cy - half, 0) : cy + half + 1, max(cx - half, 0) : cx + half + 1]))


@dataclass(frozen=True)
class Frame:
    """Where a photo of (H, W) goes in the model's input (module docstring, steps 2-3)."""

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
    smoothstep between (module docstring, step 5)."""
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
    """auto_focus of the depth at the model's scale, each given value replacing its own (module
    docstring, step 4). ``focus`` is tapped on ``depth`` at the photo's resolution."""
    lens = auto_focus(depth_model_scale)
    d_f = _tap_disparity(depth, focus) if focus is not None else focus_disparity
    changes = {k: v for k, v in (("d_f", d_f), ("K", strength), ("dof", dof)) if v is not None}
    try:
        return dataclasses.replace(lens, **{k: float(v) for k, v in changes.items()})
    except (TypeError, ValueError) as e:
        raise RenderError(str(e)) from None


# ----------------------------------------------------------------------------- render


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
    """:func:`render`, with the depth and lens it used (what the command writes)."""
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
            f"{_name(photo)}: no depth map{where}; pass --depth FILE_OR_DIR (disparity, bright = "
            f"near), --depth-model DIR (local DPT weights, see python -m training.depth) or --matte "
            f"(a person matte: the person sharp, the rest blurred)"
        )
    rgb = np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0  # (3, H, W)

    # the model's frame: turned to the model's orientation, scaled to fit (module docstring, 2-3)
    fixed = runner.input_size is not None
    f = model_frame((H, W), runner.input_size if fixed else size, fixed, _multiple(runner))
    turn, scale, (ch, cw), canvas, top, left = f.turn, f.scale, f.content, f.canvas, f.top, f.left
    x, d = (np.rot90(a, 1, axes=(-2, -1)) for a in (rgb, disp[None])) if turn else (rgb, disp[None])
    x = np.clip(_resize(x, (ch, cw), "bicubic"), 0.0, 1.0)
    d = np.clip(_resize(d, (ch, cw), "bilinear"), 0.0, 1.0)
    lens = choose_lens(d[0], disp, focus, focus_disparity, strength, dof)
    pad = ((0, 0), (top, canvas[0] - ch - top), (left, canvas[1] - cw - left))
    x_in, d_in = (np.pad(a, pad, mode="reflect")[None].astype(np.float32) for a in (x, d))  # (1, C, *canvas)
    try:
        out = runner(x_in, d_in, lens.network_input().ravel()) if runner.lens_input else runner(x_in, d_in)
    except ValueError as e:  # the runner's own input checks (sizes, lens range)
        raise RenderError(f"{_name(photo)}: {e}") from None
    out = np.asarray(out, np.float32)[0, :, top : top + ch, left : left + cw]  # (3, ch, cw)
    if turn:
        out = np.rot90(out, -1, axes=(-2, -1))
    up = np.clip(_resize(out, (H, W), "bicubic"), 0.0, 1.0)

    # the photo itself where the blur at full resolution is under a pixel (module docstring, 5);
    # a depth-only model (the paper's) reads no lens, and auto_focus's stands in for the one it learnt
    keep = sharp_keep(disp, lens, scale)[None]
    final = keep * rgb + (1.0 - keep) * up
    bokeh = Image.fromarray((final.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))
    return Rendered(bokeh, img, disp, lens, scale)


def render(
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
) -> Image.Image:
    """The bokeh image of ``photo`` at its own size and orientation (a PIL RGB image).

    photo: a path (JPEG/PNG, EXIF orientation applied), a PIL image or an (H, W, 3) uint8 array.
    depth: disparity (bright = near) as a path, PIL image or (H, W) array of the photo as
        displayed; None = ``depth_model`` if given, else the file beside the photo
        (``<id>.depth.png``, or ``depth/<id>.png`` for ``original/<id>.jpg``).
    model: a .tflite / .onnx / checkpoint / .safetensors path, a renderer name ("scatter",
        "layered", "blend"), or a runner from :func:`load_model` (load once for many photos);
        None = the shipped ``bokeh_fp16.tflite``.
    depth_model: a local DPT weights folder, or ``training.depth.load_dpt(...)``'s result.
    matte: no depth map: a person matte as the depth (True, a prepared model's path, or an
        ``eval.matte.PersonMatte``); the person stays sharp and the rest is blurred.
    focus: (x, y), fractions of the width and height: focus on the depth there.
    focus_disparity: d_f itself, in [0, 1]. strength: K, blur radius in pixels of the model's
        input per unit of disparity. dof: half-width of the sharp band, in disparity.
    size: (H, W) to run checkpoints and renderers at (an exported model has its own).
    Raises :class:`RenderError` (a ValueError) naming the file and the problem.
    """
    return render_photo(
        photo,
        depth,
        model,
        depth_model=depth_model,
        matte=matte,
        focus=focus,
        focus_disparity=focus_disparity,
        strength=strength,
        dof=dof,
        size=size,
        num_threads=num_threads,
    ).bokeh


# ----------------------------------------------------------------------------- files


def output_paths(out: Path, photo_id: str) -> dict[str, Path]:
    return {k: out / f"{photo_id}{suffix}" for k, suffix in SUFFIXES.items()}


def _is_output_or_depth(p: Path) -> bool:
    return p.name.startswith(".") or any(p.name.endswith(s) for s in SUFFIXES.values())


def list_photos(source: Path, depth: Path | None) -> list[tuple[str, Path, Path | None]]:
    """(id, photo, depth file or None) for a photo file or a folder of photos (either layout of
    ``eval.photos``). ``depth``: a file (one photo) or a folder of ``<id>.depth.png`` / ``<id>.png``;
    None = the file beside each photo (``depth_for``), looked up when it is rendered."""
    if source.is_file():
        photos = [source]
    elif source.is_dir():
        folder = source / "original" if (source / "original").is_dir() else source
        photos = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_EXTS and not _is_output_or_depth(p)
        )
        if not photos:
            raise RenderError(f"{source}: no photos ({', '.join(PHOTO_EXTS)}) in it")
    else:
        raise RenderError(f"{source}: no such file or folder")
    seen: dict[str, Path] = {}
    for p in photos:
        if p.stem in seen:
            raise RenderError(f"{p}: same id as {seen[p.stem]}; their outputs would overwrite each other")
        seen[p.stem] = p
    if depth is None:
        return [(p.stem, p, None) for p in photos]
    if depth.is_dir():

        def find(p: Path) -> Path:
            for cand in (depth / f"{p.stem}.depth.png", depth / f"{p.stem}.png"):
                if cand.is_file():
                    return cand
            return depth / f"{p.stem}.depth.png"  # missing: load_depth names it

        return [(p.stem, p, find(p)) for p in photos]
    if not depth.exists():
        raise RenderError(f"{depth}: --depth file or folder not found")
    if len(photos) > 1:
        raise RenderError(
            f"--depth {depth} is one file but {source} holds {len(photos)} photos; give a folder of depth maps"
        )
    return [(photos[0].stem, photos[0], depth)]


def side_by_side(r: Rendered) -> Image.Image:
    """photo | depth | bokeh, each SIDE_BY_SIDE_HEIGHT high at most."""
    W, H = r.photo.size
    h = min(H, SIDE_BY_SIDE_HEIGHT)
    w = max(1, round(W * h / H))
    depth = Image.fromarray((r.depth * 255.0 + 0.5).astype(np.uint8)).convert("RGB")
    panels = [im.resize((w, h), Image.BICUBIC) for im in (r.photo, depth, r.bokeh)]
    sheet = Image.new("RGB", (3 * w, h))
    for i, im in enumerate(panels):
        sheet.paste(im, (i * w, 0))
    return sheet


def write_outputs(r: Rendered, paths: dict[str, Path]) -> None:
    """Each file atomically (temp file in the folder, then os.replace); the bokeh last but one and
    the side-by-side last, so a photo counts as done only when all three are whole."""
    from training.data import write_depth_png

    write_depth_png(paths["depth"], r.depth)
    atomic_save_image(paths["bokeh"], r.bokeh)
    atomic_save_image(paths["side_by_side"], side_by_side(r), format="JPEG", quality=90)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m eval.render",
        description="Render a photo (or a folder of photos) with shallow depth of field, at the photo's own "
        "resolution. Writes <id>.bokeh.png, <id>.depth.png (the depth used) and <id>.side_by_side.jpg.",
    )
    p.add_argument(
        "photos",
        type=Path,
        metavar="PHOTO_OR_DIR",
        help="a JPEG/PNG, or a folder of them (or a split folder with original/ and depth/)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--model", type=Path, help=f".tflite or .onnx model (default: {DEFAULT_MODEL.relative_to(REPO)})")
    who.add_argument("--checkpoint", type=Path, help="a PyTorch checkpoint (.ckpt/.pt) or model.safetensors")
    who.add_argument("--renderer", choices=sorted(RENDERERS), help="a classical renderer instead of a model")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--depth",
        type=Path,
        metavar="FILE_OR_DIR",
        help="disparity map (bright = near) of the photo as displayed, or a folder of <id>.depth.png / "
        "<id>.png (default: <id>.depth.png beside the photo, or depth/<id>.png for original/<id>)",
    )
    src.add_argument(
        "--depth-model",
        type=Path,
        metavar="DIR",
        help="estimate depth with DPT from these local weights (see python -m training.depth)",
    )
    src.add_argument(
        "--matte",
        action="store_true",
        help="no depth map: MediaPipe's person matte as the depth (person near, the rest far; "
        "python -m eval.matte prepare makes the model)",
    )
    focus = p.add_mutually_exclusive_group()
    focus.add_argument(
        "--focus",
        metavar="X,Y",
        help="tap to focus: X,Y as fractions of the width and height (0,0 = top left); d_f = median "
        "depth there (default: auto-focus, the 90th percentile of disparity)",
    )
    focus.add_argument("--focus-disparity", type=float, metavar="D", help="focal disparity d_f in [0, 1] (1 = near)")
    p.add_argument(
        "--strength",
        type=float,
        metavar="K",
        help="blur strength K: blur radius in pixels per unit of disparity, in pixels of the model's "
        "input (the photo scaled to fit it, e.g. 1536 px wide), not of the photo (default: "
        "auto-focus's, which blurs the farthest surface by 1.63%% of the width)",
    )
    p.add_argument(
        "--dof", type=float, help="half-width of the sharp band around d_f, in disparity, [0, 0.5] (default 0.1)"
    )
    p.add_argument(
        "--size",
        default=None,
        metavar="HxW",
        help="input size for --checkpoint and --renderer (default 1024x1536; an exported model has its own)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--overwrite", action="store_true", help="render photos whose outputs already exist again")
    return p


def _parse_focus(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise RenderError(f"--focus {text!r}: expected X,Y, e.g. 0.5,0.4") from None
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise RenderError(f"--focus {text}: X and Y are fractions of the width and height, in [0, 1]")
    return x, y


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm

    from common.sizes import parse_size
    from training.depth import DepthModelMissing, load_dpt

    args = build_parser().parse_args(argv)
    try:
        if args.out.exists() and not args.out.is_dir():
            raise RenderError(f"--out {args.out} is a file, not a folder")
        focus = _parse_focus(args.focus) if args.focus else None
        if args.size and not (args.checkpoint or args.renderer):
            raise RenderError("--size applies to --checkpoint and --renderer; an exported model has its own input size")
        try:
            size = parse_size(args.size) if args.size else DEFAULT_SIZE
        except ValueError as e:
            raise RenderError(f"--size: {e}") from None
        jobs = list_photos(args.photos, args.depth)
        for _, photo, depth in jobs:  # never write over an input
            inputs = {p.resolve() for p in (photo, depth or depth_for(photo)) if p.exists()}
            for out in output_paths(args.out, photo.stem).values():
                if out.resolve() in inputs:
                    raise RenderError(
                        f"--out {args.out}: writing {out.name} would overwrite an input; choose another folder"
                    )
        runner = load_model(args.renderer or args.checkpoint or args.model, args.threads)
        depth_model = load_dpt(str(args.depth_model)) if args.depth_model else None
        matte = None
        if args.matte:
            from eval.matte import MatteError, PersonMatte

            try:
                matte = PersonMatte(num_threads=args.threads)
            except MatteError as e:
                raise RenderError(str(e)) from None
    except (RenderError, DepthModelMissing) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    done, skipped, failed = 0, 0, 0
    bar = tqdm(jobs, desc="render", unit="photo", disable=not args.photos.is_dir())
    for photo_id, photo, depth in bar:
        paths = output_paths(args.out, photo_id)
        if not args.overwrite and all(p.is_file() for p in paths.values()):
            skipped += 1
            continue
        try:
            r = render_photo(
                photo,
                depth,
                runner,
                depth_model=depth_model,
                matte=matte,
                focus=focus,
                focus_disparity=args.focus_disparity,
                strength=args.strength,
                dof=args.dof,
                size=size,
            )
            try:
                write_outputs(r, paths)
            except OSError as e:  # disk full, permissions: the earlier files stay whole
                raise RenderError(f"{photo}: cannot write its outputs to {args.out} ({e})") from None
            done += 1
        except RenderError as e:  # one bad photo does not stop a folder; the exit status says so
            failed += 1
            tqdm.write(f"error: {e}", file=sys.stderr)
    bar.close()
    print(f"{done} rendered, {skipped} already done (--overwrite to redo), {failed} failed -> {args.out}")
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
