"""One synthetic pair: a scene photographed twice, all in focus and with the EBB! lens's bokeh.

Disparity is "true" relative inverse depth z_near / z while the scene is built (``scene.py``); the
depth map written is min-max normalised per image like a monocular depth estimate, and K, d_f are
converted to that normalisation, so r = K |d - d_f| holds for the written map (see
``training.renderers.ebb_camera.sample_ebb_lens``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from training.renderers.convolve import fft_size
from training.renderers.ebb_camera import max_ebb_radius, sample_ebb_lens
from training.renderers.ground_truth import GroundTruthRenderer, Layer
from training.renderers.lens import LensParams

from .scene import SceneLayer, build_scene

SPLITS = ("train", "val")
SPLIT_IDS = {"train": 0, "val": 1}


def scene_rng(seed: int, split: str, index: int) -> tuple[np.random.Generator, torch.Generator]:
    """Random streams for one scene; they depend only on (seed, split, index)."""
    ss = np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)])
    rng = np.random.default_rng(ss)
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    return rng, gen


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


def all_in_focus(layers: list[SceneLayer], canvas: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Radiance (3, Hc, Wc) and true disparity (1, Hc, Wc) of the layers composited with "over",
    back to front: what a pinhole camera sees."""
    Hc, Wc = canvas
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
    return rad, dsp


def draw_lens(
    rng: np.random.Generator,
    width: int,
    d_f: float,
    d_inf: float,
    gamma: float,
    refocus_prob: float = 0.0,
    dof_max: float = 0.0,
) -> tuple[LensParams, dict]:
    """The scene's lens: the EBB! camera focused on the subject (at normalised disparity ``d_f``;
    infinity at ``d_inf``), refocused in ``refocus_prob`` of the scenes, with a sharp band in half of
    them when ``dof_max`` > 0 (see :func:`make_pair`). Returns the lens and its metadata."""
    # the scene's tone curve was drawn first (textures were linearised with it)
    lens, lens_meta = sample_ebb_lens(rng, width, d_f=d_f, d_inf=min(d_inf, d_f - 1e-3), gamma_range=(gamma, gamma))
    if refocus_prob > 0 and rng.random() < refocus_prob:
        lens, lens_meta = refocus(lens, lens_meta, float(rng.uniform(0.0, 1.0)), width)
    if dof_max > 0 and rng.random() < 0.5:
        lens = dataclasses.replace(lens, dof=float(rng.uniform(0.0, dof_max)))
    return lens, lens_meta


def encode(x: torch.Tensor, gamma: float) -> np.ndarray:
    """Linear radiance (3, H, W) -> the 8-bit (H, W, 3) image a camera writes: clipped, then gamma."""
    x = x.clamp(0, 1) ** (1.0 / gamma)
    return (x * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def render_pair(
    layers: list[SceneLayer],
    delta_s: float,
    desc: dict,
    gamma: float,
    size: tuple[int, int],
    rng: np.random.Generator,
    renderer: GroundTruthRenderer | None = None,
    refocus_prob: float = 0.0,
    dof_max: float = 0.0,
    ident: dict | None = None,
) -> Pair:
    """Photograph a scene built on the canvas of :func:`canvas_margin` for ``size`` = (H, W), focused
    on true disparity ``delta_s``: the all-in-focus photo, the per-image normalised depth map, a lens
    drawn from ``rng`` (:func:`draw_lens`) and the ground truth. ``ident`` (seed, split, index) opens
    the metadata, ``desc`` closes it."""
    renderer = renderer or GroundTruthRenderer()
    H, W = size
    my, mx = canvas_margin(H, W)
    Hc, Wc = H + 2 * my, W + 2 * mx
    rad, dsp = all_in_focus(layers, (Hc, Wc))
    crop = (slice(None), slice(my, my + H), slice(mx, mx + W))
    visible = dsp[crop]
    lo, hi = float(visible.min()), float(visible.max())
    span = max(hi - lo, 1e-3)
    d_f = float(np.clip((delta_s - lo) / span, 0.0, 1.0))
    d_inf = -lo / span
    lens, lens_meta = draw_lens(rng, W, d_f, d_inf, gamma, refocus_prob, dof_max)

    gt_layers = [Layer(layer.radiance, layer.alpha, (layer.delta - lo) / span, layer.y0, layer.x0) for layer in layers]
    bokeh_rad = renderer.render_layers(gt_layers, lens, (Hc, Wc))[crop]

    depth = ((visible - lo) / span).clamp(0, 1)[0]
    meta = {
        **(ident or {}),
        "subject_disparity": d_f,
        "max_blur_radius_px": float(lens.K * max(lens.d_f - lens.dof, 1 - lens.d_f - lens.dof, 0.0)),
        **lens_meta,
        "scene": desc,
    }
    return Pair(
        encode(rad[crop], gamma),
        encode(bokeh_rad, gamma),
        (depth * 65535.0 + 0.5).to(torch.int32).numpy().astype(np.uint16),
        lens,
        meta,
    )


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
    margin = canvas_margin(height, width)
    gamma = float(rng.uniform(2.0, 2.6))
    layers, delta_s, desc = build_scene(rng, gen, height, width, margin, gamma)
    ident = {"seed": seed, "split": split, "index": index}
    return render_pair(layers, delta_s, desc, gamma, (height, width), rng, renderer, refocus_prob, dof_max, ident)
