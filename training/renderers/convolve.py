"""FFT convolution of a cropped region, the one convolution every renderer's scatter is built on.

A blur touches only the pixels within its radius of its sources, so renderers convolve the
bounding box of what they scatter (:func:`convolve_crop`) rather than the whole image, and a large
blur, which has no fine detail, at a lower resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def fft_size(n: int) -> int:
    """Smallest 5-smooth integer >= n (FFTs of such sizes are fast; primes like 17 are not)."""
    m = max(int(n), 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def fft_convolve_full(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Full linear convolution of x (C, h, w) with a centred kernel (kh, kw), both odd sizes.

    Returns (C, h + kh - 1, w + kw - 1): output row i corresponds to input row i - kh // 2.
    """
    C, h, w = x.shape
    kh, kw = kernel.shape
    k = kernel.to(device=x.device, dtype=x.dtype)
    if kh == 1 and kw == 1:
        return x * k[0, 0]
    if kh * kw <= 49:
        # small kernels (radius <= 3): a direct convolution is cheaper than two FFTs of the crop;
        # conv2d correlates, so flip the kernel (polygons with an odd number of blades are not symmetric)
        weight = k.flip(0, 1).view(1, 1, kh, kw).expand(C, 1, kh, kw)
        return torch.nn.functional.conv2d(x[None], weight, padding=(kh - 1, kw - 1), groups=C)[0]
    fh, fw = fft_size(h + kh - 1), fft_size(w + kw - 1)
    X = torch.fft.rfft2(x, s=(fh, fw))
    Kf = torch.fft.rfft2(k, s=(fh, fw))
    y = torch.fft.irfft2(X * Kf, s=(fh, fw))
    return y[:, : h + kh - 1, : w + kw - 1]


def _place(full: torch.Tensor, ty0: int, tx0: int, H: int, W: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Clip an array whose [0, 0] sits at image (ty0, tx0) to the (H, W) image."""
    cy0, cx0 = max(ty0, 0), max(tx0, 0)
    cy1, cx1 = min(ty0 + full.shape[-2], H), min(tx0 + full.shape[-1], W)
    return full[:, cy0 - ty0 : cy1 - ty0, cx0 - tx0 : cx1 - tx0], (cy0, cy1, cx0, cx1)


def lowres_factor(radius: float, lowres_min_radius: float | None) -> int:
    """Power-of-two downscale for a blur of this radius, keeping >= lowres_min_radius px at low res."""
    if not lowres_min_radius or radius < 2 * lowres_min_radius:
        return 1
    return 2 ** int(math.floor(math.log2(radius / lowres_min_radius)))


def convolve_crop(
    crop: torch.Tensor,
    origin: tuple[int, int],
    extent: tuple[int, int],
    radius: float,
    kernel_for: Callable[[float], torch.Tensor],
    lowres_min_radius: float | None = None,
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Convolve a crop (C, h, w) whose top-left pixel sits at ``origin`` of an image of size
    ``extent`` with kernel_for(radius); everything outside the crop counts as zero.

    Returns the result clipped to the image and the region (y0, y1, x0, x1) it covers.

    A large blur has no detail finer than a few pixels, so when ``lowres_min_radius`` is set and the
    radius is at least twice it, the crop is average-pooled by a power of two f (keeping the radius
    >= lowres_min_radius at low resolution), convolved with kernel_for(radius / f) and bilinearly
    upsampled: f² fewer pixels, at the price of an edge softened by about f px. ``kernel_for`` must
    return normalised kernels (or ones whose sum does not depend on the radius) for that to keep
    the energy.
    """
    y0, x0 = origin
    H, W = extent
    f = lowres_factor(radius, lowres_min_radius)
    if f == 1:
        kernel = kernel_for(radius)
        full = fft_convolve_full(crop, kernel)
        # full row i <-> image row y0 - kh // 2 + i
        return _place(full, y0 - kernel.shape[0] // 2, x0 - kernel.shape[1] // 2, H, W)
    h, w = crop.shape[-2:]
    crop = torch.nn.functional.pad(crop, (0, -w % f, 0, -h % f))
    low = torch.nn.functional.avg_pool2d(crop[None], f)[0]
    kernel = kernel_for(radius / f)
    full_low = fft_convolve_full(low, kernel)
    full = torch.nn.functional.interpolate(full_low[None], scale_factor=f, mode="bilinear", align_corners=False)[0]
    return _place(full, y0 - (kernel.shape[0] // 2) * f, x0 - (kernel.shape[1] // 2) * f, H, W)
