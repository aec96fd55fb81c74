"""Aperture kernels: the disk or N-blade polygon a defocused point of light spreads over.

Anti-aliased by area coverage and radius-exact (a disk kernel's area is pi r² within the subsample
error), energy-normalised, and cached: a render asks for the same few radii many times.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # only read for its fields here
    from .lens import LensParams


def aperture_edge_distance(dy: torch.Tensor, dx: torch.Tensor, radius: float, lens: LensParams) -> torch.Tensor:
    """Signed distance-like value, positive inside the aperture of the given radius.

    Disk: radius - rho. Polygon (circumradius = radius, as BokehMe's polygon renderer): the distance
    from the centre to the edge along the ray is radius * cos(pi/N) / cos(phi), phi the angle to the
    nearest edge normal; the value is that minus rho.
    """
    rho = torch.sqrt(dx * dx + dy * dy)
    if lens.aperture == "disk":
        return radius - rho
    n = lens.blades
    # image y points down: use -dy so that rotation 0 puts a vertex straight up
    theta = torch.atan2(-dy, dx) - (math.pi / 2 + lens.rotation)
    sector = 2 * math.pi / n
    # angle relative to the nearest edge normal (edge normals sit half a sector from the vertices)
    phi = torch.remainder(theta, sector) - sector / 2
    edge = radius * math.cos(math.pi / n) / torch.cos(phi)
    return edge - rho


def _subsample_offsets(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5


_KERNEL_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()


def _cached(key: tuple, build: Callable[[], torch.Tensor], limit: int = 256) -> torch.Tensor:
    hit = _KERNEL_CACHE.get(key)
    if hit is not None:
        _KERNEL_CACHE.move_to_end(key)
        return hit
    value = build()
    _KERNEL_CACHE[key] = value
    if len(_KERNEL_CACHE) > limit:
        _KERNEL_CACHE.popitem(last=False)
    return value


def aperture_kernel(radius: float, lens: LensParams, supersample: int = 8) -> torch.Tensor:
    """Energy-normalised aperture kernel of the given radius: (2R+1, 2R+1) float64, sums to 1.

    Each tap is the area of the pixel square covered by the disk/polygon, estimated on a
    ``supersample``² grid, so the kernel is anti-aliased and its size is exact (its area is
    pi r² for a disk within the subsample error). A radius below the subsample spacing gives a delta.
    """
    radius = float(radius)
    key = (
        "aa",
        round(radius, 6),
        lens.aperture,
        lens.blades if lens.aperture == "polygon" else 0,
        round(lens.rotation, 6) if lens.aperture == "polygon" else 0.0,
        supersample,
    )

    def build() -> torch.Tensor:
        R = int(math.ceil(radius + 0.5))
        if radius <= 0.0:
            k = torch.zeros(1, 1, dtype=torch.float64)
            k[0, 0] = 1.0
            return k
        taps = torch.arange(-R, R + 1, dtype=torch.float64)
        sub = _subsample_offsets(supersample)
        ys = (taps[:, None] + sub[None, :]).reshape(-1)
        yy, xx = torch.meshgrid(ys, ys, indexing="ij")
        inside = (aperture_edge_distance(yy, xx, radius, lens) >= 0).to(torch.float64)
        n = 2 * R + 1
        cover = inside.reshape(n, supersample, n, supersample).mean(dim=(1, 3))
        total = cover.sum()
        if total <= 0:
            k = torch.zeros(n, n, dtype=torch.float64)
            k[R, R] = 1.0
            return k
        return cover / total

    return _cached(key, build)
