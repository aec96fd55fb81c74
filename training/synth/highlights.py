"""HDR highlights: the small, very bright lights that become bokeh balls.

Real point lights are orders of magnitude brighter than a white wall, so the photo clips them and
the ground truth spreads their full radiance over the blur disk (``ground_truth.py``, step 4).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .textures import hsv


def add_highlights(
    rad: torch.Tensor,
    alpha: torch.Tensor,
    rng: np.random.Generator,
    n: int,
    region: tuple[int, int, int, int],
    cluster: bool,
) -> None:
    """Paint n small HDR discs (radiance 2-150 x white, log-uniform) into rad (3, h, w) in place.

    Real point lights are orders of magnitude brighter than a white wall: clipped to white in the
    photo, spread over a blur disk hundreds of pixels wide they still make a visible, often
    saturated, bokeh ball."""
    h, w = rad.shape[-2:]
    y0, y1, x0, x1 = region
    if y1 - y0 < 4 or x1 - x0 < 4 or n <= 0:
        return
    hue = rng.random()
    warm = rng.random() < 0.6
    centres = []
    if cluster:
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(y0, y1), rng.uniform(x0, x1)
            sy, sx = rng.uniform(10, 0.3 * (y1 - y0) + 10), rng.uniform(10, 0.4 * (x1 - x0) + 10)
            for _ in range(max(1, n // 2)):
                centres.append((cy + rng.normal(0, sy), cx + rng.normal(0, sx)))
    else:
        centres = [(rng.uniform(y0, y1), rng.uniform(x0, x1)) for _ in range(n)]
    for cy, cx in centres[:n]:
        r = rng.uniform(0.6, 2.2)
        iy, ix = int(round(cy)), int(round(cx))
        R = int(math.ceil(r)) + 1
        ya, yb, xa, xb = max(iy - R, 0), min(iy + R + 1, h), max(ix - R, 0), min(ix + R + 1, w)
        if ya >= yb or xa >= xb or alpha[0, min(max(iy, 0), h - 1), min(max(ix, 0), w - 1)] < 0.5:
            continue
        yy, xx = torch.meshgrid(
            torch.arange(ya, yb, dtype=torch.float32) - cy,
            torch.arange(xa, xb, dtype=torch.float32) - cx,
            indexing="ij",
        )
        cover = (r + 0.5 - torch.sqrt(yy**2 + xx**2)).clamp(0, 1)
        if warm:
            col = hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.5), 1.0)
        else:
            col = hsv(hue + rng.normal(0, 0.1), rng.uniform(0.0, 0.8), 1.0)
        level = float(np.exp(rng.uniform(np.log(2.0), np.log(150.0))))
        hl = (col * level).view(3, 1, 1)
        patch = rad[:, ya:yb, xa:xb]
        rad[:, ya:yb, xa:xb] = patch * (1 - cover) + hl * cover
