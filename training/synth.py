"""Synthetic bokeh pairs: procedural scenes rendered with the ground-truth renderer.

    python -m training.synth --out DIR --train N --val M --size HxW --seed S [--workers W]

writes, for every scene i of each split,

    DIR/<split>/original/<i>.png   all-in-focus photo, 8-bit RGB
    DIR/<split>/bokeh/<i>.png      ground truth, 8-bit RGB
    DIR/<split>/depth/<i>.png      16-bit grayscale, normalised disparity * 65535 (bright = near)
    DIR/<split>/lens/<i>.json      the LensParams used (plus scene metadata under "meta")

and DIR/dataset.json with the generator's arguments. This is the EBB! layout the data loader reads.

Scenes. Each scene is a stack of layers on a canvas with a margin wider than the largest blur (so
light from outside the frame is rendered too, then cropped):

- a far backdrop (sky gradients, foliage, walls, fractal textures) at disparity ~0-0.12, often with
  small HDR highlights (radiance 2-150 x white: lamps, sun glints through leaves) that clip in
  the all-in-focus photo and become bokeh balls;
- optionally a ground plane whose disparity grows linearly towards the bottom of the frame (a plane
  is linear in inverse depth), and mid-distance bands (hedges, walls) with irregular tops;
- a subject near the centre at disparity 0.45-0.85, the focal plane: a blob, a flower with a stem,
  a leafy clump or a person-like silhouette, with sharp irregular edges and thin parts;
- mid-distance objects, thin structures (branches, grass, wires, poles) and, in about half of the
  scenes, blurred foreground occluders in front of the subject.

Textures mix fractal noise with random 1/f slopes mapped through random palettes, stripes, tiles,
spots and flat areas, with random saturation, brightness and shading, so a model cannot learn one
look. Disparity is "true" relative inverse depth z_near / z while the scene is built; the depth map
written is min-max normalised per image like a monocular depth estimate, and K, d_f are converted
to that normalisation, so r = K |d - d_f| holds for the written map (see ebb_camera.sample_ebb_lens).

Determinism and resuming: scene i of a split depends only on (seed, split, i). Files are written
atomically and a scene counts as done only when all four files exist, so an interrupted run can be
re-run: it redoes the incomplete scenes and skips the rest.
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import io
import json
import math
import multiprocessing as mp
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tqdm import tqdm

from common.io import atomic_write_bytes
from common.sizes import parse_size
from training.renderers.convolve import fft_size
from training.renderers.ebb_camera import max_ebb_radius, sample_ebb_lens
from training.renderers.ground_truth import GroundTruthRenderer, Layer
from training.renderers.lens import LensParams

SPLITS = ("train", "val")
SPLIT_IDS = {"train": 0, "val": 1}
KINDS = ("original", "bokeh", "depth", "lens")
SUFFIX = {"original": ".png", "bokeh": ".png", "depth": ".png", "lens": ".json"}
FORMAT_VERSION = 1
SUPERSAMPLE = 4  # silhouettes are rasterised at 4x and box-filtered: anti-aliased, still sharp


# ==== random helpers ===================================================================================
def scene_rng(seed: int, split: str, index: int) -> tuple[np.random.Generator, torch.Generator]:
    """Random streams for one scene; they depend only on (seed, split, index)."""
    ss = np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)])
    rng = np.random.default_rng(ss)
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    return rng, gen


def _hsv(h: float, s: float, v: float) -> torch.Tensor:
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
    cols = [_hsv(hue + rng.normal(0, spread), sat * rng.uniform(0.6, 1.3), v) for v in vals]
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


# ==== silhouettes ============================================================================================
def rasterize(h: int, w: int, draw_fn: Callable[[ImageDraw.ImageDraw, int], None]) -> torch.Tensor:
    """Alpha (1, h, w) of shapes drawn by draw_fn(draw, s) in an s-times supersampled 'L' image."""
    s = SUPERSAMPLE
    im = Image.new("L", (w * s, h * s), 0)
    draw_fn(ImageDraw.Draw(im), s)
    a = np.asarray(im, dtype=np.float32).reshape(h, s, w, s).mean(axis=(1, 3)) / 255.0
    return torch.from_numpy(a)[None]


def radial_polygon(
    cx: float,
    cy: float,
    radius: float,
    rng: np.random.Generator,
    roughness: float,
    aspect: float = 1.0,
    angle: float = 0.0,
    n: int = 160,
) -> list[tuple[float, float]]:
    """An irregular closed outline: radius modulated by random harmonics (sharp lobes when rough)."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 14):
        r += rng.normal(0, roughness / k**0.9) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.25, None) * radius
    x, y = r * np.cos(th) * aspect, r * np.sin(th)
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + ca * a - sa * b, cy + sa * a + ca * b) for a, b in zip(x, y)]


