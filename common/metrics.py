"""Fidelity metrics as the AIM bokeh challenges and the Bokeh-Loss GAN paper report them
(Lee et al., AIM 2022, Table 1: PSNR ↑, SSIM ↑, LPIPS ↓; LPIPS lives in ``eval/lpips.py``).

* **PSNR**: per image, data range 1, ``10·log10(1 / MSE)`` with the MSE taken over all pixels and
  the three RGB channels of that image, then the mean over images. This is the literature's
  average of per-image PSNRs; it is NOT torchmetrics' default, which pools the squared error over
  the whole batch/epoch before taking the log (a few bad images then weigh differently).
* **SSIM**: Wang et al. 2004 with the standard Gaussian window (11 × 11, σ = 1.5), constants
  ``k1 = 0.01``, ``k2 = 0.03`` and data range 1, computed per RGB channel and averaged over the
  channels and the valid (un-padded) window positions; per image, then the mean over images.
  Computed by ``kornia.metrics.ssim(..., padding="valid")``: like Wang et al.'s MATLAB code and
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)`` it averages only the positions where the whole
  window lies inside the image (tests/test_metrics.py checks the agreement). torchmetrics >= 1.5
  also averages the reflect-padded border, which moves SSIM by up to ~1e-2 on small images, and
  its 2-D (non-separable) window is ~10× slower on a CPU at 1024 × 1536.
* **Edge PSNR**: PSNR restricted to a band around depth discontinuities (``depth_edge_band``),
  where classical bokeh renderers leak blur across object boundaries (BokehMe §1, DBSI §3).

Predictions and targets are clamped to [0, 1] first: the generator's output is not clamped, and an
image written to disk would be. Inputs are (B, 3, H, W) float32 or float64 tensors; lower
precisions (a bf16 autocast region) are computed in float32 with autocast off.

Two more users of the same formulas live here so that there is one of each:

* ``psnr_array``: PSNR of one unclamped NumPy pair in float64, for the export's parity gates
  (TFLite vs PyTorch outputs, where a value outside [0, 1] is a difference to see, not to clip).
* ``SSIMLoss``: ``L_SSIM = 1 − SSIM`` of Bokeh-Loss GAN (Lee et al., AIM 2022, §3.5, eqs. 4–5),
  on ``ssim_per_image`` without the clamp (the loss must pass gradients for outputs outside
  [0, 1]) and with kornia's default ``eps = 1e-12`` (``SSIM_LOSS_EPS``), under which the paper's
  weight was tuned and every training run so far was made; the metric uses ``eps = 0``.
  ``kornia.losses.SSIMLoss`` returns ``(1 − SSIM) / 2``, half of that, so it is *not* used.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from kornia.metrics import ssim as kornia_ssim
from torch import nn

__all__ = [
    "psnr",
    "psnr_array",
    "ssim",
    "ssim_per_image",
    "SSIMLoss",
    "depth_edge_band",
    "edge_band_radius",
    "edge_psnr",
    "detail_kept",
    "detail_kept_in",
    "EDGE_THRESHOLD",
    "SSIM_K1",
    "SSIM_K2",
]

Reduction = Literal["mean", "none"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# The metric: the denominator is at least (k1·k2)² > 0, and a 1e-12 eps would bias dark flat patches.
SSIM_METRIC_EPS = 0.0
# The loss: kornia's default, kept so that training reproduces the runs made with it bit for bit.
SSIM_LOSS_EPS = 1e-12

# A pixel is on a depth edge when the disparity spans more than this within its 3×3 neighbourhood
# (5 % of the full [0, 1] disparity range between adjacent pixels). A slanted floor that covers the
# whole disparity range over 1000 rows changes ~0.002 per pixel and stays below it; an object
# boundary in a DPT/MiDaS map changes by tenths within a pixel or two and is above it.
EDGE_THRESHOLD = 0.05


def _check(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) tensors, got shape {tuple(pred.shape)}")
    dtype = torch.promote_types(pred.dtype, target.dtype)
    if not dtype.is_floating_point:
        raise TypeError(f"expected float tensors in [0, 1], got {pred.dtype} and {target.dtype}")
    return pred.to(dtype).clamp(0.0, 1.0), target.to(dtype).clamp(0.0, 1.0)


def _reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def psnr(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """PSNR in dB with data range 1: per image over (C, H, W), then averaged over images.

    ``reduction="none"`` returns the (B,) per-image values. An exact match gives ``inf``.
    """
    pred, target = _check(pred, target)
    mse = (pred - target).pow(2).flatten(1).mean(1)  # (B,): one MSE per image, not pooled
    return _reduce(10.0 * torch.log10(1.0 / mse), reduction)


def psnr_array(output: np.ndarray, reference: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of one pair of arrays, unclamped, in float64 (inf when identical)."""
    mse = float(np.mean((output.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor, eps: float = SSIM_METRIC_EPS) -> torch.Tensor:
    """(B,) SSIM, each the mean over channels and valid window positions; no clamp, no checks
    beyond the size. Computed in at least float32 with autocast off: bf16 cannot hold the small
    variances SSIM subtracts (σ_xy − μ_x μ_y)."""
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"SSIM needs two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW}, got {tuple(pred.shape[-2:])}")
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        # kornia fixes σ = 1.5, k1 = 0.01 and k2 = 0.03 (the values above); max_val is the data range.
        ssim_map = kornia_ssim(pred.to(dtype), target.to(dtype), SSIM_WINDOW, max_val=1.0, eps=eps, padding="valid")
        return ssim_map.flatten(1).mean(1)  # (B,) from (B, C, H-10, W-10)


def ssim(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """SSIM with an 11×11 Gaussian window (σ 1.5), k1 = 0.01, k2 = 0.03, data range 1, on RGB.

    Per image (mean over channels and valid window positions), then averaged over images.
    Images must be at least 11 × 11.
    """
    pred, target = _check(pred, target)
    return _reduce(ssim_per_image(pred, target, SSIM_METRIC_EPS), reduction)


class SSIMLoss(nn.Module):
    """``L_SSIM = 1 − SSIM(output, target)``, averaged over the batch (eqs. 4–5); see the module doc."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1.0 - ssim_per_image(output, target, SSIM_LOSS_EPS).mean()


def edge_band_radius(height: int, width: int) -> int:
    """Half-width in pixels of the band kept around depth edges: 1/64 of the shorter side
    (16 px at EBB!'s 1024 × 1536), at least 2. Blur radii, and hence the halo a renderer leaks
    across a boundary, scale with the image, so the band does too."""
    return max(2, round(min(height, width) / 64))


def depth_edge_band(depth: torch.Tensor, threshold: float = EDGE_THRESHOLD, radius: int | None = None) -> torch.Tensor:
    """Boolean (B, 1, H, W) mask of the band around depth discontinuities.

    1. Edge pixels: the 3×3 morphological gradient of the disparity (max − min over the pixel and
       its 8 neighbours, borders replicated) exceeds ``threshold``. A step between columns c−1 and c
       marks both columns.
    2. Band: the edge pixels dilated by a (2r+1) × (2r+1) square, ``r = edge_band_radius(H, W)``
       unless given, so a step between columns c−1 and c gives columns c−1−r … c+r.
    """
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"expected depth of shape (B, 1, H, W), got {tuple(depth.shape)}")
    d = F.pad(depth.float(), (1, 1, 1, 1), mode="replicate")
    grad = F.max_pool2d(d, 3, stride=1) + F.max_pool2d(-d, 3, stride=1)  # local max − local min
    edges = (grad > threshold).float()
    r = edge_band_radius(*depth.shape[-2:]) if radius is None else int(radius)
    if r > 0:  # square dilation, done as a row then a column pass (the same result, k× cheaper)
        edges = F.max_pool2d(edges, (1, 2 * r + 1), stride=1, padding=(0, r))
        edges = F.max_pool2d(edges, (2 * r + 1, 1), stride=1, padding=(r, 0))
    return edges > 0.5


def edge_psnr(pred: torch.Tensor, target: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """Per-image (B,) PSNR over the pixels of ``band`` (all three channels). NaN for an image
    whose band is empty (no depth edge): average with ``nanmean``."""
    pred, target = _check(pred, target)
    if band.shape != (pred.shape[0], 1, *pred.shape[-2:]):
        raise ValueError(f"band shape {tuple(band.shape)} does not match images {tuple(pred.shape)}")
    m = band.to(pred.dtype)
    sq = (pred - target).pow(2).sum(1, keepdim=True)  # (B, 1, H, W): summed over RGB
    n = m.flatten(1).sum(1) * pred.shape[1]
    mse = (sq * m).flatten(1).sum(1) / n  # 0/0 = NaN where the band is empty
    return 10.0 * torch.log10(1.0 / mse)


# Quantiles of disparity that delimit the "subject" (nearest 20 %) and the "background" (farthest
# 40 %) of a photo for detail_kept, as the real-photo check defines them.
SUBJECT_QUANTILE = 0.8
BACKGROUND_QUANTILE = 0.4


def _gradient_energy(x: np.ndarray) -> np.ndarray:
    """(H, W, 3) → (H-1, W-1): |vertical| + |horizontal| neighbour differences, channel mean."""
    return np.abs(np.diff(x, axis=0))[:, :-1].mean(-1) + np.abs(np.diff(x, axis=1))[:-1, :].mean(-1)


def detail_kept(photo: np.ndarray, output: np.ndarray, disparity: np.ndarray) -> tuple[float, float]:
    """(background, subject): the output's gradient energy over the photo's, in the farthest 40 %
    and the nearest 20 % of disparity. A bokeh rendering of a portrait should keep the subject
    (≈ 1) and soften the background (≪ 1); an identity model scores (1, 1).

    ``photo``, ``output``: (H, W, 3) float in [0, 1]; ``disparity``: (H, W), 1 = near. The output
    is clamped to [0, 1] first, as a saved picture would be.
    """
    if photo.shape != output.shape or photo.shape[:2] != disparity.shape:
        raise ValueError(
            f"detail_kept: photo {photo.shape}, output {output.shape} and disparity "
            f"{disparity.shape} must share H and W"
        )
    d = disparity[:-1, :-1]
    far, near = d <= np.quantile(d, BACKGROUND_QUANTILE), d >= np.quantile(d, SUBJECT_QUANTILE)
    return detail_kept_in(photo, output, far), detail_kept_in(photo, output, near)


def detail_kept_in(photo: np.ndarray, output: np.ndarray, mask: np.ndarray) -> float:
    """The output's gradient energy over the photo's inside ``mask`` ((H, W) or (H-1, W-1) bool)."""
    g_in, g_out = _gradient_energy(photo), _gradient_energy(np.clip(output, 0.0, 1.0))
    m = mask[: g_in.shape[0], : g_in.shape[1]]
    if not m.any():
        raise ValueError("detail_kept_in: the mask selects no pixel")
    return float(g_out[m].mean() / max(g_in[m].mean(), 1e-9))
