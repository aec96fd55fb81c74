"""DBSI: depth-aware blending of Gaussian-smoothed copies, with hand-made weights.

Dutta, "Depth-aware Blending of Smoothed Images for Bokeh Effect Generation" (AIM 2019), §3.2:

    B = W_0 * I + sum_k W_k * G_k(I),   sum_k W_k = 1 per pixel          (eq. 1-2)

with G_k Gaussian blurs of kernel size 25, 45 and 75. In the paper the weights come from a network
(MegaDepth with a softmax head); here they come from the lens model instead: each pixel's blur radius
r = K |d - d_f| (BokehMe eq. 1) is placed between the "equivalent radii" of the blur levels (level 0,
the original, has radius 0) and split between the two neighbours so that the blend has the second
moment of a disk of radius r (a disk of radius r has E[rho^2] = r^2 / 2; a Gaussian of per-axis
variance v has E[rho^2] = 2 v, so its equivalent radius is 2 sqrt(v)). Beyond the largest level the
weight stays on the largest blur, a limitation of the method.

The kernel sizes are the paper's at EBB!'s 1536 px width and scale with the image width
(``reference_width``); sigma follows the usual rule for a Gaussian of a given size,
0.3 * ((size - 1) / 2 - 1) + 0.8. Blending happens on gamma-linearised colour, like the other
renderers (gamma = 1 gives the paper's blend in sRGB).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .batch import BatchRenderer
from .binned_scatter import bin_weights
from .convolve import fft_convolve_full
from .lens import LensParams, blur_radius


def gaussian_taps(size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd ``size`` taps with the conventional sigma for that size."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be odd and >= 1, got {size}")
    if size == 1:
        return torch.ones(1, dtype=dtype)
    sigma = 0.3 * ((size - 1) / 2 - 1) + 0.8
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def equivalent_radius(taps: torch.Tensor) -> float:
    """Radius of the disk with the same second moment as the separable 2-D kernel taps x taps."""
    x = torch.arange(taps.numel(), dtype=taps.dtype) - (taps.numel() - 1) / 2
    var = float((taps * x * x).sum())
    return 2.0 * math.sqrt(var)


def gaussian_blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Blur (C, H, W) with the separable kernel taps x taps, reflecting at the border so the energy
    stays inside; an FFT convolution, because 75-tap depthwise convolutions are slow on a CPU."""
    k = taps.numel()
    if k == 1:
        return x
    p = k // 2
    H, W = x.shape[-2:]
    # reflect padding needs pad < size; replicate beyond that (tiny images in tests)
    mode = "reflect" if p < min(H, W) else "replicate"
    padded = F.pad(x[None], (p, p, p, p), mode=mode)[0]
    kernel = torch.outer(taps, taps)
    full = fft_convolve_full(padded, kernel)  # row i <-> padded row i - p <-> image row i - 2p
    return full[:, 2 * p : 2 * p + H, 2 * p : 2 * p + W]


class BlendRenderer(BatchRenderer):
    """DBSI blend of the image with Gaussian-smoothed copies (see the module docstring)."""

    name = "blend"

    def __init__(self, kernel_sizes: tuple[int, ...] = (25, 45, 75), reference_width: int = 1536) -> None:
        self.kernel_sizes = tuple(kernel_sizes)
        self.reference_width = reference_width

    def levels(self, width: int) -> list[torch.Tensor]:
        """1-D taps of each blur level at this image width (sizes scaled, kept odd)."""
        taps = []
        for size in self.kernel_sizes:
            s = max(1, int(round(size * width / self.reference_width)))
            s += 1 - s % 2
            taps.append(gaussian_taps(s))
        return taps

    def _render_one(self, image: torch.Tensor, disparity: torch.Tensor, lens: LensParams) -> torch.Tensor:
        dtype = image.dtype if image.dtype == torch.float64 else torch.float32
        lin = image.to(dtype).clamp(0.0, 1.0) ** lens.gamma
        r = blur_radius(disparity.to(dtype), lens)
        taps = self.levels(image.shape[-1])
        radii = [0.0] + [equivalent_radius(t) for t in taps]
        # radii must increase for the split between neighbours; tiny images can collapse levels
        keep = [0] + [i for i in range(1, len(radii)) if radii[i] > radii[i - 1] + 1e-9]
        radii = [radii[i] for i in keep]
        copies = {0: lin}
        out = torch.zeros_like(lin)
        for j, w in bin_weights(r, radii):
            if not bool((w > 0).any()):
                continue
            level = keep[j]
            if level not in copies:
                copies[level] = gaussian_blur(lin, taps[level - 1])
            out = out + w * copies[level]
        return out.clamp(0.0, 1.0) ** (1.0 / lens.gamma)