def _scaled(points: list[tuple[float, float]], s: float) -> list[tuple[float, float]]:
    return [(x * s, y * s) for x, y in points]


def curve(
    x0: float, y0: float, length: float, angle: float, rng: np.random.Generator, bend: float = 0.3, steps: int = 24
) -> list[tuple[float, float]]:
    """A smoothly bending polyline (random walk of the direction): stems, branches, blades, hair."""
    pts = [(x0, y0)]
    a = angle
    for _ in range(steps):
        a += rng.normal(0, bend / math.sqrt(steps))
        x, y = pts[-1]
        pts.append((x + math.cos(a) * length / steps, y + math.sin(a) * length / steps))
    return pts


def make_shape(kind: str, size: float, rng: np.random.Generator) -> tuple[torch.Tensor, str]:
    """Alpha of a random silhouette of roughly ``size`` px, in a tight box (with a 2 px border)."""
    S = max(int(size), 6)
    if kind == "blob":
        h = w = int(S * 1.3) + 4
        pts = radial_polygon(
            w / 2,
            h / 2,
            S * 0.45,
            rng,
            roughness=rng.uniform(0.05, 0.45),
            aspect=rng.uniform(0.6, 1.4),
            angle=rng.uniform(0, np.pi),
        )
        return rasterize(h, w, lambda d, s: d.polygon(_scaled(pts, s), fill=255)), kind
    if kind == "flower":
        h = w = int(S * 1.1) + 4
        n = int(rng.integers(5, 13))
        pet = S * rng.uniform(0.25, 0.42)
        width = rng.uniform(0.25, 0.6)
        rot = rng.uniform(0, 2 * np.pi)

        def draw(d, s):
            for k in range(n):
                a = rot + 2 * np.pi * k / n
                cx, cy = w / 2 + math.cos(a) * pet * 0.55, h / 2 + math.sin(a) * pet * 0.55
                d.polygon(_scaled(radial_polygon(cx, cy, pet * 0.5, rng, 0.05, aspect=1 / width, angle=a), s), fill=255)
            rr = pet * rng.uniform(0.2, 0.45)
            d.ellipse([(w / 2 - rr) * s, (h / 2 - rr) * s, (w / 2 + rr) * s, (h / 2 + rr) * s], fill=255)

        return rasterize(h, w, draw), kind
    if kind == "clump":  # leafy clump: many small leaves with gaps between them
        h = w = int(S * 1.2) + 4
        n = int(rng.integers(12, 40))
        leaf = S * rng.uniform(0.06, 0.14)

        def draw(d, s):
            for _ in range(n):
                rr = math.sqrt(rng.random()) * S * 0.45
                a = rng.uniform(0, 2 * np.pi)
                cx, cy = w / 2 + rr * math.cos(a), h / 2 + rr * math.sin(a)
                d.polygon(
                    _scaled(
                        radial_polygon(
                            cx,
                            cy,
                            leaf * rng.uniform(0.6, 1.4),
                            rng,
                            0.1,
                            aspect=rng.uniform(1.5, 2.5),
                            angle=rng.uniform(0, np.pi),
                            n=24,
                        ),
                        s,
                    ),
                    fill=255,
                )

        return rasterize(h, w, draw), kind
    if kind == "person":
        h, w = int(S * 1.6) + 4, int(S * 0.9) + 4
        head = S * rng.uniform(0.13, 0.18)

        def draw(d, s):
            cx = w / 2
            d.ellipse([(cx - head) * s, 2 * s, (cx + head) * s, (2 + 2.4 * head) * s], fill=255)
            top = 2 + 2.2 * head
            sh = S * rng.uniform(0.32, 0.42)
            body = [
                (cx - head * 0.5, top),
                (cx + head * 0.5, top),
                (cx + sh, top + head * 0.9),
                (cx + sh * rng.uniform(0.8, 1.05), h + 2),
                (cx - sh * rng.uniform(0.8, 1.05), h + 2),
                (cx - sh, top + head * 0.9),
            ]
            d.polygon(_scaled(body, s), fill=255)
            for _ in range(int(rng.integers(0, 40))):  # loose hair strands: thin structures
                a = rng.uniform(-np.pi, 0)
                pts = curve(
                    cx + math.cos(a) * head,
                    2 + 1.2 * head + math.sin(a) * head * 1.1,
                    head * rng.uniform(0.3, 0.8),
                    a,
                    rng,
                    bend=0.8,
                    steps=6,
                )
                d.line(_scaled(pts, s), fill=255, width=max(1, int(s * rng.uniform(0.4, 1.2))))

        return rasterize(h, w, draw), kind
    if kind == "branch":
        h = w = int(S * 1.2) + 8

        def draw(d, s):
            stack = [(rng.uniform(0, w), h + 1, -np.pi / 2 + rng.normal(0, 0.4), S * 0.7, rng.uniform(1.5, 5), 0)]
            while stack:
                x, y, a, ln, wd, depth = stack.pop()
                pts = curve(x, y, ln, a, rng, bend=0.5, steps=10)
                d.line(_scaled(pts, s), fill=255, width=max(1, int(wd * s)), joint="curve")
                if depth < 3:
                    for _ in range(int(rng.integers(1, 4))):
                        k = int(rng.integers(3, len(pts)))
                        stack.append(
                            (
                                *pts[k],
                                a + rng.choice([-1, 1]) * rng.uniform(0.3, 1.0),
                                ln * 0.55,
                                max(wd * 0.6, 0.7),
                                depth + 1,
                            )
                        )
                if depth >= 1 and rng.random() < 0.6:  # leaves at the tips
                    ex, ey = pts[-1]
                    lf = S * 0.05
                    d.polygon(_scaled(radial_polygon(ex, ey, lf, rng, 0.05, aspect=2.0, angle=a, n=16), s), fill=255)

        return rasterize(h, w, draw), kind
    if kind == "grass":
        h, w = int(S) + 4, int(S * rng.uniform(0.6, 1.5)) + 4

        def draw(d, s):
            for _ in range(int(rng.integers(8, 40))):
                x = rng.uniform(0, w)
                base = rng.uniform(0.8, 3.5)
                pts = curve(x, h + 1, h * rng.uniform(0.4, 1.0), -np.pi / 2 + rng.normal(0, 0.25), rng, 0.6, 8)
                left = [(px - base * (1 - i / 8) / 2, py) for i, (px, py) in enumerate(pts)]
                right = [(px + base * (1 - i / 8) / 2, py) for i, (px, py) in enumerate(pts)]
                d.polygon(_scaled(left + right[::-1], s), fill=255)

        return rasterize(h, w, draw), kind
    if kind == "pole":
        h, w = int(S * 1.5) + 4, int(S * 0.2) + 6
        wd = rng.uniform(1.0, max(1.5, w - 6))

        def draw(d, s):
            d.rectangle([(w / 2 - wd / 2) * s, 0, (w / 2 + wd / 2) * s, h * s], fill=255)

        return rasterize(h, w, draw), kind
    raise ValueError(f"unknown shape kind {kind}")


