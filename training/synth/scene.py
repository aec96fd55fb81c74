"""One random scene: a stack of layers, back to front, each in "true" disparity.

The canvas has a margin wider than the largest blur (so light from outside the frame is rendered
too, then cropped). :func:`build_scene` lays the layers in this order, one step each:

- a far backdrop (sky gradients, foliage, walls, fractal textures) at disparity ~0-0.12, often with
  small HDR highlights that clip in the all-in-focus photo and become bokeh balls;
- optionally a ground plane whose disparity grows linearly towards the bottom of the frame (a plane
  is linear in inverse depth), and mid-distance bands (hedges, walls) with irregular tops;
- mid-distance objects and thin structures (branches, grass, wires, poles);
- a subject near the centre at disparity 0.45-0.85, the focal plane: a blob, a flower with a stem,
  a leafy clump or a person-like silhouette, with sharp irregular edges and thin parts;
- in about half of the scenes, blurred foreground occluders in front of the subject.

Disparity is "true" relative inverse depth z_near / z here; ``pair.py`` normalises it per image.
Every step draws from the scene's random streams in a fixed order, so a scene depends only on
(seed, split, index): reordering the draws changes every data set made so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .highlights import add_highlights
from .shapes import curve, make_shape, rasterize, shading
from .textures import fractal, hsv, random_palette, texture


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


def plane(h: int, w: int, y0: int, x0: int, d0: float, gy: float, gx: float, cy: float, cx: float) -> torch.Tensor:
    """(1, h, w) disparity of a tilted plane placed at canvas (y0, x0): d0 at canvas point (cy, cx),
    gy and gx per pixel down and across."""
    yy = torch.arange(y0, y0 + h, dtype=torch.float32).view(1, h, 1) - cy
    xx = torch.arange(x0, x0 + w, dtype=torch.float32).view(1, 1, w) - cx
    return (d0 + gy * yy + gx * xx).expand(1, h, w).clone()


class Canvas:
    """What the steps of :func:`build_scene` share: the scene's random streams and tone curve, the
    canvas, the layers laid so far and the ground plane (objects stand on it or sink behind it)."""

    def __init__(
        self, rng: np.random.Generator, gen: torch.Generator, H: int, W: int, margin: tuple[int, int], gamma: float
    ) -> None:
        self.rng, self.gen, self.gamma = rng, gen, gamma
        self.H, self.W = H, W
        self.my, self.mx = margin
        self.Hc, self.Wc = H + 2 * self.my, W + 2 * self.mx
        self.scale = W / 768.0  # sizes below are tuned at 768 px width
        self.layers: list[SceneLayer] = []
        self.desc: dict = {}
        self.ground: tuple[int, float, float, int] | None = None  # horizon row, its disparity, bottom's, rows

    def lin(self, tex: torch.Tensor) -> torch.Tensor:
        """Display-space texture -> linear radiance, with the scene's own gamma."""
        return tex.clamp(0, 1) ** self.gamma

    def ground_contact_row(self, delta: float) -> int | None:
        """Canvas row where the ground has this disparity (None without a ground or out of range)."""
        if self.ground is None:
            return None
        y_h, d_h, d_bot, gh = self.ground
        if not d_h < delta < d_bot:
            return None
        return int(y_h + (delta - d_h) / (d_bot - d_h) * (gh - 1))

    def add_object(
        self,
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
        """A textured, shaded silhouette centred at canvas (cy, cx) at disparity ``delta``, slightly
        slanted; returns its box (y0, y1, x0, x1)."""
        rng = self.rng
        a, _ = make_shape(kind, size, rng)
        h, w = a.shape[-2:]
        y0, x0 = int(cy - h / 2), int(cx - w / 2)
        contact = self.ground_contact_row(delta)
        if contact is not None:
            if stand:
                y0 = contact - h + 2  # the object stands on the ground at its own depth
            else:
                # the nearer ground below the contact row hides the object there
                rows = torch.arange(y0, y0 + h).view(1, h, 1)
                a = a * (rows <= contact)
        tex = texture(h, w, rng, self.gen, tex_kind) * shading(a, rng)
        rad = self.lin(tex)
        if rng.random() < 0.25:  # specular glints on the object
            add_highlights(rad, a, rng, int(rng.integers(1, 8)), (0, h, 0, w), cluster=False)
        gy, gx = rng.normal(0, slant) / max(h, 1), rng.normal(0, slant) / max(w, 1)
        d = plane(h, w, 0, 0, delta, gy, gx, h / 2, w / 2)
        self.layers.append(SceneLayer(rad, a, d, y0, x0, delta, name))
        return y0, y0 + h, x0, x0 + w


def add_backdrop(c: Canvas, delta_b: float) -> None:
    """The far backdrop over the whole canvas, often with HDR highlights."""
    rng, gen, Hc, Wc = c.rng, c.gen, c.Hc, c.Wc
    back_kind = str(rng.choice(["fractal", "foliage", "sky", "stripes", "tiles", "flat"]))
    c.desc["backdrop"] = back_kind
    if back_kind == "foliage":
        pal = random_palette(rng, 4, hue=rng.uniform(0.18, 0.42))
        tex = texture(Hc, Wc, rng, gen, "spots", pal)
    elif back_kind == "sky":
        top = hsv(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.6), rng.uniform(0.7, 1.0))
        bottom = hsv(rng.uniform(0.0, 0.65), rng.uniform(0.0, 0.3), rng.uniform(0.6, 1.0))
        t = torch.linspace(0, 1, Hc).view(1, Hc, 1)
        tex = (top.view(3, 1, 1) * (1 - t) + bottom.view(3, 1, 1) * t).expand(3, Hc, Wc).clone()
        tex = tex + 0.05 * fractal(Hc, Wc, gen, rng, largest=128, smallest=8)
        # a treeline / skyline band at the bottom part
        band = texture(Hc, Wc, rng, gen, str(rng.choice(["spots", "fractal", "tiles"])))
        edge = int(Hc * rng.uniform(0.35, 0.75))
        prof = fractal(1, Wc, gen, rng, largest=64, smallest=4)[0, 0] * rng.uniform(5, 40) * c.scale
        yy = torch.arange(Hc, dtype=torch.float32).view(Hc, 1)
        m = ((yy - (edge + prof.view(1, Wc))) * 0.7 + 0.5).clamp(0, 1)[None]
        tex = tex * (1 - m) + band * m
    else:
        tex = texture(Hc, Wc, rng, gen, back_kind)
    rad = c.lin(tex)
    alpha = torch.ones(1, Hc, Wc)
    if back_kind == "sky":
        rad = rad * rng.uniform(1.0, 1.6)  # bright sky that clips in the photo
    if rng.random() < 0.7:
        add_highlights(rad, alpha, rng, int(rng.integers(5, 80)), (0, Hc, 0, Wc), cluster=rng.random() < 0.6)
    g_back = rng.normal(0, 0.03) / Hc
    c.layers.append(
        SceneLayer(
            rad,
            alpha,
            plane(Hc, Wc, 0, 0, delta_b, g_back, rng.normal(0, 0.03) / Wc, Hc / 2, Wc / 2),
            0,
            0,
            -1.0,
            "backdrop",
        )
    )


