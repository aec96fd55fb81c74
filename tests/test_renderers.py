"""Property tests of the lens model and the renderers.

Every reference below is computed independently of the renderer code: the area of a disk or a
regular polygon, the second moment of a disk (r^2 / 2), the area of a circular segment for partial
occlusion, point-in-polygon tests built from explicit vertices, and hand-derived lens numbers.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from training.renderers import RENDERERS, GroundTruthRenderer, Layer, LensParams, get_renderer
from training.renderers.aperture import aperture_kernel
from training.renderers.binned_scatter import radius_bins
from training.renderers.blend import BlendRenderer
from training.renderers.ebb_camera import ebb_radius_at_infinity, sample_ebb_lens
from training.renderers.layered import LayeredRenderer, d2f_layer_radii
from training.renderers.lens import blur_radius
from training.renderers.scatter import ScatterRenderer

ALL = ["scatter", "layered", "blend", "ground_truth"]


def textured(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g) * 0.8 + 0.1


def polygon_vertices(cx: float, cy: float, R: float, n: int, rotation: float) -> np.ndarray:
    """Vertices of the regular polygon: vertex 0 straight up (image y down), counter-clockwise."""
    a = math.pi / 2 + rotation + 2 * math.pi * np.arange(n) / n
    return np.stack([cx + R * np.cos(a), cy - R * np.sin(a)], axis=1)


def inside_polygon(x: np.ndarray, y: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Convex point-in-polygon by the sign of cross products (independent of lens.py)."""
    inside = np.ones_like(x, dtype=bool)
    n = len(verts)
    signs = []
    for i in range(n):
        (x0, y0), (x1, y1) = verts[i], verts[(i + 1) % n]
        signs.append((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0))
    signs = np.stack(signs)
    inside &= (signs <= 0).all(axis=0) | (signs >= 0).all(axis=0)
    return inside


# ---- lens model --------------------------------------------------------------------------------------
def test_lens_validation_names_the_problem():
    with pytest.raises(ValueError, match="K"):
        LensParams(K=-1.0, d_f=0.5)
    with pytest.raises(ValueError, match="d_f"):
        LensParams(K=10.0, d_f=1.5)
    with pytest.raises(ValueError, match="aperture"):
        LensParams(K=10.0, d_f=0.5, aperture="hexagon")
    with pytest.raises(ValueError, match="blades"):
        LensParams(K=10.0, d_f=0.5, aperture="polygon", blades=2)
    with pytest.raises(ValueError, match="gamma"):
        LensParams(K=10.0, d_f=0.5, gamma=float("nan"))


def test_lens_json_round_trip_and_file_errors(tmp_path):
    lens = LensParams(K=12.5, d_f=0.7, gamma=2.4, aperture="polygon", blades=7, rotation=0.3)
    assert LensParams.from_json(lens.to_json()) == lens
    path = tmp_path / "lens.json"
    lens.save(path, meta={"note": "ignored on load"})
    assert json.loads(path.read_text())["meta"] == {"note": "ignored on load"}
    assert LensParams.load(path) == lens
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        LensParams.load(bad)
    bad.write_text(json.dumps({"K": 1.0}))
    with pytest.raises(ValueError, match="bad.json.*d_f"):
        LensParams.load(bad)


def test_blur_radius_is_bokehme_eq1():
    lens = LensParams(K=30.0, d_f=0.6)
    d = torch.tensor([0.0, 0.6, 1.0, 0.45])
    assert torch.allclose(blur_radius(d, lens), torch.tensor([18.0, 0.0, 12.0, 4.5]))


def test_ebb_radius_matches_hand_derivation():
    # A = 50/1.8 = 27.78 mm; c_inf = A f / (z_f - f) = 27.78 * 50 / 1950 = 0.7123 mm at z_f = 2 m;
    # one pixel of a 1536-wide EBB! image is 22.3/1536 = 14.52 um -> diameter 49.06 px, radius 24.53 px
    assert ebb_radius_at_infinity(2.0, 1536) == pytest.approx(24.53, abs=0.05)
    assert ebb_radius_at_infinity(2.0, 768) == pytest.approx(24.53 / 2, abs=0.03)


def _thin_lens_radius_at_infinity(focus_m: float, width: int) -> float:
    """The EBB! camera by hand: Canon 7D (22.3 mm sensor), 50 mm at f/1.8, image ``width`` px wide."""
    aperture_mm = 50.0 / 1.8
    coc_mm = aperture_mm * 50.0 / (focus_m * 1000.0 - 50.0)  # A f / (z_f - f)
    return 0.5 * coc_mm / (22.3 / width)


