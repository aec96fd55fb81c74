"""Reconstruction losses of Bokeh-Loss GAN (Lee et al., AIM 2022, §3.5, eqs. 4–5): L1 and SSIM.

``L_SSIM`` is ``1 − SSIM(Î, I_gt)``, built on the evaluation's SSIM (``common.metrics``: Wang et
al. 2004, 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, data range 1, valid window
positions only, as scikit-image's ``structural_similarity``), without its clamp to [0, 1] so that
outputs outside the range still get a gradient.
"""

from __future__ import annotations

from torch import nn

from common.metrics import SSIMLoss

__all__ = ["L1Loss", "SSIMLoss"]

# Eqs. 4–5's L1 is the plain mean absolute error between output and ground truth.
L1Loss = nn.L1Loss
