"""common/metrics.py and eval/lpips.py against independent references.

PSNR and SSIM: scikit-image's implementation (a different code base from torchmetrics). LPIPS: the
published formula (Zhang et al. 2018, Eq. 1 with the v0.1 scaling layer) re-implemented below in
numpy, on fixed random weights saved in the official file formats (no pretrained weights exist on
these machines). Each test notes what a wrong implementation would give.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import common.weights
import eval.lpips as lpips_mod
from common.metrics import depth_edge_band, edge_psnr, psnr, ssim
from eval.lpips import AlexNetFeatures, load_lpips

# ----------------------------------------------------------------------------- helpers


def _nchw(a: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) numpy → (B, 3, H, W) tensor, dtype kept."""
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def _random_pair(rng: np.random.Generator, b: int = 3, h: int = 37, w: int = 52) -> tuple[np.ndarray, np.ndarray]:
    target = rng.random((b, h, w, 3))
    pred = np.clip(target + rng.normal(0, 0.1, target.shape) * np.linspace(0.2, 1.5, b)[:, None, None, None], 0, 1)
    return pred, target


def _structured_pair(rng: np.random.Generator, b: int = 2, h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Smooth gradients, a disc and stripes; the prediction is a blurred, slightly shifted copy."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    targets, preds = [], []
    for i in range(b):
        disc = ((yy - 0.3 - 0.1 * i) ** 2 + (xx - 0.5) ** 2) < 0.05
        img = np.stack([0.2 + 0.6 * xx, 0.5 + 0.4 * np.sin(20 * yy + i), 0.3 + 0.5 * disc], -1)
        targets.append(np.clip(img, 0, 1))
        blurred = gaussian_filter(img, sigma=(1.0 + i, 1.0 + i, 0))
        preds.append(np.clip(blurred + 0.02 * rng.standard_normal(img.shape), 0, 1))
    return np.stack(preds), np.stack(targets)


def _sk_ssim(p: np.ndarray, t: np.ndarray, gaussian: bool = True) -> float:
    if gaussian:
        return structural_similarity(
            t, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
        )
    return structural_similarity(t, p, data_range=1, channel_axis=-1)  # the 7×7 uniform-window default


# ----------------------------------------------------------------------------- PSNR / SSIM


@pytest.mark.parametrize("make", [_random_pair, _structured_pair], ids=["random", "structured"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_psnr_ssim_match_scikit_image(make, dtype):
    pred, target = make(np.random.default_rng(1))
    pred, target = pred.astype(dtype), target.astype(dtype)
    ref_psnr = [
        peak_signal_noise_ratio(t.astype(np.float64), p.astype(np.float64), data_range=1) for p, t in zip(pred, target)
    ]
    ref_ssim = [_sk_ssim(p.astype(np.float64), t.astype(np.float64)) for p, t in zip(pred, target)]

    per_psnr = psnr(_nchw(pred), _nchw(target), reduction="none")
    per_ssim = ssim(_nchw(pred), _nchw(target), reduction="none")
    assert per_psnr.shape == per_ssim.shape == (len(pred),)
    np.testing.assert_allclose(per_psnr.double().numpy(), ref_psnr, atol=1e-4)
    np.testing.assert_allclose(per_ssim.double().numpy(), ref_ssim, atol=1e-4)
    assert float(psnr(_nchw(pred), _nchw(target))) == pytest.approx(np.mean(ref_psnr), abs=1e-4)
    assert float(ssim(_nchw(pred), _nchw(target))) == pytest.approx(np.mean(ref_ssim), abs=1e-4)

    # The tolerance can catch a wrong window: skimage's uniform 7×7 window differs by far more.
    wrong = [_sk_ssim(p.astype(np.float64), t.astype(np.float64), gaussian=False) for p, t in zip(pred, target)]
    assert np.max(np.abs(np.asarray(wrong) - ref_ssim)) > 1e-3


def test_psnr_averages_per_image_not_pooled():
    # Image 1: error 0.01 everywhere → MSE 1e-4 → 40 dB. Image 2: error 0.1 → MSE 1e-2 → 20 dB.
    target = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    pred = target.clone()
    pred[0] += 0.01
    pred[1] += 0.1
    assert psnr(pred, target, reduction="none").tolist() == pytest.approx([40.0, 20.0], abs=1e-9)
    assert float(psnr(pred, target)) == pytest.approx(30.0, abs=1e-9)  # literature: mean of per-image
    # A pooled implementation (torchmetrics' default, or one MSE over the batch) would give
    # 10·log10(1 / 5.05e-3) = 22.97 dB instead.
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr

    pooled = float(tm_psnr(pred, target, data_range=1.0))
    assert pooled == pytest.approx(10 * math.log10(1 / 5.05e-3), abs=1e-4)
    assert abs(pooled - float(psnr(pred, target))) > 7


def test_inputs_are_clamped_to_unit_range():
    rng = np.random.default_rng(3)
    target = rng.random((1, 24, 24, 3))
    pred = target + rng.normal(0, 0.3, target.shape)  # unclamped generator output, leaves [0, 1]
    clipped = np.clip(pred, 0, 1)
    ref = peak_signal_noise_ratio(target[0], clipped[0], data_range=1)
    unclamped = 10 * math.log10(1 / np.mean((pred - target) ** 2))
    assert abs(ref - unclamped) > 0.5  # so the check below can tell the two apart
    assert float(psnr(_nchw(pred), _nchw(target))) == pytest.approx(ref, abs=1e-6)
    assert float(ssim(_nchw(pred), _nchw(target))) == pytest.approx(_sk_ssim(clipped[0], target[0]), abs=1e-4)


def test_metric_input_errors():
    a = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 3, 8, 16), torch.rand(1, 3, 8, 16))


# ----------------------------------------------------------------------------- edge band / edge PSNR


def test_depth_edge_band_and_edge_psnr_by_hand():
    h, w, c, r = 20, 40, 17, 3
    depth = torch.full((1, 1, h, w), 0.2)
    depth[..., c:] = 0.8  # a step between columns c-1 and c
    depth[..., :5] = 0.2 + torch.arange(5.0) * 0.01  # a gentle ramp (0.02 per 3×3 window): no edge
    band = depth_edge_band(depth, radius=r)[0, 0]
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[:, c - 1 - r : c + r + 1] = True  # edge columns c-1 and c, dilated by r
    assert torch.equal(band, expected)

    target = torch.full((1, 3, h, w), 0.5)
    pred = target.clone()
    pred[..., c - 1 - r : c + r + 1] += 0.1  # error 0.1 inside the band only → 20 dB there
    pred[..., 30:] -= 0.3  # outside the band: must not touch edge PSNR
    e = edge_psnr(pred, target, band[None, None])
    assert float(e[0]) == pytest.approx(20.0, abs=1e-4)
    # Whole-image PSNR mixes both regions: 8 band columns at 0.01, 10 columns at 0.09 → MSE 0.0245.
    assert float(psnr(pred, target)) == pytest.approx(10 * math.log10(1 / ((8 * 0.01 + 10 * 0.09) / 40)), abs=1e-4)

    flat = torch.full((1, 1, h, w), 0.5)
    assert not depth_edge_band(flat).any()
    assert math.isnan(float(edge_psnr(pred, target, depth_edge_band(flat))[0]))  # no edge: NaN, not 0 or inf

    # Default radius scales with the image: 1/64 of the shorter side, at least 2.
    big = torch.zeros(1, 1, 256, 384)
    big[..., 200:] = 1.0
    assert depth_edge_band(big)[0, 0, 0].nonzero().flatten().tolist() == list(range(199 - 4, 200 + 4 + 1))


# ----------------------------------------------------------------------------- LPIPS

# torchvision alexnet().features convolutions: (index, out, in, kernel), as published.
ALEX_CONVS = [(0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3)]
LIN_CHANNELS = [64, 192, 384, 256, 256]


def test_alexnet_features_parameter_count_matches_torchvision():
    # By hand: 3·64·121+64 = 23,296; 64·192·25+192 = 307,392; 192·384·9+384 = 663,936;
    # 384·256·9+256 = 884,992; 256·256·9+256 = 590,080 → 2,469,696.
    by_hand = 23_296 + 307_392 + 663_936 + 884_992 + 590_080
    assert by_hand == sum(o * i * k * k + o for _, o, i, k in ALEX_CONVS) == 2_469_696
    # Cross-check with torchvision's published total for alexnet (61,100,840) minus the classifier
    # (9216→4096, 4096→4096, 4096→1000 linear layers with biases).
    classifier = (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert 61_100_840 - classifier == by_hand
    assert sum(p.numel() for p in AlexNetFeatures().parameters()) == by_hand
    # State-dict keys are torchvision's, so alexnet-owt-7be5be79.pth loads by name.
    assert list(AlexNetFeatures().state_dict()) == [
        f"features.{i}.{t}" for i, *_ in ALEX_CONVS for t in ("weight", "bias")
    ]


def _random_weight_files(tmp_path, seed: int = 0):
    """A random AlexNet in torchvision's key format (plus a classifier key that must be ignored)
    and random non-negative lin weights in lpips' key format, built without eval.lpips."""
    rng = np.random.default_rng(seed)
    alex = OrderedDict()
    for idx, o, i, k in ALEX_CONVS:
        alex[f"features.{idx}.weight"] = torch.from_numpy(
            rng.normal(0, math.sqrt(2 / (i * k * k)), (o, i, k, k)).astype(np.float32)
        )
        alex[f"features.{idx}.bias"] = torch.from_numpy(rng.normal(0, 0.05, o).astype(np.float32))
    alex["classifier.1.weight"] = torch.zeros(4, 4)
    lin = OrderedDict(
        (f"lin{k}.model.1.weight", torch.from_numpy(np.abs(rng.normal(0, 0.5, (1, c, 1, 1))).astype(np.float32)))
        for k, c in enumerate(LIN_CHANNELS)
    )
    alex_path, lin_path = tmp_path / "alexnet_random.pth", tmp_path / "alex_lin_random.pth"
    torch.save(alex, alex_path)
    torch.save(lin, lin_path)
    return alex_path, lin_path, alex, lin


def _np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[-1]
    win = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # (C, Ho, Wo, k, k)
    return np.einsum("chwij,ocij->ohw", win, w) + b[:, None, None]


def _np_maxpool(x: np.ndarray) -> np.ndarray:
    return sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(-1, -2))


def _np_lpips(img0: np.ndarray, img1: np.ndarray, alex, lin, scaling: bool = True, layer_mean: bool = False) -> float:
    """Zhang et al. 2018, Eq. 1 (v0.1) for one (3, H, W) pair in [0, 1], in float64 numpy."""
    W = {k: v.double().numpy() for k, v in alex.items()}
    shift = np.array([-0.030, -0.088, -0.188])[:, None, None]
    scale = np.array([0.458, 0.448, 0.450])[:, None, None]

    def feats(img):
        x = 2 * np.clip(img, 0, 1) - 1
        if scaling:
            x = (x - shift) / scale
        relu = lambda t: np.maximum(t, 0)
        f1 = relu(_np_conv(x, W["features.0.weight"], W["features.0.bias"], 4, 2))
        f2 = relu(_np_conv(_np_maxpool(f1), W["features.3.weight"], W["features.3.bias"], 1, 2))
        f3 = relu(_np_conv(_np_maxpool(f2), W["features.6.weight"], W["features.6.bias"], 1, 1))
        f4 = relu(_np_conv(f3, W["features.8.weight"], W["features.8.bias"], 1, 1))
        f5 = relu(_np_conv(f4, W["features.10.weight"], W["features.10.bias"], 1, 1))
        return [f1, f2, f3, f4, f5]

    per_layer = []
    for k, (a, b) in enumerate(zip(feats(img0), feats(img1))):
        a = a / (np.sqrt((a**2).sum(0, keepdims=True)) + 1e-10)
        b = b / (np.sqrt((b**2).sum(0, keepdims=True)) + 1e-10)
        wl = lin[f"lin{k}.model.1.weight"].double().numpy().reshape(-1, 1, 1)
        per_layer.append(float((wl * (a - b) ** 2).sum(0).mean()))
    return float(np.mean(per_layer)) if layer_mean else float(np.sum(per_layer))


@pytest.fixture
def random_lpips(tmp_path):
    alex_path, lin_path, alex, lin = _random_weight_files(tmp_path)
    model, reason = load_lpips(alex_path, lin_path)
    assert reason is None and model is not None
    return model, alex, lin


def test_lpips_matches_numpy_formula_on_random_weights(random_lpips):
    model, alex, lin = random_lpips
    rng = np.random.default_rng(5)
    x = rng.random((2, 3, 64, 80)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.15, x.shape), 0, 1).astype(np.float32)
    y[1] = rng.random((3, 64, 80))  # an unrelated second image: a larger distance
    got = model(torch.from_numpy(x), torch.from_numpy(y)).double().numpy()
    ref = np.array([_np_lpips(x[i], y[i], alex, lin) for i in range(2)])
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    assert got[1] > got[0] > 0
    # Wrong variants the tolerance rejects: v0.0 (no scaling layer) and a mean over layers.
    for wrong in (_np_lpips(x[0], y[0], alex, lin, scaling=False), _np_lpips(x[0], y[0], alex, lin, layer_mean=True)):
        assert abs(wrong - ref[0]) > 1e-2 * ref[0]
    assert not model.official  # random weights are flagged as not the published ones


