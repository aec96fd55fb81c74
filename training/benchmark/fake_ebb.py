"""Fake EBB!-size pairs on disk, for loader benchmarks where the real EBB! cannot be downloaded.

The pictures are not scenes: only their size (1536x1024) and JPEG cost resemble EBB!'s, which is
all a decoding benchmark needs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from common.io import atomic_save_image
from training.data import write_depth_png

__all__ = ["EBB_SIZE", "make_fake_ebb"]

# EBB! photos: 1536 (or 1600) x 1024 JPEGs.
EBB_SIZE = (1024, 1536)


def _smooth_field(g: torch.Generator, channels: int, coarse: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    x = torch.rand(1, channels, *coarse, generator=g)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)[0]


def _fake_ebb_sample(index: int, size: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo uint8 HxWx3, bokeh uint8 HxWx3, disparity float HxW in [0, 1]) of one fake pair.

    Smooth colour fields at several scales plus a little sensor-like noise, so that a quality-95
    JPEG is about as large (and as slow to decode) as an EBB! photo, not a noise-sized file.
    """
    h, w = size
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    photo = (
        0.55 * _smooth_field(g, 3, (6, 9), size)
        + 0.30 * _smooth_field(g, 3, (64, 96), size)
        + 0.15 * _smooth_field(g, 3, (h // 6, w // 6), size)
        + 0.02 * torch.randn(3, h, w, generator=g)
    ).clamp(0, 1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    cy, cx = (torch.rand(2, generator=g) - 0.5).tolist()
    subject = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.15)  # a near blob, 1 = near
    disparity = (0.7 * subject + 0.3 * _smooth_field(g, 1, (3, 4), size)[0]).clamp(0, 1)
    # A cheap defocus stand-in: 8x box-downsample, bilinear back up.
    blurred = F.interpolate(F.avg_pool2d(photo[None], 8), size=size, mode="bilinear", align_corners=False)[0]
    bokeh = disparity * photo + (1 - disparity) * blurred
    to8 = lambda t: (t.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return to8(photo), to8(bokeh), disparity.numpy()


def _save_jpeg_atomic(arr: np.ndarray, path: Path, quality: int) -> None:
    atomic_save_image(path, Image.fromarray(arr), format="JPEG", quality=quality)


def make_fake_ebb(
    n: int, root: str | os.PathLike, size: tuple[int, int] = EBB_SIZE, quality: int = 95, seed: int = 0
) -> Path:
    """Write ``n`` fake EBB!-size pairs in the AIM 2020 layout, for loader benchmarks only.

    ``ROOT/Training/{original,bokeh}/<i>.jpg`` (``size`` = (H, W), default 1024x1536, JPEG
    quality ``quality``) and ``ROOT/Training/depth/<i>.png`` (16-bit disparity, as
    ``python -m training.depth`` writes for real EBB!). The pictures are not scenes; only their
    size and JPEG cost resemble EBB!'s.
    """
    if n < 2:
        raise ValueError(f"--make-fake-ebb: need at least 2 pairs, got {n}")
    root = Path(root)
    t = root / "Training"
    for sub in ("original", "bokeh", "depth"):
        (t / sub).mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small element-wise work: extra threads only spin on a shared CPU
    try:
        for i in tqdm(range(n), desc=f"fake EBB! -> {t}", leave=False):
            photo, bokeh, disparity = _fake_ebb_sample(i, size, seed)
            _save_jpeg_atomic(photo, t / "original" / f"{i}.jpg", quality)
            _save_jpeg_atomic(bokeh, t / "bokeh" / f"{i}.jpg", quality)
            write_depth_png(t / "depth" / f"{i}.png", disparity)
    finally:
        torch.set_num_threads(threads)
    return root