def add_ground(c: Canvas, delta_b: float, delta_s: float) -> bool:
    """In 55 % of the scenes a ground plane from a horizon down to the bottom edge; returns whether
    the subject stands on it (the ground then reaches in front of the subject)."""
    rng, gen, Hc, Wc = c.rng, c.gen, c.Hc, c.Wc
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
        prof = fractal(1, Wc, gen, rng, largest=64, smallest=4)[0, 0] * rng.uniform(0, 12) * c.scale
        yy = torch.arange(gh, dtype=torch.float32).view(gh, 1)
        a = (yy - prof.clamp_min(0).view(1, Wc) + 0.5).clamp(0, 1)[None]
        delta = d_row.view(1, gh, 1).expand(1, gh, Wc).clone()
        rad = c.lin(tex)
        if rng.random() < 0.3:
            add_highlights(rad, a, rng, int(rng.integers(3, 30)), (0, gh // 2, 0, Wc), cluster=True)
        c.layers.append(SceneLayer(rad, a, delta, y_h, 0, 0.0, "ground"))
        c.ground = (y_h, delta_h, delta_bot, gh)
        c.desc["ground"] = {"horizon": y_h, "standing": standing}
    return standing


def add_bands(c: Canvas, delta_b: float, delta_s: float) -> None:
    """Up to two mid-distance bands (hedges, walls) with irregular tops, between backdrop and subject."""
    rng, gen, Hc, Wc = c.rng, c.gen, c.Hc, c.Wc
    for k in range(int(rng.integers(0, 3))):
        delta = float(rng.uniform(delta_b + 0.03, delta_b + 0.6 * (delta_s - delta_b)))
        top = int(Hc * rng.uniform(0.2, 0.7))
        bh = Hc - top
        prof = fractal(1, Wc, gen, rng, largest=128, smallest=2, beta=rng.uniform(0.6, 1.2))[0, 0]
        prof = prof * rng.uniform(5, 50) * c.scale
        yy = torch.arange(bh, dtype=torch.float32).view(bh, 1)
        a = (yy - (prof.view(1, Wc) - prof.min()) + 0.5).clamp(0, 1)[None]
        xs = torch.arange(Wc, dtype=torch.float32)
        span0, span1 = sorted(rng.uniform(-0.3, 1.3, 2) * Wc)
        a = a * ((xs >= span0) & (xs <= span1)).float().view(1, 1, Wc)
        contact = c.ground_contact_row(delta)
        if contact is not None:
            a = a * (torch.arange(top, Hc).view(1, bh, 1) <= contact)
        tex = texture(bh, Wc, rng, gen)
        rad = c.lin(tex)
        if rng.random() < 0.4:
            add_highlights(rad, a, rng, int(rng.integers(3, 40)), (0, bh, 0, Wc), cluster=rng.random() < 0.5)
        c.layers.append(
            SceneLayer(
                rad,
                a,
                plane(bh, Wc, top, 0, delta, 0.0, rng.normal(0, 0.02) / Wc, Hc / 2, Wc / 2),
                top,
                0,
                delta,
                f"band{k}",
            )
        )


def add_mid_objects(c: Canvas, delta_b: float, delta_s: float) -> None:
    """One to five objects and thin structures between the backdrop and the subject."""
    rng, Hc, Wc = c.rng, c.Hc, c.Wc
    for k in range(int(rng.integers(1, 6))):
        delta = float(rng.uniform(delta_b + 0.02, delta_s - 0.03))
        kind = str(rng.choice(["blob", "clump", "branch", "grass", "pole", "flower", "person"]))
        size = rng.uniform(0.1, 0.45) * c.H
        c.add_object(kind, size, rng.uniform(0, Hc), rng.uniform(0, Wc), delta, f"mid{k}", stand=rng.random() < 0.5)


def add_wire(c: Canvas, delta_b: float, delta_s: float) -> None:
    """In a quarter of the scenes a sagging wire across the frame: a structure one or two pixels thin."""
    rng, Hc, Wc = c.rng, c.Hc, c.Wc
    if rng.random() < 0.25:
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
        col = c.lin(hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.05, 0.6)).view(3, 1, 1).expand(3, Hc, Wc))
        c.layers.append(SceneLayer(col.clone(), wire_a, torch.full((1, Hc, Wc), delta), 0, 0, delta, "wire"))