def test_lpips_identical_images_score_exactly_zero(random_lpips):
    model = random_lpips[0]
    x = torch.rand(2, 3, 64, 96)
    assert model(x, x.clone()).tolist() == [0.0, 0.0]


@pytest.fixture
def no_default_weights(tmp_path, monkeypatch):
    """Point every default location at empty folders so the test does not depend on the machine."""
    monkeypatch.delenv("BOKEH_ALEXNET_WEIGHTS", raising=False)
    monkeypatch.delenv("BOKEH_LPIPS_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(common.weights, "REPO_WEIGHTS", tmp_path / "repo_weights")
    monkeypatch.setattr(lpips_mod, "_lpips_package_file", lambda: None)
    return tmp_path


def test_missing_weights_are_reported_not_invented(no_default_weights, tmp_path):
    alex_path, lin_path, _, _ = _random_weight_files(tmp_path)
    model, reason = load_lpips()
    assert model is None
    assert (
        "alexnet-owt-7be5be79.pth" in reason
        and "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in reason
    )
    assert "lpips/weights/v0.1/alex.pth" in reason
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in reason

    model, reason = load_lpips(tmp_path / "nope.pth", lin_path)  # explicit path: no silent fallback
    assert model is None and str(tmp_path / "nope.pth") in reason and "lin weights" not in reason

    model, reason = load_lpips(alex_path, None)
    assert model is None and "lpips/weights/v0.1/alex.pth" in reason and "AlexNet" not in reason


def test_weights_found_through_env_and_torch_home(no_default_weights, tmp_path, monkeypatch):
    alex_path, lin_path, _, _ = _random_weight_files(tmp_path)
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(alex_path.read_bytes())
    monkeypatch.setenv("BOKEH_LPIPS_WEIGHTS", str(lin_path))
    model, reason = load_lpips()
    assert reason is None
    assert model.alexnet_path == hub / "alexnet-owt-7be5be79.pth" and model.lin_path == lin_path
    assert not model.official  # right name, wrong hash: not the published file

    monkeypatch.setenv("BOKEH_ALEXNET_WEIGHTS", str(tmp_path / "missing.pth"))
    model, reason = load_lpips()
    assert model is None and "missing.pth" in reason and "BOKEH_ALEXNET_WEIGHTS" in reason


def test_bad_weight_files_are_reported(no_default_weights, tmp_path):
    alex_path, lin_path, alex, lin = _random_weight_files(tmp_path)
    junk = tmp_path / "junk.pth"
    junk.write_text("<html>404</html>")
    model, reason = load_lpips(junk, lin_path)
    assert model is None and str(junk) in reason and "unreadable" in reason

    bad = dict(lin)
    bad["lin2.model.1.weight"] = torch.ones(1, 100, 1, 1)
    bad_path = tmp_path / "bad_lin.pth"
    torch.save(bad, bad_path)
    model, reason = load_lpips(alex_path, bad_path)
    assert model is None and "lin2.model.1.weight" in reason and str(bad_path) in reason


def test_detail_kept_on_hand_made_outputs():
    from common.metrics import detail_kept

    rng = np.random.default_rng(0)
    photo = rng.random((40, 50, 3)).astype(np.float32)
    disparity = np.tile(np.linspace(0, 1, 40, dtype=np.float32)[:, None], (1, 50))  # near at the bottom
    assert detail_kept(photo, photo, disparity) == pytest.approx((1.0, 1.0))
    flat = np.full_like(photo, 0.5)
    assert detail_kept(photo, flat, disparity) == pytest.approx((0.0, 0.0))
    # Halve the contrast of the far 40 % rows only: background kept 0.5, subject untouched.
    out = photo.copy()
    far_rows = disparity[:, 0] <= np.quantile(disparity[:-1, :-1], 0.4) + 1e-6
    out[far_rows] = 0.5 + 0.5 * (photo[far_rows] - 0.5)
    bg, fg = detail_kept(photo, out, disparity)
    assert fg == pytest.approx(1.0) and bg == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="share"):
        detail_kept(photo, photo[:-1], disparity)
