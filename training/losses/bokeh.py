"""The three depth-weighted "Bokeh" losses of Bokeh-Loss GAN (Lee et al., AIM 2022, §3.4, eqs. 1–3).

``M`` is the depth map used as the paper's "greyscale saliency mask": (B, 1, H, W) in [0, 1],
normalised disparity, **1 = near** (in focus). It broadcasts over the RGB channels.

Normalisation, the same for all three terms so that the paper's weights (eq. 4: 0.005 edge
difference, 0.1 background blur, 0.005 foreground edge) keep one meaning:

* ``‖·‖₁`` and ``TV`` are taken over the whole (C, H, W) tensor of one image — summed over the
  colour channels, as a norm of the tensor is — then divided by ``h · w`` (the paper's factor);
  the batch is averaged. So each term is "per pixel, summed over RGB, averaged over images".
* The Sobel kernels are the classic integer ones (centre weight 2, no 1/8 factor): the paper says
  "Sobel filters" and gives no scaling, and the integer kernel is what that name denotes.
* Borders are replicate-padded (as ``kornia.filters.spatial_gradient``). Zero padding would make
  the image frame an edge of height ``output · M``, which the foreground edge loss (being
  maximised) would reward by brightening the border.

Every term is computed in float32 with autocast off: they are cheap, and bf16 loses the small
differences they are made of.

Note on what the foreground edge loss rewards: the L1 norm of a gradient is a total variation, so
a *monotone* edge scores the same whether sharp or blurred (the responses telescope to the step
height). The loss grows with contrast and high-frequency texture in the near region, which is
how it "sharpens": a blurred texture has a lower gradient L1 than the sharp one.
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SOBEL_KERNELS",
    "sobel_responses",
    "ForegroundEdgeLoss",
    "EdgeDifferenceLoss",
    "BackgroundBlurLoss",
    "focus_mask",
]

# Sobel kernels at 0°, 90°, +45°, −45° (eq. 1), cross-correlation orientation (as F.conv2d).
# 0° responds to a left→right increase and equals kornia's sobel x kernel ×8; 90° likewise kornia's
# y kernel ×8. kornia has no diagonal Sobel kernels, so all four are written here and applied as one
# fixed grouped convolution: one padding and one scale for all directions (mixing kornia's
# normalised 0°/90° responses with hand-written diagonals would weight the directions unequally).
# The diagonal kernels are the 0° kernel rotated by 45° (weights 2, 1 along the rising side).
SOBEL_KERNELS = torch.tensor(
    [
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],  # 0°
        [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]],  # 90°
        [[0.0, 1.0, 2.0], [-1.0, 0.0, 1.0], [-2.0, -1.0, 0.0]],  # +45°: rises to the top-right
        [[-2.0, -1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, 1.0, 2.0]],  # −45°: rises to the bottom-right
    ]
)


def _fp32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.float() for t in tensors)


def _check_image_mask(image: torch.Tensor, mask: torch.Tensor) -> None:
    if image.dim() != 4 or mask.dim() != 4:
        raise ValueError(
            f"expected image (B, C, H, W) and mask (B, 1, H, W), got {tuple(image.shape)} and {tuple(mask.shape)}"
        )
    if mask.shape[1] != 1 or mask.shape[0] != image.shape[0] or mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"mask must be (B, 1, H, W) matching the image {tuple(image.shape)}, got {tuple(mask.shape)}")


def focus_mask(depth: torch.Tensor, lens: torch.Tensor, ramp_px: float = 8.0) -> torch.Tensor:
    """``M`` for the lens-conditioned generator: 1 on the focal plane, falling linearly to 0 where
    the blur radius r = K·|d − d_f| (BokehMe eq. 1) reaches ``ramp_px`` pixels.

    The paper's M is the depth itself because its data is always focused on the near subject. With
    the focus anywhere (a lens input), "near" no longer means "in focus": a refocused background
    must keep its edges and a defocused foreground must be smooth. ``depth`` (B, 1, H, W),
    ``lens`` (B, 2, 1, 1) = (d_f, K). 8 px: past it a disk blur has removed most texture.
    """
    d_f, K = lens[:, 0:1].float(), lens[:, 1:2].float()
    radius = K * (depth.float() - d_f).abs()
    return (1.0 - radius / ramp_px).clamp(0.0, 1.0)


def sobel_responses(image: torch.Tensor) -> torch.Tensor:
    """Sobel responses of every channel in the four directions: (B, C, H, W) → (B, C, 4, H, W)."""
    b, c, h, w = image.shape
    kernel = SOBEL_KERNELS.to(device=image.device, dtype=image.dtype)
    weight = kernel.unsqueeze(1).repeat(c, 1, 1, 1)  # (4C, 1, 3, 3): the 4 kernels per channel
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    out = F.conv2d(padded, weight, groups=c)  # (B, 4C, H, W), channel-major
    return out.view(b, c, 4, h, w)


def foreground_edge_strength(output: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image ``Σ_z ‖S_z(Î · M)‖₁ / (h · w)`` (eq. 1 without its sign): shape (B,)."""
    _check_image_mask(output, mask)
    with torch.autocast(device_type=output.device.type, enabled=False):
        output, mask = _fp32(output, mask)
        h, w = output.shape[-2:]
        return sobel_responses(output * mask).abs().flatten(1).sum(1) / (h * w)


