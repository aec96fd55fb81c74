"""A scatter with a per-pixel radius, vectorised as one FFT convolution per radius bin.

Sources are split between the two nearest bins (:class:`BinSplit`) so that the second moment of
the spread, hence its radius, is exact; the bin step only sets how soft a large disk's edge is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from .convolve import convolve_crop


def radius_bins(r_max: float, min_step: float = 0.5, rel_step: float = 0.125, max_step: float = 2.0) -> list[float]:
    """Bin radii 0, 0.5, 1, ... with steps growing as r/8 (capped at 2 px) up to >= r_max.

    Sources are split between the two neighbouring bins so that the mean squared spread is exact, so
    the rendered radius is exact; the step only sets how soft the edge of a large blur disk is.
    """
    bins = [0.0]
    while bins[-1] < r_max:
        step = min(max(min_step, rel_step * bins[-1]), max_step)
        bins.append(round(bins[-1] + step, 6))
    if len(bins) == 1:
        bins.append(min_step)
    return bins


def signed_bins(S_min: float, S_max: float, **steps: float) -> list[float]:
    """Sorted bin centres covering [S_min, S_max], symmetric radius bins on both sides of 0."""
    neg = radius_bins(max(-S_min, 0.0), **steps)
    pos = radius_bins(max(S_max, 0.0), **steps)
    return [-b for b in reversed(neg[1:])] + pos


class BinSplit:
    """Split of a per-pixel value v (a radius or a signed defocus) between sorted bin centres.

    A value between neighbouring centres a < b (never of opposite signs: 0 is a centre) goes to b
    with weight t = (v² - a²) / (b² - a²) and to a with 1 - t. Read as blur radii this keeps the mean
    squared spread of the mixture of the two kernels equal to that of a kernel of radius |v|, so
    the rendered size is exact. Values beyond the outer centres go to the outer centre.
    """

    def __init__(self, v: torch.Tensor, centres: Sequence[float]) -> None:
        if len(centres) < 2 or any(b <= a for a, b in zip(centres, centres[1:])):
            raise ValueError(f"BinSplit: need >= 2 increasing centres, got {list(centres)}")
        if centres[0] < 0 < centres[-1] and 0.0 not in centres:
            raise ValueError("BinSplit: centres spanning both signs must include 0")
        self.centres = [float(c) for c in centres]
        c = torch.tensor(self.centres, dtype=v.dtype, device=v.device)
        v = v.clamp(self.centres[0], self.centres[-1])
        idx = torch.bucketize(v, c, right=True).clamp(1, len(self.centres) - 1)  # v in [c[idx-1], c[idx])
        lo, hi = c[idx - 1], c[idx]
        self.idx = idx
        self.t = ((v * v - lo * lo) / (hi * hi - lo * lo)).clamp(0.0, 1.0)

    def present(self) -> list[int]:
        """Indices of the centres that receive some share."""
        counts = torch.bincount(self.idx.flatten(), minlength=len(self.centres))
        u = torch.nonzero(counts).flatten().tolist()  # cheaper than torch.unique on a CPU
        return sorted(set(u) | {j - 1 for j in u})

    def box(self, j: int, support: torch.Tensor | None = None) -> tuple[int, int, int, int] | None:
        """Bounding box of the pixels with a share in centre j (optionally within a support mask)."""
        sel = (self.idx == j) | (self.idx == j + 1)
        if support is not None:
            sel = sel & support
        return bbox_of(sel)

    def share(self, j: int, box: tuple[int, int, int, int]) -> torch.Tensor:
        """Weights of centre j on the box crop."""
        y0, y1, x0, x1 = box
        idx = self.idx[..., y0:y1, x0:x1]
        t = self.t[..., y0:y1, x0:x1]
        zero = torch.zeros_like(t)
        return torch.where(idx == j + 1, 1.0 - t, zero) + torch.where(idx == j, t, zero)


def bin_weights(r: torch.Tensor, bins: Sequence[float]) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (bin index, full-size weight map) for every bin with a share (see :class:`BinSplit`)."""
    split = BinSplit(r, bins)
    full = (0, r.shape[-2], 0, r.shape[-1])
    for j in split.present():
        yield j, split.share(j, full)


def bbox_of(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the non-zero entries of an (…, H, W) mask, or None if all zero."""
    m = (mask.reshape(-1, *mask.shape[-2:]) != 0).any(dim=0)
    rows = torch.nonzero(m.any(dim=1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(m.any(dim=0)).flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def scatter_by_radius(
    values: torch.Tensor,
    radius: torch.Tensor,
    kernel_for: Callable[[float], torch.Tensor],
    bins: Sequence[float],
    constant_tol: float = 0.05,
    lowres_min_radius: float | None = None,
) -> torch.Tensor:
    """Scatter every pixel of ``values`` (C, H, W) over a kernel of its own ``radius`` (1, H, W).

    out(p) = sum_s values(s) * k_{r(s)}(p - s), computed as a sum over radius bins of an FFT
    convolution of the bin's share of the sources (only over the bounding box of that share). The
    output keeps the input's extent: light scattered past the border is lost, so callers that need
    energy near the border pad first. When the radius is the same (within ``constant_tol``) for all
    sources, a single convolution with the exact kernel replaces the bins.
    """
    out = torch.zeros_like(values)
    extent = values.shape[-2:]
    support = values.abs().amax(dim=0, keepdim=True) > 0
    box = bbox_of(support)
    if box is None:
        return out
    r_used = radius[support]
    r_lo, r_hi = float(r_used.min()), float(r_used.max())
    if r_hi - r_lo <= constant_tol:
        # one radius (a fronto-parallel layer): one convolution with the exact kernel, no bins
        y0, y1, x0, x1 = box
        res, (y0, y1, x0, x1) = convolve_crop(
            values[:, y0:y1, x0:x1], (y0, x0), extent, 0.5 * (r_lo + r_hi), kernel_for, lowres_min_radius
        )
        out[:, y0:y1, x0:x1] += res
        return out
    split = BinSplit(radius, bins)
    for j in split.present():
        jbox = split.box(j, support)
        if jbox is None:
            continue
        y0, y1, x0, x1 = jbox
        crop = values[:, y0:y1, x0:x1] * split.share(j, jbox)
        res, (y0, y1, x0, x1) = convolve_crop(crop, (y0, x0), extent, bins[j], kernel_for, lowres_min_radius)
        out[:, y0:y1, x0:x1] += res
    return out