def add_subject(c: Canvas, delta_s: float, standing: bool) -> None:
    """The subject near the centre, in focus at ``delta_s``; a flower usually gets a stem down to
    the bottom of the frame."""
    rng, gen, H, W = c.rng, c.gen, c.H, c.W
    kind = str(rng.choice(["blob", "flower", "clump", "person"], p=[0.3, 0.25, 0.25, 0.2]))
    size = rng.uniform(0.35, 0.75) * H
    cy = c.my + H * rng.uniform(0.35, 0.7)
    cx = c.mx + W * rng.uniform(0.3, 0.7)
    box = c.add_object(kind, size, cy, cx, delta_s, "subject", stand=standing, slant=0.01)
    c.desc["subject"] = kind
    if kind == "flower" and rng.random() < 0.8:  # a stem down to the bottom of the frame
        y0, y1, x0, x1 = box
        sx = (x0 + x1) / 2
        sw = rng.uniform(1.5, 6.0) * c.scale
        sh = c.Hc - (y0 + y1) // 2
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
            c.layers.append(
                SceneLayer(
                    c.lin(tex),
                    stem,
                    torch.full_like(stem, delta_s),
                    (y0 + y1) // 2,
                    int(sx - sw * 2 - 10),
                    delta_s - 1e-4,
                    "stem",
                )
            )


def add_occluders(c: Canvas, delta_s: float) -> None:
    """In half of the scenes one or two objects in front of the subject, towards the sides: they are
    blurred, and their soft edges reveal the hidden background."""
    rng, H, W = c.rng, c.H, c.W
    if rng.random() < 0.5:
        for k in range(int(rng.integers(1, 3))):
            delta = float(rng.uniform(min(delta_s + 0.08, 0.99), 1.0))
            kind = str(rng.choice(["clump", "branch", "grass", "blob", "pole"]))
            size = rng.uniform(0.2, 0.6) * H
            side = rng.choice([-1, 1])
            cx = c.mx + W * (0.5 + side * rng.uniform(0.3, 0.6))
            cy = c.my + H * rng.uniform(0.2, 1.0)
            c.add_object(kind, size, cy, cx, delta, f"front{k}", stand=False)


def build_scene(
    rng: np.random.Generator, gen: torch.Generator, H: int, W: int, margin: tuple[int, int], gamma: float
) -> tuple[list[SceneLayer], float, dict]:
    """Layers (back to front) of one random scene on an (H + 2 my, W + 2 mx) canvas; also the subject's
    true disparity and a description for the metadata."""
    c = Canvas(rng, gen, H, W, margin, gamma)
    delta_s = float(rng.uniform(0.45, 0.85))  # the subject: the focal plane
    delta_b = float(rng.uniform(0.0, 0.12))  # the backdrop
    add_backdrop(c, delta_b)
    standing = add_ground(c, delta_b, delta_s)
    add_bands(c, delta_b, delta_s)
    add_mid_objects(c, delta_b, delta_s)
    add_wire(c, delta_b, delta_s)
    add_subject(c, delta_s, standing)
    add_occluders(c, delta_s)
    # exposure and white balance of the whole scene, applied to radiance so both images agree
    gain = rng.uniform(0.7, 1.15) * torch.tensor(rng.uniform(0.88, 1.12, 3), dtype=torch.float32).view(3, 1, 1)
    for layer in c.layers:
        layer.radiance = layer.radiance * gain
    c.layers.sort(key=lambda layer: layer.order)
    return c.layers, delta_s, c.desc
