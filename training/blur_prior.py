"""Blur prior: fixed, parameter-free blurred copies of the photo that the generator mixes per pixel.

Why: the generator returns photo + residual. To blur a textured background by 40 px, a
width-8 NAFNet had to synthesise the negative of the photo's detail through its 8 full-resolution
channels, and it under-blurred: on a high-contrast synthetic scene at 1024×1536 it kept 8× the
ground truth's background gradient energy, and its edge PSNR stayed 1.2 dB under the classical
layered renderer's. With blurred copies at hand, removing detail becomes a per-pixel choice of
mixing weights, which the network computes from the defocus map it already reads. This is
BokehMe's division of labour (a classical renderer proposes, a network corrects) at the cost of a
few pooling and resize ops, not a second network.

The copies: an average pyramid down to 1/16 (the generator's own deepest level, so any input it
accepts works), two wider box blurs at 1/16, each resized back with bilinear interpolation. A box
of f pixels followed by the 2f-pixel tent of bilinear up-sampling has standard deviation ≈ f/2,
that of a disc of radius f, so the copies stand for disc radii of about 4, 8, 16, 32 and 48 px:
the range of a phone photo's background (12–50 px at 1536 wide). Blurring happens on squared
values (gamma 2, MUL and SQRT, which phone GPUs run), so that bright pixels spread as light does,
as in the renderers that make the training targets (gamma 2.0–2.6).

Everything here is AVERAGE_POOL_2D, RESIZE_BILINEAR, MUL and SQRT in TFLite: builtin ops that
the GPU delegate runs, no parameters, and nothing that depends on the input's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BlurPrior"]

# (pooling factor, then a stride-1 box of this size at the 1/16 level, or 0): disc radii ≈ 4, 8, 16, 32, 48 px.
LEVELS: tuple[tuple[int, int], ...] = ((4, 0), (8, 0), (16, 0), (16, 3), (16, 5))


class BlurPrior(nn.Module):
    """``forward(image)`` → list of ``len(LEVELS)`` blurred copies of ``image`` (B, 3, H, W), in [0, 1]
    when the image is. H and W must be multiples of 16."""

    count = len(LEVELS)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        lin = image.clamp(0.0, 1.0)
        lin = lin * lin
        pyramid = {1: lin}
        for f in (2, 4, 8, 16):  # repeated 2× pooling: one pass over the image, not one per level
            pyramid[f] = F.avg_pool2d(pyramid[f // 2], 2)
        out = []
        for f, box in LEVELS:
            p = pyramid[f]
            if box:  # the border counts only pixels inside the image, so edges do not darken
                p = F.avg_pool2d(p, box, stride=1, padding=box // 2, count_include_pad=False)
            up = F.interpolate(p, scale_factor=float(f), mode="bilinear", align_corners=False)
            # +1e-8: sqrt's derivative is infinite at 0; nothing upstream needs it, but autograd
            # would still multiply by it.
            out.append(torch.sqrt(up + 1e-8))
        return out
