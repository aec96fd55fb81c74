"""Coordinate-coded images and dataset splits for the ``training.data`` tests (test_data*.py).

Images are built so that alignment is checkable by hand: R = x, G = y of the ORIGINAL pixel
(before any crop), the depth map stores x*100 + y in 16 bits, so every output pixel must agree
across image, target and depth.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.data import write_depth_png

H, W = 40, 60


def coord_image(h: int = H, w: int = W, blue: int = 7) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x, y, np.full_like(x, blue)], -1).astype(np.uint8)


def coord_depth(h: int = H, w: int = W) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 100 + y) / 65535.0).astype(np.float64)


def make_split(folder: Path, ids, ext: str = ".png", depth: bool = True, h: int = H, w: int = W) -> None:
    for sub in ("original", "bokeh"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in ids:
        Image.fromarray(coord_image(h, w, blue=7)).save(folder / "original" / f"{i}{ext}")
        Image.fromarray(coord_image(h, w, blue=200)).save(folder / "bokeh" / f"{i}{ext}")
        if depth:
            write_depth_png(folder / "depth" / f"{i}.png", coord_depth(h, w))


def check_aligned(item: dict) -> None:
    img, tgt, dep = item["image"], item["target"], item["depth"]
    x = torch.round(img[0] * 255)
    y = torch.round(img[1] * 255)
    assert torch.equal(torch.round(tgt[0] * 255), x) and torch.equal(torch.round(tgt[1] * 255), y)
    assert torch.equal(torch.round(dep[0] * 65535), x * 100 + y)


def png_16bit_rgb(path: Path, h: int = 8, w: int = 8) -> None:
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    raw = b"".join(b"\x00" + bytes(w * 6) for _ in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
