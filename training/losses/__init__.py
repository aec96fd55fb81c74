"""Loss terms of Bokeh-Loss GAN (Lee et al., AIM 2022, §3.3–3.5), as plain ``nn.Module``s.

Stage 1 (eq. 4): L1, SSIM, edge difference, background blur, foreground edge.
Stage 2 (eq. 5): L1, VGG perceptual, SSIM, adversarial (WGAN-GP with the dual-scale critic).
"""

from __future__ import annotations

from training.losses.adversarial import critic_loss, generator_adversarial_loss, gradient_penalty
from training.losses.bokeh import BackgroundBlurLoss, EdgeDifferenceLoss, ForegroundEdgeLoss, focus_mask
from training.losses.reconstruction import L1Loss, SSIMLoss
from training.losses.vgg import VGG19Features, VGGPerceptualLoss, find_vgg19_weights

__all__ = [
    "L1Loss",
    "SSIMLoss",
    "ForegroundEdgeLoss",
    "EdgeDifferenceLoss",
    "BackgroundBlurLoss",
    "focus_mask",
    "VGG19Features",
    "VGGPerceptualLoss",
    "find_vgg19_weights",
    "critic_loss",
    "generator_adversarial_loss",
    "gradient_penalty",
]
