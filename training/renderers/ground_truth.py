"""Ground-truth renderer of the synthetic data: occlusion-aware layered scattering.

It is the renderer the synthetic pairs are made with (``python -m training.synth``), so it has to be
more exact than the classical renderers a learned model is compared against, most of all at depth
edges, where those fail (BokehMe §3.1, Fig. 4):

1. The scene is a stack of layers, each with straight (not premultiplied) linear radiance, an
   alpha (coverage) and a disparity per pixel. The synthetic generator hands over the true layers,
   including the parts of the background hidden behind foreground objects, and true HDR radiance
   for highlights (above 1, clipped only in the all-in-focus photo).
2. Each layer is scattered on its own: every pixel spreads its premultiplied radiance and its alpha
   over the aperture (disk or N-blade polygon, anti-aliased, radius-exact, energy-normalised) of
   radius r = K |d - d_f| (BokehMe eq. 1). A layer whose depth varies (a ground plane) is split
   into radius bins, each pixel shared between the two nearest bins so the spread's second moment
   is exact.
3. Layers are composited back to front with the "over" operator on the blurred premultiplied
   values: out = L_i + (1 - A_i) * out. Hence a sharp foreground (A_i = 1) hides everything behind
   it, so the background never bleeds over it, and a blurred foreground covers what is behind it
   only partially (A_i < 1 along its blurred edge), which reveals the true hidden background.
4. The result is radiance; it is clipped to [0, 1] and re-encoded with ``** (1 / gamma)``, so
   highlights stay saturated and become bright bokeh balls in the aperture's shape.

:meth:`GroundTruthRenderer.render` applies the same method to a photo (one image + disparity): the
image is split into thin layers of signed defocus (BokehMe eq. 6), saturated pixels get extra
radiance (D2F eq. 4 in spirit), and the composite is normalised by its alpha, because the hidden
background is unknown there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .aperture import aperture_kernel
from .batch import BatchRenderer
from .binned_scatter import BinSplit, radius_bins, scatter_by_radius, signed_bins
from .convolve import convolve_crop
from .lens import LensParams, blur_radius, signed_defocus


@dataclass
class Layer:
    """One scene layer on a canvas: values at rows y0.. and columns x0.. of the canvas.

    radiance: (3, h, w) straight linear radiance (may exceed 1 for highlights);
    alpha: (1, h, w) coverage in [0, 1]; disparity: (1, h, w) normalised disparity.
    """

    radiance: torch.Tensor
    alpha: torch.Tensor
    disparity: torch.Tensor
    y0: int = 0
    x0: int = 0


class GroundTruthRenderer(BatchRenderer):
    """Occlusion-aware multi-layer scatter renderer (see the module docstring)."""

    name = "ground_truth"

    def __init__(
        self,
        supersample: int = 8,
        layer_spacing: tuple[float, float, float] = (0.5, 0.125, 2.0),
        highlight_threshold: float = 0.99,
        highlight_gain: float = 4.0,
        lowres_min_radius: float | None = None,
    ) -> None:
        # layer_spacing: (min step, step relative to the radius, max step) of the radius bins, px
        self.supersample = supersample
        self.layer_spacing = tuple(layer_spacing)
        self.highlight_threshold = highlight_threshold
        self.highlight_gain = highlight_gain
        # None: every blur at full resolution (exact); a number trades exactness for speed on the
        # photo path as in the classical renderers (see lens.convolve_crop)
        self.lowres_min_radius = lowres_min_radius

    def _kernel(self, lens: LensParams, device: torch.device, dtype: torch.dtype):
        def kernel_for(r: float) -> torch.Tensor:
            return aperture_kernel(r, lens, self.supersample).to(device=device, dtype=dtype)

        return kernel_for

    # ---- exact path: the scene's own layers ----------------------------------------------------------
    def render_layers(self, layers: Sequence[Layer], lens: LensParams, size: tuple[int, int]) -> torch.Tensor:
        """Render layers given back to front onto an (H, W) canvas; returns linear radiance (3, H, W).

        Light scattered past the canvas edge is lost: render on a canvas with a margin of at least
        the largest blur radius and crop, as the synthetic generator does.
        """
        if not layers:
            raise ValueError("render_layers: no layers")
        H, W = size
        ref = layers[0].radiance
        out = torch.zeros(3, H, W, device=ref.device, dtype=ref.dtype)
        kernel_for = self._kernel(lens, ref.device, ref.dtype)
        for i, layer in enumerate(layers):
            rad, alpha, disp = layer.radiance, layer.alpha, layer.disparity
            if rad.ndim != 3 or rad.shape[0] != 3 or alpha.shape != (1, *rad.shape[1:]) or disp.shape != alpha.shape:
                raise ValueError(
                    f"render_layers: layer {i} has radiance {tuple(rad.shape)}, alpha "
                    f"{tuple(alpha.shape)}, disparity {tuple(disp.shape)}; expected (3,h,w), (1,h,w), (1,h,w)"
                )
            radius = blur_radius(disp, lens)
            R = int(math.ceil(float((radius * (alpha > 0)).max()))) + 1 if bool((alpha > 0).any()) else 0
            if R == 0 and not bool((alpha > 0).any()):
                continue
            h, w = alpha.shape[-2:]
            # local work area: the layer plus the reach of its largest blur, clipped to the canvas
            wy0, wx0 = max(layer.y0 - R, 0), max(layer.x0 - R, 0)
            wy1, wx1 = min(layer.y0 + h + R, H), min(layer.x0 + w + R, W)
            local = torch.zeros(4, wy1 - wy0, wx1 - wx0, device=rad.device, dtype=rad.dtype)
            local_r = torch.zeros(1, wy1 - wy0, wx1 - wx0, device=rad.device, dtype=rad.dtype)
            # the part of the layer inside the canvas
            sy0, sx0 = max(layer.y0, 0), max(layer.x0, 0)
            sy1, sx1 = min(layer.y0 + h, H), min(layer.x0 + w, W)
            if sy1 <= sy0 or sx1 <= sx0:
                continue
            ly, lx = sy0 - layer.y0, sx0 - layer.x0
            a = alpha[:, ly : ly + sy1 - sy0, lx : lx + sx1 - sx0]
            local[:3, sy0 - wy0 : sy1 - wy0, sx0 - wx0 : sx1 - wx0] = (
                rad[:, ly : ly + sy1 - sy0, lx : lx + sx1 - sx0] * a
            )
            local[3:, sy0 - wy0 : sy1 - wy0, sx0 - wx0 : sx1 - wx0] = a
            local_r[:, sy0 - wy0 : sy1 - wy0, sx0 - wx0 : sx1 - wx0] = radius[
                :, ly : ly + sy1 - sy0, lx : lx + sx1 - sx0
            ]
            bins = radius_bins(float(local_r.max()), *self.layer_spacing)
            blurred = scatter_by_radius(local, local_r, kernel_for, bins)
            region = out[:, wy0:wy1, wx0:wx1]
            cover = blurred[3:].clamp(0.0, 1.0)
            out[:, wy0:wy1, wx0:wx1] = blurred[:3] + (1.0 - cover) * region
        return out

    # ---- photo path: one image + disparity -----------------------------------------------------------
    def _render_one(self, image: torch.Tensor, disparity: torch.Tensor, lens: LensParams) -> torch.Tensor:
        dtype = image.dtype if image.dtype == torch.float64 else torch.float32
        img = image.to(dtype).clamp(0.0, 1.0)
        disp = disparity.to(dtype)
        S = signed_defocus(disp, lens)
        r_max = float(S.abs().max())
        R = int(math.ceil(r_max)) + 1
        H, W = img.shape[-2:]
        # replicate the border so that pixels near it receive light from "outside" as they would
        img_p = F.pad(img[None], (R, R, R, R), mode="replicate")[0]
        S_p = F.pad(S[None], (R, R, R, R), mode="replicate")[0]
        lin = img_p**lens.gamma
        bright = (
            (img_p.amax(dim=0, keepdim=True) - self.highlight_threshold) / max(1.0 - self.highlight_threshold, 1e-6)
        ).clamp(0.0, 1.0)
        lin = lin * (1.0 + (self.highlight_gain - 1.0) * bright)

        # layers = signed radius bins; a pixel is shared between its two neighbouring bins
        step_min, step_rel, step_max = self.layer_spacing
        centres = signed_bins(
            float(S_p.min()), float(S_p.max()), min_step=step_min, rel_step=step_rel, max_step=step_max
        )
        split = BinSplit(S_p, centres)
        kernel_for = self._kernel(lens, img.device, dtype)
        extent = S_p.shape[-2:]
        num = torch.zeros_like(lin)
        den = torch.zeros_like(S_p)
        values = torch.cat([lin, torch.ones_like(S_p)], dim=0)  # (4, H, W): radiance and coverage
        for j in split.present():  # centres are sorted: back (most negative S) to front
            box = split.box(j)
            if box is None:
                continue
            by0, by1, bx0, bx1 = box
            crop = values[:, by0:by1, bx0:bx1] * split.share(j, box)
            blurred, (y0, y1, x0, x1) = convolve_crop(
                crop, (by0, bx0), extent, abs(centres[j]), kernel_for, self.lowres_min_radius
            )
            cover = blurred[3:].clamp(0.0, 1.0)
            num[:, y0:y1, x0:x1] = blurred[:3] + (1.0 - cover) * num[:, y0:y1, x0:x1]
            den[:, y0:y1, x0:x1] = blurred[3:] + (1.0 - cover) * den[:, y0:y1, x0:x1]
        out = num / den.clamp_min(1e-8)
        out = out[:, R : R + H, R : R + W]
        return out.clamp(0.0, 1.0) ** (1.0 / lens.gamma)