def shading(alpha: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """(1, h, w) multiplicative shading that suggests volume: darker away from a light direction."""
    h, w = alpha.shape[-2:]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    a = rng.uniform(0, 2 * np.pi)
    lit = (xx * math.cos(a) + yy * math.sin(a)) * rng.uniform(0.0, 0.35)
    rr = (xx**2 + yy**2).clamp(max=1.0)
    return (1.0 + lit - rng.uniform(0.0, 0.3) * rr)[None].clamp(0.3, 1.4)


# ==== highlights =================================================================================================
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
            col = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.5), 1.0)
        else:
            col = _hsv(hue + rng.normal(0, 0.1), rng.uniform(0.0, 0.8), 1.0)
        level = float(np.exp(rng.uniform(np.log(2.0), np.log(150.0))))
        hl = (col * level).view(3, 1, 1)
        patch = rad[:, ya:yb, xa:xb]
        rad[:, ya:yb, xa:xb] = patch * (1 - cover) + hl * cover


# ==== scene ======================================================================================================
@dataclass
class SceneLayer:
    """A layer in "true" disparity (z_near / z) before normalisation."""

    radiance: torch.Tensor  # (3, h, w) linear
    alpha: torch.Tensor  # (1, h, w)
    delta: torch.Tensor  # (1, h, w) true relative disparity
    y0: int
    x0: int
    order: float  # sort key, back (small) to front
    name: str


def _plane(h: int, w: int, y0: int, x0: int, d0: float, gy: float, gx: float, cy: float, cx: float) -> torch.Tensor:
    yy = torch.arange(y0, y0 + h, dtype=torch.float32).view(1, h, 1) - cy
    xx = torch.arange(x0, x0 + w, dtype=torch.float32).view(1, 1, w) - cx
    return (d0 + gy * yy + gx * xx).expand(1, h, w).clone()


