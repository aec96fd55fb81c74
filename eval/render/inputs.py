"""The inputs of a render: the photo as displayed and its depth (a file, DPT or the person matte).

Every bad input is a :class:`RenderError` whose message names the file and the problem in one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from eval.matte import MatteError, PersonMatte
from training.data import BadSampleError, read_depth
from training.depth import load_dpt, normalise_disparity, predict_disparity

# The largest photo accepted. Phone sensors top out around 50 Mpx in their full-resolution mode;
# a render holds about six float copies of the photo (~3.6 GB at 50 Mpx), and a few hundred KB
# of PNG can claim 10000² pixels (a decompression bomb), so the size is checked before decoding.
MAX_PIXELS = 50_000_000


class RenderError(ValueError):
    """Bad input; the message names the file and the problem in one line."""


def name_of(x: Any) -> str:
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
        raise RenderError(f"{name_of(depth)}: depth contains NaN or inf")
    return normalise_disparity(d).numpy().astype(np.float32)


def dpt_depth(img: Image.Image, depth_model: Any) -> np.ndarray:
    """Disparity of ``img`` from DPT: ``depth_model`` is a local weights folder or
    ``training.depth.load_dpt``'s result (load it once for many photos)."""

    net, pre = load_dpt(str(depth_model)) if isinstance(depth_model, (str, os.PathLike)) else depth_model
    return predict_disparity(net, pre, [img], "cpu")[0].numpy().astype(np.float32)


def matte_depth(img: Image.Image, matte: Any = True) -> np.ndarray:
    """The person matte as disparity (person = 1 = near; ``eval.matte``). ``matte``: True (the
    prepared model in web_demo/matte/), a model path, or a loaded ``eval.matte.PersonMatte``."""

    try:
        runner = matte if isinstance(matte, PersonMatte) else PersonMatte(None if matte is True else matte)
    except MatteError as e:
        raise RenderError(str(e)) from None
    return runner(img)
