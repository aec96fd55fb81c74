"""Surfaces of the synthetic scenes: palettes, fractal noise and the textures built from them.

Textures mix fractal noise with random 1/f slopes mapped through random palettes, stripes, tiles,
spots and flat areas, with random saturation, brightness and shading, so a model cannot learn one
look. Everything here is display-space colour in [0, 1]; the scene linearises it with its gamma.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
import torch
import torch.nn.functional as F


def hsv(h: float, s: float, v: float) -> torch.Tensor:
    """RGB (3,) of a hue (wrapped around) and a saturation and value (clipped to [0, 1])."""
    return torch.tensor(
        colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))), dtype=torch.float32
    )


def random_palette(rng: np.random.Generator, n: int | None = None, hue: float | None = None) -> torch.Tensor:
    """(n, 3) display-space colours ordered dark to light, around one hue (sometimes two)."""
    n = n or int(rng.integers(2, 5))
    hue = rng.random() if hue is None else hue
    spread = rng.choice([0.03, 0.08, 0.2, 0.5])
    sat = rng.beta(1.5, 1.8)
    vals = np.sort(rng.uniform(0.08, 0.92, n))
    cols = [hsv(hue + rng.normal(0, spread), sat * rng.uniform(0.6, 1.3), v) for v in vals]
    return torch.stack(cols)


def palette_map(x: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Map x (1, h, w) in [0, 1] through a piecewise-linear palette (n, 3) -> (3, h, w)."""
    n = palette.shape[0]
    pos = x.clamp(0, 1) * (n - 1)
    out = torch.zeros(3, *x.shape[-2:])
    for k in range(n):  # hat-function weights: cheaper than gathering per pixel
        out += (1.0 - (pos - k).abs()).clamp_min(0.0) * palette[k].view(3, 1, 1)
    return out


def fractal(
    h: int,
    w: int,
    gen: torch.Generator,
    rng: np.random.Generator,
    largest: int | None = None,
    smallest: int = 2,
    beta: float | None = None,
) -> torch.Tensor:
    """(1, h, w) fractal noise, zero mean, unit std; octave amplitude ~ cell**beta (1/f-like)."""
    beta = rng.uniform(0.3, 1.4) if beta is None else beta
    largest = largest or int(2 ** rng.integers(4, 8))
    acc = torch.zeros(1, 1, h, w)
    cell = largest
    while cell >= smallest:
        gh, gw = h // cell + 3, w // cell + 3
        n = torch.randn(1, 1, gh, gw, generator=gen)
        up = F.interpolate(n, scale_factor=cell, mode="bilinear", align_corners=False)
        oy, ox = int(rng.integers(0, cell)), int(rng.integers(0, cell))
        acc += up[..., oy : oy + h, ox : ox + w] * float(cell) ** beta
        cell //= 2
    acc = acc[0]
    return (acc - acc.mean()) / acc.std().clamp_min(1e-6)


def texture(
    h: int,
    w: int,
    rng: np.random.Generator,
    gen: torch.Generator,
    kind: str | None = None,
    palette: torch.Tensor | None = None,
) -> torch.Tensor:
    """(3, h, w) display-space texture in [0, 1] of a random kind."""
    kind = kind or str(rng.choice(["fractal", "fractal", "fractal", "stripes", "tiles", "spots", "flat"]))
    pal = random_palette(rng) if palette is None else palette
    if kind == "fractal":
        x = 0.5 + 0.5 * torch.tanh(fractal(h, w, gen, rng) * rng.uniform(0.4, 1.2))
        tex = palette_map(x, pal)
    elif kind == "stripes":
        yy, xx = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        th = rng.uniform(0, math.pi)
        period = rng.uniform(4, 60)
        warp = fractal(h, w, gen, rng, largest=64, smallest=8) * rng.uniform(0, 6)
        phase = (xx * math.cos(th) + yy * math.sin(th) + warp[0]) / period
        x = 0.5 + 0.5 * torch.sin(2 * math.pi * phase) * rng.uniform(0.3, 1.0)
        tex = palette_map(x[None], pal)
    elif kind == "tiles":
        tw, th_ = rng.uniform(10, 70), rng.uniform(8, 50)
        yy, xx = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        row = torch.floor(yy / th_)
        xs = xx + (row % 2) * tw * 0.5
        col = torch.floor(xs / tw)
        cell_rand = torch.frac(torch.sin(row * 12.9898 + col * 78.233 + rng.uniform(0, 100)) * 43758.5453)
        mortar = ((yy % th_) < 1.5) | ((xs % tw) < 1.5)
        x = 0.3 + 0.6 * cell_rand
        x = torch.where(mortar, torch.full_like(x, rng.uniform(0, 1)), x)
        x = x + 0.08 * fractal(h, w, gen, rng, largest=16)[0]
        tex = palette_map(x[None], pal)
    elif kind == "spots":
        n = fractal(h, w, gen, rng, largest=int(2 ** rng.integers(3, 6)), smallest=2, beta=1.2)
        thr = rng.uniform(-0.6, 0.8)
        x = ((n - thr) * 3.0).clamp(0, 1)  # steep but anti-aliased edges
        tex = palette_map(0.15 + 0.7 * x, pal)
    else:  # flat with a gentle gradient and fine grain
        base = pal[int(rng.integers(0, pal.shape[0]))].view(3, 1, 1)
        gy = torch.linspace(-1, 1, h).view(1, h, 1) * rng.normal(0, 0.15)
        tex = base * (1 + gy) + 0.02 * fractal(h, w, gen, rng, largest=8)
        tex = tex.expand(3, h, w)
    # brightness variation (lighting) on top of every kind
    light = 1.0 + rng.uniform(0.0, 0.35) * torch.tanh(
        fractal(h, w, gen, rng, largest=int(2 ** rng.integers(5, 8)), smallest=16)
    )
    return (tex * light).clamp(0.0, 1.0)
