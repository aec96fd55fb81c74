"""D2F-style weighted layered rendering, without the learned networks.

Luo et al., "Defocus to Focus: Photo-realistic Bokeh Rendering by Fusing Defocus and Radiance
Priors" (D2F), §3.2, itself built on SteReFo's layered refocusing:

- Layers (§3.2.2, eq. 5-7): the signed defocus S = K (d - d_f) is quantised into layers whose blur
  radii grow non-uniformly (eq. 14, a piecewise-linear function of the layer index: 1 px steps near
  the focal plane, where most pixels are, then 2, 4 and 8 px). The layer masks are smooth
  indicators, 0.5 * (tanh((S - lo) / s) - tanh((S - hi) / s)), with boundaries half-way between
  layer radii and a softness s of 6 % of the layer spacing (tanh(8) at a layer centre: the in-focus
  layer keeps all but 1e-7 of its pixels); they sum to one.
- Soft disk kernels (eq. 13): k(rho) = 0.5 + 0.5 * tanh(2 (r - rho)), normalised; a disk whose edge
  spans about one pixel, so small disks look round. The polygon aperture uses the same edge profile.
- Radiance weighting (§3.2.1, eq. 4, 15, 16): the learned radiance map is replaced by its classical
  counterpart, gamma-linearised colour, and pixels whose brightest channel is above
  ``highlight_threshold`` get the HDR weight ``highlight_weight``, so saturated highlights dominate
  their layer and turn into bright bokeh balls.
- Compositing (eq. 9, 15, 16), back to front, for both the weighted colour and the weight:
  X <- X * (1 - K_i * M_i) + K_i * (M_i R I),   W <- W * (1 - K_i * M_i) + K_i * (M_i R),
  and the bokeh image is X / W.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .aperture import aperture_edge_distance
from .batch import BatchRenderer
from .binned_scatter import bbox_of
from .convolve import convolve_crop
from .lens import LensParams, signed_defocus


def d2f_layer_radii(
    r_max: float, segments: Sequence[tuple[int, float]] = ((4, 1.0), (4, 2.0), (4, 4.0))
) -> list[float]:
    """Layer radii 0, 1, 2, 3, 4, 6, 8, 10, 12, 16, ..., 28, 36, ... up to >= r_max (D2F eq. 14).

    ``segments``: (number of layers, step in px) pieces of the piecewise-linear radius function;
    after the last piece the step doubles (8 px).
    """
    radii = [0.0]
    for count, step in segments:
        for _ in range(count):
            radii.append(radii[-1] + step)
    last_step = 2.0 * segments[-1][1]
    while radii[-1] < r_max:
        radii.append(radii[-1] + last_step)
    while len(radii) > 2 and radii[-2] >= r_max:
        radii.pop()
    return radii


def soft_disk_kernel(radius: float, lens: LensParams, sharpness: float = 2.0) -> torch.Tensor:
    """D2F's soft disk (eq. 13 form) of the given radius, normalised to sum 1, float64."""
    if radius <= 0.0:
        return torch.ones(1, 1, dtype=torch.float64)
    R = int(math.ceil(radius)) + 2
    t = torch.arange(-R, R + 1, dtype=torch.float64)
    dy, dx = torch.meshgrid(t, t, indexing="ij")
    k = 0.5 + 0.5 * torch.tanh(sharpness * aperture_edge_distance(dy, dx, radius, lens))
    return k / k.sum()


def _step(x: torch.Tensor) -> torch.Tensor:
    """Smooth indicator step of SteReFo/D2F eq. 7: 0.5 * (1 + tanh(x))."""
    return 0.5 * (1.0 + torch.tanh(x))


class LayeredRenderer(BatchRenderer):
    """D2F weighted layered renderer (see the module docstring)."""

    name = "layered"

    def __init__(
        self,
        softness: float = 0.06,
        highlight_threshold: float = 0.98,
        highlight_weight: float = 30.0,
        kernel_sharpness: float = 2.0,
        lowres_min_radius: float | None = 6.0,
    ) -> None:
        # lowres_min_radius: layers with a radius of at least twice this are blurred at a power-of-two
        # lower resolution (see lens.convolve_crop); None keeps every layer at full resolution
        self.lowres_min_radius = lowres_min_radius
        self.softness = softness
        self.highlight_threshold = highlight_threshold
        self.highlight_weight = highlight_weight
        self.kernel_sharpness = kernel_sharpness

    def layer_masks(self, S: torch.Tensor) -> list[tuple[float, torch.Tensor]]:
        """(signed layer radius, smooth mask) for every layer, ordered back (S < 0) to front."""
        radii = d2f_layer_radii(float(S.abs().max()))
        centres = [-r for r in reversed(radii[1:])] + radii
        masks = []
        for i, c in enumerate(centres):
            m = torch.ones_like(S)
            if i > 0:  # lower boundary, shared with the layer behind (same softness: masks sum to 1)
                lo = 0.5 * (centres[i - 1] + c)
                m = m * _step((S - lo) / (self.softness * (c - centres[i - 1])))
            if i < len(centres) - 1:
                hi = 0.5 * (c + centres[i + 1])
                m = m - _step((S - hi) / (self.softness * (centres[i + 1] - c)))
            masks.append((c, m.clamp_min(0.0)))
        return masks

    def _render_one(self, image: torch.Tensor, disparity: torch.Tensor, lens: LensParams) -> torch.Tensor:
        dtype = image.dtype if image.dtype == torch.float64 else torch.float32
        img = image.to(dtype).clamp(0.0, 1.0)
        lin = img**lens.gamma
        S = signed_defocus(disparity.to(dtype), lens)
        bright = (
            (img.amax(dim=0, keepdim=True) - self.highlight_threshold) / max(1.0 - self.highlight_threshold, 1e-6)
        ).clamp(0.0, 1.0)
        R = 1.0 + (self.highlight_weight - 1.0) * bright  # radiance weight (1, H, W)
        values = torch.cat([lin * R, R, torch.ones_like(R)], dim=0)  # (5, H, W): R*I, R, coverage
        X = torch.zeros_like(lin)
        Wt = torch.zeros_like(R)
        H, W = S.shape[-2:]

        def kernel_for(r: float) -> torch.Tensor:
            return soft_disk_kernel(r, lens, self.kernel_sharpness).to(device=img.device, dtype=dtype)

        for c, m in self.layer_masks(S):
            box = bbox_of(m > 1e-6)
            if box is None:
                continue
            by0, by1, bx0, bx1 = box
            crop = values[:, by0:by1, bx0:bx1] * m[:, by0:by1, bx0:bx1]
            blurred, (y0, y1, x0, x1) = convolve_crop(
                crop, (by0, bx0), (H, W), abs(c), kernel_for, self.lowres_min_radius
            )
            cover = blurred[4:].clamp(0.0, 1.0)
            X[:, y0:y1, x0:x1] = X[:, y0:y1, x0:x1] * (1.0 - cover) + blurred[:3]
            Wt[:, y0:y1, x0:x1] = Wt[:, y0:y1, x0:x1] * (1.0 - cover) + blurred[3:4]
        out = X / Wt.clamp_min(1e-12)
        return out.clamp(0.0, 1.0) ** (1.0 / lens.gamma)
