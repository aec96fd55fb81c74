"""Reading and writing one data file: 8-bit RGB photos, 8- or 16-bit depth maps.

Every reader names the file it failed on (:class:`BadSampleError`), so a bad file in a data set of
thousands is found from the message alone. Photos are read with their EXIF orientation applied;
the checks here (bit depth, mode, pixel count, a depth map's size) are the ones a training pair
must pass, whichever layout it comes from (``training.data.layouts``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from common.io import atomic_save_image

__all__ = [
    "MAX_SAMPLE_MPX",
    "BadSampleError",
    "load_rgb",
    "array_to_tensor",
    "read_image",
    "read_depth",
    "check_depth_size",
    "write_depth_png",
]


class BadSampleError(Exception):
    """A sample that cannot be used, with the file and the reason.

    Takes one argument too, because a DataLoader re-raises a worker's exception in the main
    process as ``type(exc)(message)``; with a second required argument it would fall back to an
    anonymous RuntimeError.
    """

    def __init__(self, path: str | os.PathLike, reason: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(self.path if reason is None else f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across worker processes
        return (BadSampleError, (self.path, self.reason))


def _png_bit_depth(path: Path) -> int | None:
    """Bits per channel from a PNG's IHDR, None for other formats.

    Pillow silently truncates 16-bit-per-channel RGB PNGs to mode "RGB" 8-bit, so the mode alone
    cannot tell; the header byte can.
    """
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


# The largest image a training pair may hold: EBB!'s are 1.6 Mpx and a 12 Mpx phone photo is the
# biggest plausible input. PIL only refuses above 179 Mpx, so a 292 KB PNG that decodes to 100 Mpx
# (1.2 GB, ~10 s a read) used to be accepted and read again every epoch.
MAX_SAMPLE_MPX = 50


def _open_checked(path: Path) -> Image.Image:
    """Open and fully decode with PIL, turning every failure into a BadSampleError.

    The EXIF orientation is applied, as every viewer and ``eval.render`` do: a phone JPEG stored
    sideways with orientation 6 beside an upright ground truth would otherwise train misaligned.
    """
    if not path.is_file():
        raise BadSampleError(path, "file does not exist")
    try:
        img = Image.open(path)
        w, h = img.size  # from the header, before any decoding
        if w * h > MAX_SAMPLE_MPX * 1e6:
            raise BadSampleError(
                path,
                f"{w}x{h} is {w * h / 1e6:.0f} Mpx, more than the {MAX_SAMPLE_MPX} Mpx "
                "a training pair may have (a decompression bomb, or resize it first)",
            )
        img.load()  # decodes now, so a truncated file fails here and not later in a worker
        ImageOps.exif_transpose(img, in_place=True)  # a no-op without an orientation tag
    except BadSampleError:
        raise
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise BadSampleError(path, f"unreadable or truncated image ({type(e).__name__}: {e})") from e
    return img


def load_rgb(path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    img = _open_checked(path)
    if img.mode != "RGB":
        raise BadSampleError(
            path,
            f"expected an 8-bit RGB image, got PIL mode {img.mode!r} (grayscale, RGBA, "
            "palette, CMYK or 16-bit images are not accepted; convert to 8-bit RGB)",
        )
    bits = _png_bit_depth(path)
    if bits is not None and bits != 8:
        raise BadSampleError(path, f"expected 8 bits per channel, the PNG has {bits} (convert to 8-bit RGB)")
    return img


def array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)  # a writable copy


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """8-bit RGB file → float32 (3, H, W) in [0, 1]. Raises BadSampleError naming the file."""
    return array_to_tensor(np.asarray(load_rgb(path), dtype=np.uint8))


def _depth_array(path: Path) -> np.ndarray:
    """Decode a grayscale depth map to float32 (H, W) in [0, 1], keeping its bit depth."""
    img = _open_checked(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16).astype(np.float32) / 65535.0
    if img.mode == "I":  # some Pillow versions open 16-bit grayscale PNGs as 32-bit "I"
        bits = _png_bit_depth(path)
        arr = np.asarray(img, dtype=np.int64)
        if bits == 16 or arr.max() > 255:
            return np.clip(arr, 0, 65535).astype(np.float32) / 65535.0
        return arr.astype(np.float32) / 255.0
    if img.mode == "L":  # PyNET's original_depth: 8-bit
        return np.asarray(img, dtype=np.uint8).astype(np.float32) / 255.0
    if img.mode == "RGB":  # tolerate a grayscale map saved as RGB, but not a coloured one
        arr = np.asarray(img, dtype=np.uint8)
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all():
            return arr[..., 0].astype(np.float32) / 255.0
    raise BadSampleError(path, f"expected a grayscale depth map (8- or 16-bit), got PIL mode {img.mode!r}")


def read_depth(
    path: str | os.PathLike, size: tuple[int, int] | None = None, depth: torch.Tensor | None = None
) -> torch.Tensor:
    """Depth map → float32 (1, H, W) normalised disparity in [0, 1] (1 = near).

    ``size`` = (H, W) of the image it belongs to. A map of a different size with the same aspect
    ratio (PyNET's half-resolution ``original_depth``) is upsampled bilinearly; a different
    aspect ratio means the map belongs to another image and is rejected. ``depth``: the file's
    map already decoded (``read_depth(path)``), so that it is not decoded twice.
    """
    path = Path(path)
    if depth is None:
        if not path.is_file():
            raise BadSampleError(path, "depth map missing; write it with `python -m training.depth --data ROOT`")
        depth = torch.from_numpy(_depth_array(path))[None]  # (1, h, w)
    if size is not None and tuple(depth.shape[-2:]) != tuple(size):
        h, w = depth.shape[-2:]
        H, W = size
        if abs(h / w - H / W) > 0.02 * (H / W):
            raise BadSampleError(path, f"depth map is {w}x{h} (WxH) but the image is {W}x{H}; aspect ratios differ")
        # align_corners=False: pixel centres of the half-res map sit between full-res pixels
        depth = F.interpolate(depth[None], size=(H, W), mode="bilinear", align_corners=False)[0]
        depth = depth.clamp_(0.0, 1.0)
    return depth


def check_depth_size(
    depth_path: Path, depth_hw: tuple[int, int], image_hw: tuple[int, int], half_resolution: bool
) -> None:
    """Refuse a training pair's depth map that is not its image's size; ``half_resolution`` also accepts half.

    ``read_depth`` resamples any map with the image's aspect ratio, which the render command needs
    for a monocular estimate of any size. A training pair is stricter: a half-size map of another
    image with the same aspect used to be upscaled and trained on. Only PyNET's ``original_depth``
    folder is documented as half resolution (rounded either way, hence the 1 px).
    """
    (dh, dw), (h, w) = depth_hw, image_hw
    if (dh, dw) == (h, w) or (half_resolution and abs(dw - w / 2) <= 1 and abs(dh - h / 2) <= 1):
        return
    allowed = f"{w}x{h}" + (f" or half that ({w // 2}x{h // 2})" if half_resolution else "")
    raise BadSampleError(
        depth_path,
        f"depth map is {dw}x{dh} (WxH) but its image is {w}x{h}; a training pair's depth "
        f"must be {allowed}. Re-run `python -m training.depth` for this folder",
    )


def write_depth_png(path: str | os.PathLike, disparity: torch.Tensor | np.ndarray) -> None:
    """Write normalised disparity (H, W) or (1, H, W) in [0, 1] as a 16-bit PNG, atomically."""
    d = disparity.detach().cpu().float().numpy() if isinstance(disparity, torch.Tensor) else np.asarray(disparity)
    d = np.squeeze(d)
    if d.ndim != 2:
        raise ValueError(f"disparity for {path} must be (H, W) or (1, H, W), got shape {disparity.shape}")
    arr = np.round(np.clip(d.astype(np.float64), 0.0, 1.0) * 65535.0).astype(np.uint16)
    atomic_save_image(path, Image.fromarray(arr))  # uint16 array → mode "I;16"
