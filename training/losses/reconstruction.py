"""Reconstruction losses of Bokeh-Loss GAN (Lee et al., AIM 2022, §3.5, eqs. 4–5): L1 and SSIM.

``L_SSIM`` is ``1 − SSIM(Î, I_gt)`` — the usual meaning of an "SSIM loss" and the one under
which the paper's weight 0.05 was tuned. Note that ``kornia.losses.SSIMLoss`` returns
``(1 − SSIM) / 2``, half of that, so it is *not* used here.

SSIM follows Wang et al. 2004 and scikit-image's reference settings: 11×11 Gaussian window,
σ = 1.5, K1 = 0.01, K2 = 0.03, data range 1, population (not sample) covariance, computed per
channel and averaged. Only "valid" window positions count (``padding="valid"``): the border
pixels, whose window would hang over the edge, are left out, exactly as scikit-image's
``structural_similarity`` crops them, so the two agree to float precision (tests/test_losses.py).
"""

from __future__ import annotations

import kornia
import torch
from torch import nn

__all__ = ["L1Loss", "SSIMLoss", "ssim"]

# Eqs. 4–5's L1 is the plain mean absolute error between output and ground truth.
L1Loss = nn.L1Loss


def ssim(output: torch.Tensor, target: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Per-image mean SSIM, shape (B,), in float32 with autocast off.

    bf16 cannot hold the small variances SSIM subtracts (σ_xy − μ_x μ_y), hence float32.
    """
    if output.shape != target.shape or output.dim() != 4:
        raise ValueError(
            f"SSIM needs two (B, C, H, W) tensors of one shape, got {tuple(output.shape)} "
            f"and {tuple(target.shape)}"
        )
    if min(output.shape[-2:]) < window_size:
        raise ValueError(f"SSIM needs H, W >= {window_size}, got {tuple(output.shape[-2:])}")
    with torch.autocast(device_type=output.device.type, enabled=False):
        smap = kornia.metrics.ssim(
            output.float(), target.float(), window_size, max_val=1.0, padding="valid"
        )  # (B, C, H − 10, W − 10); kornia's Gaussian has σ = 1.5 for an 11-tap window
        return smap.flatten(1).mean(1)


class SSIMLoss(nn.Module):
    """``L_SSIM = 1 − SSIM(output, target)``, averaged over the batch (eqs. 4–5)."""

    def __init__(self, window_size: int = 11) -> None:
        super().__init__()
        self.window_size = window_size

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1.0 - ssim(output, target, self.window_size).mean()