def test_sampled_ebb_lens_ranges():
    rng = np.random.default_rng(0)
    polys = 0
    for _ in range(300):
        d_f, d_inf = rng.uniform(0.3, 1.0), -rng.uniform(0.0, 0.3)
        lens, meta = sample_ebb_lens(rng, 768, d_f, d_inf)
        # focus 1..4 m: c_inf = 27.78*50/(z_f - 50 mm) = 1.462 .. 0.3516 mm; a pixel of a 768-wide
        # image is 22.3/768 = 29.04 um, so the radius at infinity is 25.18 .. 6.05 px
        assert 1.0 <= meta["focus_distance_m"] <= 4.0
        assert 6.05 - 0.01 <= meta["radius_at_infinity_px"] <= 25.18 + 0.01
        assert meta["radius_at_infinity_px"] == pytest.approx(
            _thin_lens_radius_at_infinity(meta["focus_distance_m"], 768)
        )
        assert lens.d_f == d_f and lens.K > 0
        polys += lens.aperture == "polygon"
        if lens.aperture == "polygon":
            assert 5 <= lens.blades <= 8
    assert 30 < polys < 90  # about 20 % polygons


def test_sampled_ebb_lens_blurs_a_point_at_infinity_by_the_thin_lens_radius():
    """K and d_f of a sampled lens, read by the synthetic data's renderer, blur a point light at
    d_inf (where the normalised depth map puts infinity) into a disk of the radius the EBB! camera
    gives at the sampled focus distance, worked out by hand; and a point halfway to infinity in
    disparity into one of half that radius (blur is linear in inverse depth). Measured on the
    rendered image, from the disk's second moment: a wrong K (say r_inf / d_f, forgetting d_inf)
    blurs by the wrong amount."""
    rng = np.random.default_rng(1)
    n = 128
    for _ in range(4):
        d_f, d_inf = rng.uniform(0.5, 1.0), -rng.uniform(0.0, 0.4)
        lens, meta = sample_ebb_lens(rng, 768, d_f, d_inf, polygon_prob=0.0)
        r_inf = _thin_lens_radius_at_infinity(meta["focus_distance_m"], 768)
        for d, r in ((d_inf, r_inf), ((d_f + d_inf) / 2, r_inf / 2)):
            light = torch.zeros(3, n, n)
            light[:, n // 2, n // 2] = 1.0  # linear radiance: the render is the point spread itself
            layer = Layer(light, torch.ones(1, n, n), torch.full((1, n, n), d))
            psf = GroundTruthRenderer().render_layers([layer], lens, (n, n))[0].double()
            y, x = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
            m2 = float((psf * (x**2 + y**2)).sum() / psf.sum())
            # a disk has E[rho^2] = r^2 / 2; each pixel's own area adds 1/12 per axis
            assert math.sqrt(2 * (m2 - 1 / 6)) == pytest.approx(r, rel=0.02, abs=0.1), (d, r)


def test_for_photo_defaults():
    d = torch.zeros(1, 1, 100, 150)
    d[..., 70:, :] = 1.0  # 30 % near subject at d = 1, the rest at d = 0
    lens = LensParams.for_photo(d)
    assert lens.d_f == pytest.approx(1.0)
    assert lens.dof == pytest.approx(0.1)  # the whole subject in a sharp band
    # The farthest surface is blurred by 1.63 % of the width, the band taken out: K (1 - 0.1).
    far_radius = blur_radius(torch.zeros(1), lens)
    assert float(far_radius) == pytest.approx(0.0163 * 150, rel=1e-6)
    assert float(blur_radius(torch.tensor([0.95]), lens)) == 0.0  # inside the band: sharp
    wide = LensParams.for_photo(torch.nn.functional.interpolate(d, scale_factor=2.0))
    assert wide.K == pytest.approx(2 * lens.K, rel=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        LensParams.for_photo(torch.full((4, 4), float("nan")))


# ---- aperture kernels ------------------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [3.0, 7.3, 15.5])
def test_disk_kernel_is_radius_exact(radius):
    lens = LensParams(K=1.0, d_f=0.5)
    k = aperture_kernel(radius, lens).numpy()
    R = k.shape[0] // 2
    y, x = np.mgrid[-R : R + 1, -R : R + 1]
    rho = np.hypot(x, y)
    assert k.sum() == pytest.approx(1.0)
    # second moment of a uniform disk is r^2 / 2, plus the pixel's own 1/12 per axis
    m2 = (k * rho**2).sum()
    assert m2 == pytest.approx(radius**2 / 2 + 1 / 6, rel=0.02, abs=0.02)
    assert k[rho > radius + 0.75].sum() == 0.0
    if radius > 2:
        inner = k[rho < radius - 0.75]
        assert inner.max() == pytest.approx(inner.min())  # flat inside: a disk, not a bump


@pytest.mark.parametrize("blades,rotation", [(5, 0.0), (6, 0.4), (8, 1.0)])
def test_polygon_kernel_matches_independent_polygon(blades, rotation):
    R = 12.0
    lens = LensParams(K=1.0, d_f=0.5, aperture="polygon", blades=blades, rotation=rotation)
    k = aperture_kernel(R, lens).numpy()
    c = k.shape[0] // 2
    sub = 8
    ys, xs = np.mgrid[0 : k.shape[0] * sub, 0 : k.shape[1] * sub]
    px, py = (xs + 0.5) / sub - 0.5 - c, (ys + 0.5) / sub - 0.5 - c
    cover = inside_polygon(px, py, polygon_vertices(0.0, 0.0, R, blades, rotation))
    cover = cover.reshape(k.shape[0], sub, k.shape[1], sub).mean(axis=(1, 3))
    area = blades / 2 * R**2 * math.sin(2 * math.pi / blades)
    assert cover.sum() == pytest.approx(area, rel=0.01)
    assert np.abs(k - cover / cover.sum()).max() < 0.05 * k.max()


# ---- renderer properties ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_in_focus_plane_is_unchanged(name):
    img = textured(48, 64)
    lens = LensParams(K=25.0, d_f=0.4, gamma=2.2)
    out = get_renderer(name).render(img, torch.full((1, 1, 48, 64), 0.4), lens)
    assert out.shape == img.shape
    assert (out - img).abs().max() < 1e-4


def _point_scene(value: float, d: float, size: int = 128):
    img = torch.zeros(1, 3, size, size)
    img[0, :, size // 2, size // 2] = value
    return img, torch.full((1, 1, size, size), d)


def _measure(out: torch.Tensor, gamma: float):
    """Linear energy, area of the footprint at half its plateau, and mean squared distance."""
    lin = out[0, 0].double() ** gamma
    n = lin.shape[0]
    y, x = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    rho2 = (x**2 + y**2).double()
    plateau = lin[rho2 <= 4].mean()
    area = float((lin > 0.5 * plateau).sum())
    return float(lin.sum()), area, float((lin * rho2).sum() / lin.sum()), lin


@pytest.mark.parametrize(
    "name,K",
    [
        ("scatter", 20.0),
        ("scatter", 36.0),
        ("ground_truth", 20.0),
        ("ground_truth", 31.0),
        ("layered", 20.0),
        ("layered", 32.0),
    ],
)
@pytest.mark.parametrize("aperture", ["disk", "polygon"])
def test_point_renders_as_the_aperture(name, K, aperture):
    """A bright point at d renders as the aperture of radius K|d - d_f| (within 1 px), energy kept to 1 %.

    The layered renderer quantises radii into D2F's layers, so its K values put the point on a layer.
    """
    gamma, value, d, d_f = 2.2, 0.9, 0.25, 0.75  # |d - d_f| = 0.5 exactly
    r = K * abs(d - d_f)
    if name == "layered":
        assert r in d2f_layer_radii(r)
    lens = LensParams(K=K, d_f=d_f, gamma=gamma, aperture=aperture, blades=6, rotation=0.2)
    img, disp = _point_scene(value, d)
    energy, area, m2, lin = _measure(get_renderer(name).render(img, disp, lens), gamma)
    assert energy == pytest.approx(value**gamma, rel=0.01)
    if aperture == "disk":
        assert math.sqrt(area / math.pi) == pytest.approx(r, abs=1.0)
        assert math.sqrt(2 * m2) == pytest.approx(r, abs=1.0)  # a disk has E[rho^2] = r^2 / 2
        expected = None
    else:
        # circumradius R of a regular hexagon with that area, and its shape
        R = math.sqrt(area * 2 / (6 * math.sin(2 * math.pi / 6)))
        assert R == pytest.approx(r, abs=1.0)
        n = lin.shape[0]
        yy, xx = np.mgrid[0:n, 0:n] - n // 2
        expected = inside_polygon(xx.astype(float), yy.astype(float), polygon_vertices(0, 0, r, 6, 0.2))
        got = (lin > 0.5 * lin[n // 2, n // 2]).numpy()
        iou = (got & expected).sum() / (got | expected).sum()
        assert iou > 0.9


def test_blend_point_has_the_disk_second_moment():
    """DBSI blurs with Gaussians, so no disk; the weights still give the spread of a disk of radius r."""
    gamma, value = 2.2, 0.9
    for K in (8.0, 20.0, 30.0):
        r = K * 0.5
        lens = LensParams(K=K, d_f=0.7, gamma=gamma)
        img, disp = _point_scene(value, 0.2)
        energy, _, m2, _ = _measure(BlendRenderer(reference_width=128).render(img, disp, lens), gamma)
        assert energy == pytest.approx(value**gamma, rel=0.01)
        assert math.sqrt(2 * m2) == pytest.approx(r, abs=0.5)


def _edge_scene(fg_d: float, bg_d: float, h: int = 64, w: int = 96):
    g = torch.Generator().manual_seed(3)
    img = torch.empty(1, 3, h, w)
    img[0, 0] = 0.7 + 0.2 * torch.rand(h, w, generator=g)  # red-ish textured foreground on the left
    img[0, 1] = 0.2
    img[0, 2] = 0.05
    # textured blue background on the right
    img[0, :, :, w // 2 :] = torch.tensor([0.05, 0.3, 0.6]).view(3, 1, 1) + torch.tensor([0.0, 0.2, 0.35]).view(
        3, 1, 1
    ) * torch.rand(1, h, w - w // 2, generator=g)
    disp = torch.full((1, 1, h, w), bg_d)
    disp[..., : w // 2] = fg_d
    return img, disp


@pytest.mark.parametrize("name", ALL)
def test_sharp_foreground_keeps_its_pixels(name):
    img, disp = _edge_scene(fg_d=0.8, bg_d=0.1)
    lens = LensParams(K=30.0, d_f=0.8, gamma=2.2)  # background blur radius 21 px
    out = get_renderer(name).render(img, disp, lens)
    fg = slice(0, 48)
    assert (out[..., fg] - img[..., fg]).abs().max() < 2e-3  # every foreground pixel, up to the edge
    assert out[0, 2, :, fg].max() <= img[0, 2, :, fg].max() + 2e-3  # no blue bleeding in
    # and the background next to the edge is blurred (the image is not just returned)
    assert (out[..., 48:56] - img[..., 48:56]).abs().max() > 0.05


def test_bokehme_scatter_without_depth_test_bleeds():
    """The paper's scatter (no depth test) bleeds background over a sharp foreground: the property
    above is not trivially true."""
    img, disp = _edge_scene(fg_d=0.8, bg_d=0.1)
    lens = LensParams(K=30.0, d_f=0.8, gamma=2.2)
    out = ScatterRenderer(occlusion=False).render(img, disp, lens)
    assert (out[..., 40:48] - img[..., 40:48]).abs().max() > 0.05


def test_ground_truth_blurred_foreground_covers_background_partially():
    """A blurred foreground half-plane over a sharp background: at distance x from the edge the
    foreground covers the fraction of the blur disk beyond the edge (circular segment area)."""
    H, W, r = 96, 160, 12.0
    lens = LensParams(K=r / 0.5, d_f=0.3, gamma=2.2)
    fg_rad, bg_rad = torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.05, 0.2, 0.6])
    bg = Layer(bg_rad.view(3, 1, 1).expand(3, H, W).clone(), torch.ones(1, H, W), torch.full((1, H, W), 0.3))
    fg_alpha = torch.zeros(1, H, W)
    fg_alpha[..., : W // 2] = 1.0
    fg = Layer(fg_rad.view(3, 1, 1).expand(3, H, W).clone(), fg_alpha, torch.full((1, H, W), 0.8))
    out = GroundTruthRenderer().render_layers([bg, fg], lens, (H, W))
    row = out[:, H // 2]
    edge = W / 2  # the edge between columns W/2 - 1 and W/2
    for col in range(W // 2 - 16, W // 2 + 16):
        x = col + 0.5 - edge  # signed distance of the pixel centre from the edge (> 0: background side)
        xc = min(max(x, -r), r)
        segment = r * r * math.acos(xc / r) - xc * math.sqrt(r * r - xc * xc)  # disk area beyond the edge
        cover = segment / (math.pi * r * r)
        expected = cover * fg_rad + (1 - cover) * bg_rad
        assert torch.allclose(row[:, col], expected, atol=0.02), (col, row[:, col], expected)
    # far inside the background the sharp background is untouched
    assert torch.allclose(row[:, -10], bg_rad, atol=1e-5)


def test_ground_truth_highlight_keeps_its_radiance():
    """HDR radiance survives the blur: a highlight of radiance 50 on a 3x3 patch spread over a disk of
    radius 8 still reaches 50 * 9 / (pi 64) = 2.24, i.e. a saturated bokeh ball, and keeps its energy."""
    H = W = 64
    lens = LensParams(K=16.0, d_f=0.5)
    rad = torch.zeros(3, H, W)
    rad[:, 31:34, 31:34] = 50.0
    layer = Layer(rad, torch.ones(1, H, W), torch.zeros(1, H, W))
    out = GroundTruthRenderer().render_layers([layer], lens, (H, W))
    assert float(out.sum()) == pytest.approx(float(rad.sum()), rel=1e-4)
    assert float(out[0, 32, 32]) == pytest.approx(50 * 9 / (math.pi * 64), rel=0.05)


def test_layered_masks_partition_unity():
    S = torch.linspace(-40, 12, 2001).view(1, 1, -1)
    masks = LayeredRenderer().layer_masks(S)
    total = sum(m for _, m in masks)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    radii = [abs(c) for c, _ in masks]
    steps = sorted(set(b - a for a, b in zip(sorted(set(radii)), sorted(set(radii))[1:])))
    assert steps[0] == 1.0 and steps[-1] >= 4.0  # non-uniform sizes (D2F eq. 14)


def test_radius_bins_cover_range():
    b = radius_bins(37.0)
    assert b[0] == 0.0 and b[-1] >= 37.0
    steps = np.diff(b)
    assert steps.min() >= 0.5 - 1e-9 and steps.max() <= 2.0 + 1e-9


def test_batch_with_per_image_lenses_matches_single_renders():
    img = textured(32, 48)
    img = torch.cat([img, img.flip(-1)])
    disp = torch.linspace(0, 1, 48).view(1, 1, 1, 48).expand(2, 1, 32, 48).contiguous()
    lenses = [LensParams(K=10.0, d_f=0.3), LensParams(K=6.0, d_f=0.9, aperture="polygon", blades=5)]
    for name in ALL:
        r = get_renderer(name)
        both = r.render(img, disp, lenses)
        for b in range(2):
            one = r.render(img[b : b + 1], disp[b : b + 1], lenses[b])
            assert torch.allclose(both[b : b + 1], one, atol=1e-6), name
        assert both.min() >= 0 and both.max() <= 1
        with pytest.raises(ValueError, match="list of 2"):
            r.render(img, disp, lenses[:1])
        with pytest.raises(ValueError, match="disparity"):
            r.render(img, disp[:, :, :16], lenses)
        with pytest.raises(ValueError, match="NaN"):
            r.render(img, disp * float("nan"), lenses)


def test_registry():
    assert set(RENDERERS) == {"scatter", "layered", "blend"}
    assert isinstance(get_renderer("ground_truth"), GroundTruthRenderer)
    with pytest.raises(ValueError, match="unknown renderer"):
        get_renderer("nope")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL)
def test_cpu_and_cuda_agree(name):
    img = textured(64, 96, seed=5)
    img[..., 20:23, 70:73] = 1.0  # a highlight
    disp = torch.linspace(0, 1, 96).view(1, 1, 1, 96).expand(1, 1, 64, 96).contiguous()
    lens = LensParams(K=24.0, d_f=0.6, aperture="polygon", blades=6)
    r = get_renderer(name)
    cpu = r.render(img, disp, lens)
    gpu = r.render(img.cuda(), disp.cuda(), lens)
    assert gpu.device.type == "cuda"
    assert (cpu - gpu.cpu()).abs().max() < 1e-4


@pytest.mark.parametrize("name", ALL)
def test_sharp_band_keeps_planes_near_the_focus_unchanged(name):
    # dof = 0.1: a plane 0.08 off the focal disparity is inside the band (radius 0: unchanged), one
    # 0.3 off is blurred by K (0.3 - 0.1) = 4 px, the same as a plane 0.2 off with dof = 0.
    img = textured(48, 64, seed=3)
    near = torch.full((1, 1, 48, 64), 0.58)
    far = torch.full((1, 1, 48, 64), 0.2)
    lens = LensParams(K=20.0, d_f=0.5, dof=0.1)
    r = get_renderer(name)
    torch.testing.assert_close(r.render(img, near, lens), img.clamp(0, 1), atol=2e-3, rtol=0)
    blurred = r.render(img, far, lens)
    assert (blurred - img).abs().mean() > 0.01
    same = r.render(img, torch.full((1, 1, 48, 64), 0.3), LensParams(K=20.0, d_f=0.5))
    torch.testing.assert_close(blurred, same, atol=2e-3, rtol=0)