class ForegroundEdgeLoss(nn.Module):
    """Foreground edge loss, eq. 1: ``−Σ_z ‖S_z(Î · M)‖₁ / (h · w)``, z ∈ {0°, 90°, ±45°}.

    Negative so that minimising it maximises the edge intensity of the in-focus (near) region.
    Returns the batch mean (a scalar).
    """

    def forward(self, output: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return -foreground_edge_strength(output, mask).mean()


class EdgeDifferenceLoss(nn.Module):
    """Edge difference loss, eq. 2: ``| |L_fe(Î, M)| − |L_fe(I, M)| |``.

    The paper writes ``L_foreedge(Î · M)``; since ``L_foreedge`` already multiplies by ``M``
    (eq. 1), we mask once — masking twice would weight by ``M²`` and is not what eq. 1 defines.

    **Which image is ``I`` (``reference``).** We use the *input photo*, not the ground truth:
    the paper's notation reserves ``I`` for the all-in-focus input (Fig. 2, ``G(I ⊙ D)``) and ``Î``
    for the output; its text says the loss "attempts to minimize the difference in foreground
    edge strength between the input and the output image"; and the term is the bound on eq. 1,
    which on its own would push edges up without limit — the all-in-focus photo is the natural
    ceiling for how sharp the in-focus region may get. The ground truth is already matched
    pixel-wise by L1 and SSIM. The module takes ``reference`` explicitly so the caller decides.

    The difference is taken per image and then averaged over the batch, so one image's excess
    cannot cancel another's deficit.
    """

    def forward(self, output: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if reference.shape != output.shape:
            raise ValueError(f"reference {tuple(reference.shape)} must have the output's shape {tuple(output.shape)}")
        out_strength = foreground_edge_strength(output, mask)  # |L_fe(Î, M)|, (B,)
        ref_strength = foreground_edge_strength(reference.detach(), mask)  # |L_fe(I, M)|, (B,)
        return (out_strength - ref_strength).abs().mean()


class BackgroundBlurLoss(nn.Module):
    """Background blur loss, eq. 3: ``TV(Î · (1 − M)) / (h · w)``.

    TV is the anisotropic L1 total variation of ``kornia.losses.total_variation``:
    ``Σ_c Σ |x[i+1, j] − x[i, j]| + Σ |x[i, j+1] − x[i, j]|`` over the image, summed over channels.
    Returns the batch mean.
    """

    def forward(self, output: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check_image_mask(output, mask)
        with torch.autocast(device_type=output.device.type, enabled=False):
            output, mask = _fp32(output, mask)
            h, w = output.shape[-2:]
            tv = kornia.losses.total_variation(output * (1.0 - mask), reduction="sum")  # (B, C)
            return (tv.sum(1) / (h * w)).mean()
