"""Silhouettes of the synthetic scenes' objects: alpha masks with sharp, irregular edges and thin parts.

Each shape is drawn with PIL at SUPERSAMPLE times the size and box-filtered, so its edges are
anti-aliased but still sharp: the ground truth must know exactly where an object ends, and thin
structures (hair, branches, grass, wires) are where single-image renderers fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

SUPERSAMPLE = 4  # silhouettes are rasterised at 4x and box-filtered: anti-aliased, still sharp


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


def blob(S: int, rng: np.random.Generator) -> torch.Tensor:
    """One rounded outline with random lobes (a stone, a bush, a head-on object)."""
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
    return rasterize(h, w, lambda d, s: d.polygon(_scaled(pts, s), fill=255))


def flower(S: int, rng: np.random.Generator) -> torch.Tensor:
    """Petals around a round centre."""
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

    return rasterize(h, w, draw)


def clump(S: int, rng: np.random.Generator) -> torch.Tensor:
    """A leafy clump: many small leaves with gaps between them."""
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

    return rasterize(h, w, draw)


def person(S: int, rng: np.random.Generator) -> torch.Tensor:
    """A person-like silhouette: head, shoulders, body and loose hair strands (thin structures)."""
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

    return rasterize(h, w, draw)


def branch(S: int, rng: np.random.Generator) -> torch.Tensor:
    """A branching twig grown from the bottom edge, with leaves at some tips."""
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

    return rasterize(h, w, draw)


def grass(S: int, rng: np.random.Generator) -> torch.Tensor:
    """Tapering grass blades rising from the bottom edge."""
    h, w = int(S) + 4, int(S * rng.uniform(0.6, 1.5)) + 4

    def draw(d, s):
        for _ in range(int(rng.integers(8, 40))):
            x = rng.uniform(0, w)
            base = rng.uniform(0.8, 3.5)
            pts = curve(x, h + 1, h * rng.uniform(0.4, 1.0), -np.pi / 2 + rng.normal(0, 0.25), rng, 0.6, 8)
            left = [(px - base * (1 - i / 8) / 2, py) for i, (px, py) in enumerate(pts)]
            right = [(px + base * (1 - i / 8) / 2, py) for i, (px, py) in enumerate(pts)]
            d.polygon(_scaled(left + right[::-1], s), fill=255)

    return rasterize(h, w, draw)


def pole(S: int, rng: np.random.Generator) -> torch.Tensor:
    """A vertical pole of random thickness."""
    h, w = int(S * 1.5) + 4, int(S * 0.2) + 6
    wd = rng.uniform(1.0, max(1.5, w - 6))

    def draw(d, s):
        d.rectangle([(w / 2 - wd / 2) * s, 0, (w / 2 + wd / 2) * s, h * s], fill=255)

    return rasterize(h, w, draw)


# the silhouettes make_shape draws, by kind
SHAPES: dict[str, Callable[[int, np.random.Generator], torch.Tensor]] = {
    "blob": blob,
    "flower": flower,
    "clump": clump,
    "person": person,
    "branch": branch,
    "grass": grass,
    "pole": pole,
}


def make_shape(kind: str, size: float, rng: np.random.Generator) -> tuple[torch.Tensor, str]:
    """Alpha of a random silhouette of roughly ``size`` px, in a tight box (with a 2 px border)."""
    if kind not in SHAPES:
        raise ValueError(f"unknown shape kind {kind}")
    return SHAPES[kind](max(int(size), 6), rng), kind


def shading(alpha: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """(1, h, w) multiplicative shading that suggests volume: darker away from a light direction."""
    h, w = alpha.shape[-2:]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    a = rng.uniform(0, 2 * np.pi)
    lit = (xx * math.cos(a) + yy * math.sin(a)) * rng.uniform(0.0, 0.35)
    rr = (xx**2 + yy**2).clamp(max=1.0)
    return (1.0 + lit - rng.uniform(0.0, 0.3) * rr)[None].clamp(0.3, 1.4)
