"""BokehMe's classical renderer: scattering of gamma-linearised colour, then normalisation.

Peng et al., "BokehMe: When Neural Rendering Meets Classical Rendering", CVPR 2022, §3.1
("Classical Renderer"). Every pixel spreads its gamma-linearised colour over its circle of confusion
of radius r = K |d - d_f| (eq. 1) with BokehMe's weight

    w(rho) = (0.5 + 0.5 * tanh(4 * (r - rho))) / (r^2 + 0.2)

(rho: distance to the source; for a polygon aperture the edge distance along the ray replaces r, as
in BokehMe's polygon kernel), the weighted colours and the weights are accumulated, and the image is
their ratio, re-encoded with ``** (1 / gamma)``.

BokehMe's implementation is a CUDA kernel with one thread per source pixel. Here the scatter is
vectorised for the CPU as one FFT convolution per bin of signed defocus S = K (d - d_f) (bins 1 px
1 px apart near the focal plane, up to 2 px apart for large blur; a source is shared between its two
neighbouring bins so the spread's second moment, hence its radius, is exact). Large-radius bins are
convolved at reduced resolution (``lowres_min_radius``), which is where the CPU time would go.

Occlusion. The paper's renderer lets every source reach every pixel within its radius, so a blurred
background bleeds over a sharp foreground (the artifact BokehMe's error map, eq. 2-5, exists to
fix). With ``occlusion=True`` (default) a pixel only accepts light from sources that are not behind
it by more than ``occlusion_tolerance`` pixels of defocus: a depth test, as in scatter-as-gather
depth-of-field, which keeps in-focus foregrounds clean. ``occlusion=False`` is the paper's renderer.
Radius 0 is a delta (eq. 1: no blur), so the in-focus plane is left exactly unchanged.
"""

from __future__ import annotations

import torch

from .aperture import aperture_edge_distance
from .batch import BatchRenderer
from .binned_scatter import BinSplit, signed_bins
from .convolve import convolve_crop
from .lens import LensParams, signed_defocus


def bokehme_kernel(radius: float, lens: LensParams) -> torch.Tensor:
    """BokehMe's (unnormalised) scatter weight on integer offsets, (2R+1, 2R+1) float64."""
    if radius <= 0.0:
        return torch.ones(1, 1, dtype=torch.float64)
    R = int(radius) + 1  # BokehMe loops over |delta| <= int(r) + 1
    t = torch.arange(-R, R + 1, dtype=torch.float64)
    dy, dx = torch.meshgrid(t, t, indexing="ij")
    inside = aperture_edge_distance(dy, dx, radius, lens)
    return (0.5 + 0.5 * torch.tanh(4.0 * inside)) / (radius * radius + 0.2)


class ScatterRenderer(BatchRenderer):
    """BokehMe classical scattering renderer (CPU or CUDA; see the module docstring).

    bin_steps: (min, relative, max) spacing of the signed-defocus bins in px (see ``radius_bins``).
    lowres_min_radius: bins with a radius of at least twice this are convolved at a power-of-two
        lower resolution (edges of large bokeh softened by ~f px, several times faster); None keeps
        every bin at full resolution.
    """

    name = "scatter"

    def __init__(
        self,
        occlusion: bool = True,
        occlusion_tolerance: float = 1.5,
        bin_steps: tuple[float, float, float] = (1.0, 0.125, 2.0),
        lowres_min_radius: float | None = 6.0,
    ) -> None:
        self.occlusion = occlusion
        self.occlusion_tolerance = occlusion_tolerance
        self.bin_steps = tuple(bin_steps)
        self.lowres_min_radius = lowres_min_radius

    def _render_one(self, image: torch.Tensor, disparity: torch.Tensor, lens: LensParams) -> torch.Tensor:
        dtype = image.dtype if image.dtype == torch.float64 else torch.float32
        lin = image.to(dtype).clamp(0.0, 1.0) ** lens.gamma
        S = signed_defocus(disparity.to(dtype), lens)  # (1, H, W)
        H, W = S.shape[-2:]
        step_min, step_rel, step_max = self.bin_steps
        centres = signed_bins(float(S.min()), float(S.max()), min_step=step_min, rel_step=step_rel, max_step=step_max)
        split = BinSplit(S, centres)

        def kernel_for(r: float) -> torch.Tensor:
            return bokehme_kernel(r, lens).to(device=lin.device, dtype=dtype)

        num = torch.zeros_like(lin)
        den = torch.zeros_like(S)
        values = torch.cat([lin, torch.ones_like(S)], dim=0)  # (4, H, W): colour and weight
        for j in split.present():
            box = split.box(j)
            if box is None:
                continue
            by0, by1, bx0, bx1 = box
            crop = values[:, by0:by1, bx0:bx1] * split.share(j, box)
            key = centres[j]
            contrib, (y0, y1, x0, x1) = convolve_crop(
                crop, (by0, bx0), (H, W), abs(key), kernel_for, self.lowres_min_radius
            )
            if self.occlusion:
                # admit this bin where it is not behind the target by more than the tolerance (1 px ramp)
                admit = (key - S[:, y0:y1, x0:x1] + self.occlusion_tolerance + 0.5).clamp(0.0, 1.0)
                contrib = contrib * admit
            num[:, y0:y1, x0:x1] += contrib[:3]
            den[:, y0:y1, x0:x1] += contrib[3:]
        out = num / den.clamp_min(1e-12)
        return out.clamp(0.0, 1.0) ** (1.0 / lens.gamma)