def build_scene(
    rng: np.random.Generator, gen: torch.Generator, H: int, W: int, margin: tuple[int, int], gamma: float
) -> tuple[list[SceneLayer], float, dict]:
    """Layers (back to front) of one random scene on an (H + 2 my, W + 2 mx) canvas; also the subject's
    true disparity and a description for the metadata."""
    my, mx = margin
    Hc, Wc = H + 2 * my, W + 2 * mx
    layers: list[SceneLayer] = []
    desc: dict = {}
    scale = W / 768.0  # sizes below are tuned at 768 px width

    def lin(tex: torch.Tensor) -> torch.Tensor:
        return tex.clamp(0, 1) ** gamma

    delta_s = float(rng.uniform(0.45, 0.85))
    delta_b = float(rng.uniform(0.0, 0.12))

    # --- backdrop ---
    back_kind = str(rng.choice(["fractal", "foliage", "sky", "stripes", "tiles", "flat"]))
    desc["backdrop"] = back_kind
    if back_kind == "foliage":
        pal = random_palette(rng, 4, hue=rng.uniform(0.18, 0.42))
        tex = texture(Hc, Wc, rng, gen, "spots", pal)
    elif back_kind == "sky":
        top = _hsv(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.6), rng.uniform(0.7, 1.0))
        bottom = _hsv(rng.uniform(0.0, 0.65), rng.uniform(0.0, 0.3), rng.uniform(0.6, 1.0))
        t = torch.linspace(0, 1, Hc).view(1, Hc, 1)
        tex = (top.view(3, 1, 1) * (1 - t) + bottom.view(3, 1, 1) * t).expand(3, Hc, Wc).clone()
        tex = tex + 0.05 * fractal(Hc, Wc, gen, rng, largest=128, smallest=8)
        # a treeline / skyline band at the bottom part
        band = texture(Hc, Wc, rng, gen, str(rng.choice(["spots", "fractal", "tiles"])))
        edge = int(Hc * rng.uniform(0.35, 0.75))
        prof = fractal(1, Wc, gen, rng, largest=64, smallest=4)[0, 0] * rng.uniform(5, 40) * scale
        yy = torch.arange(Hc, dtype=torch.float32).view(Hc, 1)
        m = ((yy - (edge + prof.view(1, Wc))) * 0.7 + 0.5).clamp(0, 1)[None]
        tex = tex * (1 - m) + band * m
    else:
        tex = texture(Hc, Wc, rng, gen, back_kind)
    rad = lin(tex)
    alpha = torch.ones(1, Hc, Wc)
    if back_kind == "sky":
        rad = rad * rng.uniform(1.0, 1.6)  # bright sky that clips in the photo
    if rng.random() < 0.7:
        add_highlights(rad, alpha, rng, int(rng.integers(5, 80)), (0, Hc, 0, Wc), cluster=rng.random() < 0.6)
    g_back = rng.normal(0, 0.03) / Hc
    layers.append(
        SceneLayer(
            rad,
            alpha,
            _plane(Hc, Wc, 0, 0, delta_b, g_back, rng.normal(0, 0.03) / Wc, Hc / 2, Wc / 2),
            0,
            0,
            -1.0,
            "backdrop",
        )
    )

    # --- ground plane ---
    ground = None
    standing = False
    if rng.random() < 0.55:
        y_h = int(Hc * rng.uniform(0.3, 0.65))
        delta_h = delta_b + rng.uniform(0.0, 0.05)
        standing = rng.random() < 0.45
        if standing:
            delta_bot = min(1.0, delta_s + rng.uniform(0.08, 0.35))
        else:
            delta_bot = rng.uniform(delta_h + 0.05, max(delta_h + 0.06, delta_s - 0.02))
        gh = Hc - y_h
        d_row = delta_h + (delta_bot - delta_h) * torch.linspace(0, 1, gh)
        # perspective: a ground texture seen at distance Z (~ 1 / disparity) shrinks as 1 / Z in both
        # directions; Z is relative to the bottom row and capped where the texture would alias
        cap = 6.0
        Z = (d_row[-1] / d_row.clamp_min(1e-3)).clamp(max=cap)
        tex = texture(gh, Wc, rng, gen)
        grid_y = (1.0 - 2.0 * (Z - 1.0) / (cap - 1.0)).view(1, gh, 1, 1).expand(1, gh, Wc, 1)
        grid_x = (torch.linspace(-1, 1, Wc).view(1, 1, Wc) * (Z / cap).view(1, gh, 1)).unsqueeze(-1)
        tex = F.grid_sample(tex[None], torch.cat([grid_x, grid_y], dim=-1), mode="bilinear", align_corners=True)[0]
        prof = fractal(1, Wc, gen, rng, largest=64, smallest=4)[0, 0] * rng.uniform(0, 12) * scale
        yy = torch.arange(gh, dtype=torch.float32).view(gh, 1)
        a = (yy - prof.clamp_min(0).view(1, Wc) + 0.5).clamp(0, 1)[None]
        delta = d_row.view(1, gh, 1).expand(1, gh, Wc).clone()
        rad = lin(tex)
        if rng.random() < 0.3:
            add_highlights(rad, a, rng, int(rng.integers(3, 30)), (0, gh // 2, 0, Wc), cluster=True)
        layers.append(SceneLayer(rad, a, delta, y_h, 0, 0.0, "ground"))
        ground = (y_h, delta_h, delta_bot, gh)
        desc["ground"] = {"horizon": y_h, "standing": standing}

    def ground_contact_row(delta: float) -> int | None:
        """Canvas row where the ground has this disparity (None without a ground or out of range)."""
        if ground is None:
            return None
        y_h, d_h, d_bot, gh = ground
        if not d_h < delta < d_bot:
            return None
        return int(y_h + (delta - d_h) / (d_bot - d_h) * (gh - 1))

    def add_object(
        kind: str,
        size: float,
        cy: float,
        cx: float,
        delta: float,
        name: str,
        stand: bool = False,
        tex_kind: str | None = None,
        slant: float = 0.02,
    ) -> tuple[int, int, int, int]:
        a, _ = make_shape(kind, size, rng)
        h, w = a.shape[-2:]
        y0, x0 = int(cy - h / 2), int(cx - w / 2)
        contact = ground_contact_row(delta)
        if contact is not None:
            if stand:
                y0 = contact - h + 2  # the object stands on the ground at its own depth
            else:
                # the nearer ground below the contact row hides the object there
                rows = torch.arange(y0, y0 + h).view(1, h, 1)
                a = a * (rows <= contact)
        tex = texture(h, w, rng, gen, tex_kind) * shading(a, rng)
        rad = lin(tex)
        if rng.random() < 0.25:  # specular glints on the object
            add_highlights(rad, a, rng, int(rng.integers(1, 8)), (0, h, 0, w), cluster=False)
        gy, gx = rng.normal(0, slant) / max(h, 1), rng.normal(0, slant) / max(w, 1)
        d = _plane(h, w, 0, 0, delta, gy, gx, h / 2, w / 2)
        layers.append(SceneLayer(rad, a, d, y0, x0, delta, name))
        return y0, y0 + h, x0, x0 + w

    # --- mid-distance bands (hedges, walls) ---
    for k in range(int(rng.integers(0, 3))):
        delta = float(rng.uniform(delta_b + 0.03, delta_b + 0.6 * (delta_s - delta_b)))
        top = int(Hc * rng.uniform(0.2, 0.7))
        bh = Hc - top
        prof = fractal(1, Wc, gen, rng, largest=128, smallest=2, beta=rng.uniform(0.6, 1.2))[0, 0]
        prof = prof * rng.uniform(5, 50) * scale
        yy = torch.arange(bh, dtype=torch.float32).view(bh, 1)
        a = (yy - (prof.view(1, Wc) - prof.min()) + 0.5).clamp(0, 1)[None]
        xs = torch.arange(Wc, dtype=torch.float32)
        span0, span1 = sorted(rng.uniform(-0.3, 1.3, 2) * Wc)
        a = a * ((xs >= span0) & (xs <= span1)).float().view(1, 1, Wc)
        contact = ground_contact_row(delta)
        if contact is not None:
            a = a * (torch.arange(top, Hc).view(1, bh, 1) <= contact)
        tex = texture(bh, Wc, rng, gen)
        rad = lin(tex)
        if rng.random() < 0.4:
            add_highlights(rad, a, rng, int(rng.integers(3, 40)), (0, bh, 0, Wc), cluster=rng.random() < 0.5)
        layers.append(
            SceneLayer(
                rad,
                a,
                _plane(bh, Wc, top, 0, delta, 0.0, rng.normal(0, 0.02) / Wc, Hc / 2, Wc / 2),
                top,
                0,
                delta,
                f"band{k}",
            )
        )

    # --- mid objects and thin structures between the backdrop and the subject ---
    for k in range(int(rng.integers(1, 6))):
        delta = float(rng.uniform(delta_b + 0.02, delta_s - 0.03))
        kind = str(rng.choice(["blob", "clump", "branch", "grass", "pole", "flower", "person"]))
        size = rng.uniform(0.1, 0.45) * H
        add_object(kind, size, rng.uniform(0, Hc), rng.uniform(0, Wc), delta, f"mid{k}", stand=rng.random() < 0.5)
    if rng.random() < 0.25:  # a wire across the frame
        delta = float(rng.uniform(delta_b + 0.02, min(1.0, delta_s + 0.3)))
        wy = rng.uniform(0.1, 0.6) * Hc
        sag = rng.uniform(0, 0.1) * Hc
        width = rng.uniform(0.7, 2.0)
        wire_a = rasterize(
            Hc,
            Wc,
            lambda d, s: d.line(
                [(x * s, (wy + sag * (2 * x / Wc - 1) ** 2) * s) for x in np.linspace(0, Wc, 40)],
                fill=255,
                width=max(1, int(width * s)),
            ),
        )
        col = lin(_hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.05, 0.6)).view(3, 1, 1).expand(3, Hc, Wc))
        layers.append(SceneLayer(col.clone(), wire_a, torch.full((1, Hc, Wc), delta), 0, 0, delta, "wire"))

    # --- the subject, in focus ---
    kind = str(rng.choice(["blob", "flower", "clump", "person"], p=[0.3, 0.25, 0.25, 0.2]))
    size = rng.uniform(0.35, 0.75) * H
    cy = my + H * rng.uniform(0.35, 0.7)
    cx = mx + W * rng.uniform(0.3, 0.7)
    box = add_object(kind, size, cy, cx, delta_s, "subject", stand=standing, slant=0.01)
    desc["subject"] = kind
    if kind == "flower" and rng.random() < 0.8:  # a stem down to the bottom of the frame
        y0, y1, x0, x1 = box
        sx = (x0 + x1) / 2
        sw = rng.uniform(1.5, 6.0) * scale
        sh = Hc - (y0 + y1) // 2
        if sh > 4:
            stem = rasterize(
                sh,
                int(sw * 4 + 20),
                lambda d, s: d.line(
                    [(p[0] * s, p[1] * s) for p in curve(sw * 2 + 10, 0, sh + 2, np.pi / 2, rng, 0.2, 12)],
                    fill=255,
                    width=max(1, int(sw * s)),
                ),
            )
            tex = texture(*stem.shape[-2:], rng, gen, "fractal", random_palette(rng, 3, hue=rng.uniform(0.2, 0.4)))
            layers.append(
                SceneLayer(
                    lin(tex),
                    stem,
                    torch.full_like(stem, delta_s),
                    (y0 + y1) // 2,
                    int(sx - sw * 2 - 10),
                    delta_s - 1e-4,
                    "stem",
                )
            )

    # --- blurred foreground occluders in front of the subject ---
    if rng.random() < 0.5:
        for k in range(int(rng.integers(1, 3))):
            delta = float(rng.uniform(min(delta_s + 0.08, 0.99), 1.0))
            kind = str(rng.choice(["clump", "branch", "grass", "blob", "pole"]))
            size = rng.uniform(0.2, 0.6) * H
            side = rng.choice([-1, 1])
            cx = mx + W * (0.5 + side * rng.uniform(0.3, 0.6))
            cy = my + H * rng.uniform(0.2, 1.0)
            add_object(kind, size, cy, cx, delta, f"front{k}", stand=False)

    # exposure and white balance of the whole scene, applied to radiance so both images agree
    gain = rng.uniform(0.7, 1.15) * torch.tensor(rng.uniform(0.88, 1.12, 3), dtype=torch.float32).view(3, 1, 1)
    for layer in layers:
        layer.radiance = layer.radiance * gain
    layers.sort(key=lambda layer: layer.order)
    return layers, delta_s, desc


@dataclass
class Pair:
    original: np.ndarray  # (H, W, 3) uint8
    bokeh: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) uint16
    lens: LensParams
    meta: dict


def refocus(lens: LensParams, meta: dict, d_f: float, width: int) -> tuple[LensParams, dict]:
    """The same lens focused at disparity ``d_f``. K is kept (the aperture does not change) but
    capped so that no radius exceeds the canvas margin's :func:`max_ebb_radius`: light from
    outside the frame is only rendered that far."""
    K = min(lens.K, max_ebb_radius(width) / max(d_f, 1.0 - d_f))
    new = dataclasses.replace(lens, K=K, d_f=d_f)
    return new, {**meta, "refocused_from_d_f": lens.d_f}


def canvas_margin(H: int, W: int) -> tuple[int, int]:
    """Margins (rows, cols) wider than the largest blur, rounded so the canvas has fast FFT sizes."""
    m = int(math.ceil(max_ebb_radius(W))) + 2
    return (fft_size(H + 2 * m) - H + 1) // 2, (fft_size(W + 2 * m) - W + 1) // 2


def make_pair(
    seed: int,
    split: str,
    index: int,
    height: int,
    width: int,
    renderer: GroundTruthRenderer | None = None,
    refocus_prob: float = 0.0,
    dof_max: float = 0.0,
) -> Pair:
    """Build and render scene ``index`` of ``split``; depends only on (seed, split, index, size,
    refocus_prob).

    ``refocus_prob``: the share of scenes focused at a random disparity instead of on the subject,
    so that a lens-conditioned model sees the focal plane anywhere (background, foreground, between)
    and learns to follow d_f rather than to keep "the near thing" sharp. 0 draws nothing extra, so
    the scenes of older data sets are unchanged.

    ``dof_max``: half of the scenes get a sharp band (``LensParams.dof``) drawn uniformly in
    [0, dof_max], the others none, so a lens-conditioned model learns both eq. 1 and the band."""
    rng, gen = scene_rng(seed, split, index)
    renderer = renderer or GroundTruthRenderer()
    H, W = height, width
    my, mx = canvas_margin(H, W)
    Hc, Wc = H + 2 * my, W + 2 * mx
    gamma = float(rng.uniform(2.0, 2.6))
    layers, delta_s, desc = build_scene(rng, gen, H, W, (my, mx), gamma)

    # all-in-focus composite (radiance and true disparity), "over" back to front
    rad = torch.zeros(3, Hc, Wc)
    dsp = torch.zeros(1, Hc, Wc)
    for layer in layers:
        h, w = layer.alpha.shape[-2:]
        ya, yb, xa, xb = max(layer.y0, 0), min(layer.y0 + h, Hc), max(layer.x0, 0), min(layer.x0 + w, Wc)
        if ya >= yb or xa >= xb:
            continue
        sl = (slice(None), slice(ya - layer.y0, yb - layer.y0), slice(xa - layer.x0, xb - layer.x0))
        a = layer.alpha[sl]
        rad[:, ya:yb, xa:xb] = layer.radiance[sl] * a + rad[:, ya:yb, xa:xb] * (1 - a)
        dsp[:, ya:yb, xa:xb] = layer.delta[sl] * a + dsp[:, ya:yb, xa:xb] * (1 - a)
    crop = (slice(None), slice(my, my + H), slice(mx, mx + W))
    visible = dsp[crop]
    lo, hi = float(visible.min()), float(visible.max())
    span = max(hi - lo, 1e-3)
    d_f = float(np.clip((delta_s - lo) / span, 0.0, 1.0))
    d_inf = -lo / span
    # the scene's tone curve was drawn first (textures were linearised with it)
    lens, lens_meta = sample_ebb_lens(rng, W, d_f=d_f, d_inf=min(d_inf, d_f - 1e-3), gamma_range=(gamma, gamma))
    if refocus_prob > 0 and rng.random() < refocus_prob:
        lens, lens_meta = refocus(lens, lens_meta, float(rng.uniform(0.0, 1.0)), W)
    if dof_max > 0 and rng.random() < 0.5:
        lens = dataclasses.replace(lens, dof=float(rng.uniform(0.0, dof_max)))

    gt_layers = [Layer(layer.radiance, layer.alpha, (layer.delta - lo) / span, layer.y0, layer.x0) for layer in layers]
    bokeh_rad = renderer.render_layers(gt_layers, lens, (Hc, Wc))[crop]

    def encode(x: torch.Tensor) -> np.ndarray:
        x = x.clamp(0, 1) ** (1.0 / gamma)
        return (x * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    depth = ((visible - lo) / span).clamp(0, 1)[0]
    meta = {
        "seed": seed,
        "split": split,
        "index": index,
        "subject_disparity": d_f,
        "max_blur_radius_px": float(lens.K * max(lens.d_f - lens.dof, 1 - lens.d_f - lens.dof, 0.0)),
        **lens_meta,
        "scene": desc,
    }
    return Pair(
        encode(rad[crop]),
        encode(bokeh_rad),
        (depth * 65535.0 + 0.5).to(torch.int32).numpy().astype(np.uint16),
        lens,
        meta,
    )


# ==== files ========================================================================================================
def scene_paths(out: Path, split: str, index: int) -> dict[str, Path]:
    return {k: out / split / k / f"{index}{SUFFIX[k]}" for k in KINDS}


def scene_complete(out: Path, split: str, index: int) -> bool:
    return all(p.is_file() and p.stat().st_size > 0 for p in scene_paths(out, split, index).values())


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_pair(out: Path, split: str, index: int, pair: Pair) -> None:
    """Write the four files atomically; the lens JSON goes last, but completeness is judged on all
    four, so a scene interrupted between files is redone (identically) on the next run."""
    paths = scene_paths(out, split, index)
    atomic_write_bytes(paths["original"], _png_bytes(pair.original))
    atomic_write_bytes(paths["depth"], _png_bytes(pair.depth))
    atomic_write_bytes(paths["bokeh"], _png_bytes(pair.bokeh))
    pair.lens.save(paths["lens"], meta=pair.meta)


def _work(job: tuple) -> tuple[str, int, float]:
    out, split, index, seed, H, W, refocus_prob, dof_max = job
    t = time.perf_counter()
    write_pair(Path(out), split, index, make_pair(seed, split, index, H, W, refocus_prob=refocus_prob, dof_max=dof_max))
    return split, index, time.perf_counter() - t


def _init_worker() -> None:
    torch.set_num_threads(1)  # one process per core: threads would only fight each other


def parse_data_size(text: str) -> tuple[int, int]:
    return parse_size(text, max_mpx=None)  # data may be made larger than a model input


def _clean_temp_files(out: Path) -> None:
    """Remove temp files left by an interrupted run: ``.<file>.tmp-<host>-<pid>`` (``common.io``), and
    ``.<file>.<random>.tmp`` from folders written before it."""
    for split in SPLITS:
        for kind in KINDS:
            folder = out / split / kind
            if folder.is_dir():
                for p in [*folder.glob(".*.tmp"), *folder.glob(".*.tmp-*")]:
                    try:
                        p.unlink()
                    except OSError:
                        pass


def generate(
    out: Path,
    n_train: int,
    n_val: int,
    size: tuple[int, int],
    seed: int,
    workers: int = 1,
    progress: bool = True,
    refocus_prob: float = 0.0,
    dof_max: float = 0.0,
) -> dict:
    """Generate (or complete) a dataset; returns counts of generated and skipped scenes."""
    H, W = size
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "dataset.json"
    config = {
        "format_version": FORMAT_VERSION,
        "generator": "training.synth",
        "size": [H, W],
        "seed": seed,
        "train": n_train,
        "val": n_val,
        "refocus_prob": refocus_prob,
        "dof_max": dof_max,
        "layout": "<split>/{original,bokeh,depth}/<i>.png, <split>/lens/<i>.json; depth = disparity * 65535",
    }
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"{meta_path}: unreadable ({exc}); remove it or choose another --out") from None
        if (
            old.get("size") != [H, W]
            or old.get("seed") != seed
            or old.get("format_version") != FORMAT_VERSION
            or old.get("refocus_prob", 0.0) != refocus_prob
            or old.get("dof_max", 0.0) != dof_max
        ):
            raise SystemExit(
                f"{meta_path}: this folder holds a dataset made with size {old.get('size')}, seed "
                f"{old.get('seed')}, refocus_prob {old.get('refocus_prob', 0.0)} and dof_max "
                f"{old.get('dof_max', 0.0)}; refusing to mix it with size {[H, W]}, seed {seed}, "
                f"refocus_prob {refocus_prob} and dof_max {dof_max}. "
                f"Choose another --out or delete the folder."
            )
    atomic_write_bytes(meta_path, (json.dumps(config, indent=2) + "\n").encode())
    _clean_temp_files(out)
    for split in SPLITS:
        for kind in KINDS:
            (out / split / kind).mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(out), split, i, seed, H, W, refocus_prob, dof_max)
        for split, n in (("val", n_val), ("train", n_train))
        for i in range(n)
    ]
    todo = [j for j in jobs if not scene_complete(out, j[1], j[2])]
    skipped = len(jobs) - len(todo)
    bar = tqdm(total=len(jobs), initial=skipped, desc=f"synth {H}x{W}", unit="pair", disable=not progress)
    t0 = time.perf_counter()
    try:
        if workers <= 1:
            for job in todo:
                _work(job)
                bar.update(1)
        else:
            ctx = mp.get_context("spawn")  # no fork after torch has started its thread pools
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for _ in pool.imap_unordered(_work, todo, chunksize=1):
                    bar.update(1)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    return {
        "generated": len(todo),
        "skipped": skipped,
        "seconds": elapsed,
        "pairs_per_minute": (60.0 * len(todo) / elapsed) if todo and elapsed > 0 else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="dataset folder (created; re-running resumes)")
    p.add_argument("--train", type=int, required=True, help="number of training pairs")
    p.add_argument("--val", type=int, required=True, help="number of validation pairs")
    p.add_argument("--size", type=parse_data_size, default=(512, 768), help="HxW, multiples of 16 (default 512x768)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1; use 2 on a 2-core machine)")
    p.add_argument(
        "--refocus-prob",
        type=float,
        default=0.0,
        help="share of scenes focused at a random disparity instead of the subject (default 0; "
        "0.35 for the lens-conditioned model)",
    )
    p.add_argument(
        "--dof-max",
        type=float,
        default=0.0,
        help="half of the scenes get a sharp band (LensParams.dof) in [0, DOF_MAX] (default 0; 0.2 for "
        "the lens-conditioned model)",
    )
    args = p.parse_args(argv)
    if not 0.0 <= args.dof_max <= 0.5:
        p.error("--dof-max must lie in [0, 0.5]")
    if not 0.0 <= args.refocus_prob <= 1.0:
        p.error("--refocus-prob must lie in [0, 1]")
    if args.train < 0 or args.val < 0:
        p.error("--train and --val must be >= 0")
    if args.workers < 1:
        p.error("--workers must be >= 1")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        p.error(f"--out {args.out}: is a file, not a folder for the data set")
    # one thread per process: on a shared 2-core machine a second OpenMP thread made generation 6x
    # slower (measured); use --workers 2 to use both cores
    torch.set_num_threads(1)
    stats = generate(
        args.out,
        args.train,
        args.val,
        args.size,
        args.seed,
        args.workers,
        refocus_prob=args.refocus_prob,
        dof_max=args.dof_max,
    )
    rate = stats["pairs_per_minute"]
    print(
        f"{stats['generated']} pairs generated, {stats['skipped']} already present"
        + (f", {rate:.1f} pairs/min" if rate else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
