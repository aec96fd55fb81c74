"""The web demo as a phone user meets it: a photo and no depth map. The page computes a
person matte (or runs a depth .tflite the user drops), auto-focuses, moves the focus with a tap,
blurs more with the aperture slider, and renders at the photo's own resolution as eval.render
does; on the lens stand-in, and on the shipped model in tflite_models/. Chromium, node and
web_demo/node_modules as for tests/test_web_page.py; the matte from its npm package."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.web_fixtures import (
    REPO,
    SAMPLE,
    WEB,
    assert_lens_matches_python,
    blend_reference,
    decode,
    needs_browser,
    run_page,
    run_steps,
)

PORTRAIT_SIZE = (576, 384)  # (H, W): portrait, twice the 192x288 test models once turned
# Gradient-energy ratios the acceptance test asks for. Measured on the lens fixture: a region in
# focus keeps 100 % of the photo's energy (its pixels are the photo's), a blurred one keeps under
# 5 %; the bounds leave room for a model that blurs less.
SHARP_KEEPS = 0.9  # in-focus region: at least this share of the photo's gradient energy
BLUR_LOSES = 0.5  # defocused region: at most this share


def _portrait(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    from eval.matte import synthetic_portrait

    img, person = synthetic_portrait(*PORTRAIT_SIZE)
    path = tmp_path / "portrait.png"
    Image.fromarray(img).save(path)
    return path, img, person


def _energy(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared forward difference of luminance over ``mask``: how much fine detail is left."""
    y = rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    gx = np.zeros_like(y)
    gy = np.zeros_like(y)
    gx[:, :-1] = np.diff(y, axis=1)
    gy[:-1] = np.diff(y, axis=0)
    return float((gx**2 + gy**2)[mask].mean())


def _after(c: dict) -> np.ndarray:
    h, w = c["after_size"]
    return decode(c["after_rgba_b64"], np.uint8).reshape(h, w, 4)[..., :3]


def _depth_full(c: dict) -> np.ndarray:
    h, w = c["photo_size"]
    return decode(c["depth_full_b64"], np.float32).reshape(h, w)


def check_portrait_session(
    r: dict, img: np.ndarray, person: np.ndarray, download: Path, strengths: list[float], beyond_training: int = 0
) -> dict:
    """The checks of a phone user's portrait session (see the test below); returns the energies."""
    import torch
    from scipy.ndimage import binary_erosion

    from eval.matte import PersonMatte
    from eval.render import _tap_disparity, model_frame

    c = r["captures"]
    H, W = img.shape[:2]
    for name, cap in c.items():
        assert cap["depth_source"] == "person matte", (name, cap["depth_source"])
        assert cap["after_size"] == [H, W] and cap["photo_size"] == [H, W], (name, cap["after_size"])

    # The matte was computed on the page: the Python runner of the same model on the same photo
    # (eval.matte.PersonMatte: the interpreter, torch's resampling) gives the same map, and it is
    # the person (the silhouette the scene was drawn with).
    page = _depth_full(c["auto"])
    ref = PersonMatte()(img)
    assert float(np.abs(page - ref).mean()) < 0.01, f"page matte vs Python: {np.abs(page - ref).mean():.4f}"
    iou = ((page > 0.5) & person).sum() / ((page > 0.5) | person).sum()
    assert iou > 0.9, f"the matte misses the person: IoU {iou:.2f}"

    # Portrait in, turned into the landscape model and back, not cropped: the frame of eval.render.
    f = model_frame((H, W), tuple(r["model_size"]))
    assert c["auto"]["frame"] == {
        "turn": f.turn,
        "scale": f.scale,
        "ch": f.content[0],
        "cw": f.content[1],
        "top": f.top,
        "left": f.left,
    }
    assert f.turn

    # Auto-focus: the one function, on the depth at the model's scale (turned, resized as torch does).
    d = torch.from_numpy(np.rot90(page).copy())[None, None]
    d_model = torch.nn.functional.interpolate(d, size=f.content, mode="bilinear", align_corners=False, antialias=True)
    assert c["auto"]["lens_source"] == "auto-focus"
    assert_lens_matches_python(c["auto"]["lens"], d_model[0, 0].clamp(0, 1).numpy(), "auto-focus on the matte")

    # Tap-to-focus: d_f is eval.render's tap on the depth, at the point the page says was tapped.
    for name in ("subject", "background"):
        fx, fy = c[name]["focus"]["x"], c[name]["focus"]["y"]
        assert c[name]["lens_source"] == "tap-to-focus"
        assert abs(c[name]["lens"][0] - _tap_disparity(page, (fx, fy))) < 1e-5, name
    assert c["subject"]["lens"][0] > 0.9 > 0.1 > c["background"]["lens"][0]

    # The sharp region moves with the tap (regions from the scene's own silhouette, eroded away
    # from the soft matte edge).
    subj, bg = binary_erosion(person, iterations=12), binary_erosion(~person, iterations=12)
    e0 = {"subject": _energy(img, subj), "background": _energy(img, bg)}
    e = {name: {"subject": _energy(_after(c[name]), subj), "background": _energy(_after(c[name]), bg)} for name in c}
    assert e["subject"]["subject"] >= SHARP_KEEPS * e0["subject"], (e["subject"], e0)
    assert e["subject"]["background"] <= BLUR_LOSES * e0["background"], (e["subject"], e0)
    assert e["background"]["background"] >= SHARP_KEEPS * e0["background"], (e["background"], e0)
    assert e["background"]["subject"] <= BLUR_LOSES * e0["subject"], (e["background"], e0)

    # The aperture slider: K as set, focus kept on the subject, the background blurs monotonically.
    ks = [f"k{k:g}" for k in strengths]
    for name, k in zip(ks, strengths):
        assert abs(c[name]["lens"][1] - k) < 1e-4 and c[name]["lens_source"] == "tap-to-focus + aperture slider"
        assert e[name]["subject"] >= SHARP_KEEPS * e0["subject"], (name, e[name], e0)
    # Within the trained blur radii the background blurs monotonically; the last `beyond_training`
    # strengths ask for more than the training data holds, and need only keep the background blurred.
    bgs = [e[name]["background"] for name in ks]
    inside = bgs[: len(bgs) - beyond_training]
    assert all(a > b for a, b in zip(inside, inside[1:])), f"background energy vs K {strengths}: {bgs}"
    assert all(b <= BLUR_LOSES * e0["background"] for b in bgs[1:]), f"background energy vs K {strengths}: {bgs}"

    # The downloaded file: the photo's resolution, the pixels shown.
    got = Image.open(download)
    assert got.size == (W, H), f"downloaded {got.size}, the photo is {(W, H)}"
    assert r["downloads"][0]["suggested"] == "portrait.bokeh.png"
    np.testing.assert_array_equal(np.asarray(got.convert("RGB")), _after(c[ks[-1]]))

    # The latency panel shows the stages.
    assert "inference" in c["auto"]["latency"] and "person matte" in c["auto"]["latency"], c["auto"]["latency"]
    return {"photo": e0, **e}


def _portrait_steps(photo: Path, download: Path, strengths: list[float], screenshot: Path | None = None) -> list:
    steps = [
        {"upload": {"image": str(photo)}},
        {"capture": "auto"},
        {"tap": [0.5, 0.8]},
        {"capture": "subject"},  # the shirt
        {"tap": [0.08, 0.06]},
        {"capture": "background"},  # the top-left corner
        {"tap": [0.5, 0.8]},
    ]
    for k in strengths:
        steps += [{"strength": k}, {"capture": f"k{k:g}"}]
    steps.append({"download": str(download)})
    if screenshot is not None:
        steps.append({"screenshot": str(screenshot)})
    return steps


@needs_browser
def test_page_portrait_without_depth_map(server, models_dir, matte_ready, tmp_path):
    """Issue 14's acceptance, on the lens stand-in: a portrait photo and no depth map; the page
    computes the person matte, auto-focuses with the one auto-focus, a tap on the subject and then
    on the background moves the sharp region, the aperture slider blurs the background more as K
    grows, and Download gives the photo's resolution."""
    photo, img, person = _portrait(tmp_path)
    download = tmp_path / "download.png"
    strengths = [2.0, 5.0, 10.0]  # blur radius 1.8 / 4.5 / 9 px on the background, under the fixture's 12
    shot = tmp_path / "page.png"
    r = run_steps(
        server, "model=fixture_lens&accelerator=wasm", _portrait_steps(photo, download, strengths, shot), tmp_path
    )
    r["model_size"] = json.loads((models_dir / "fixture_lens" / "manifest.json").read_text())["inputs"][0]["shape"][1:3]
    check_portrait_session(r, img, person, download, strengths)
    target = os.environ.get("BOKEH_WEB_PORTRAIT_SCREENSHOT")
    if target:  # docs/web_demo_portrait.png for the README
        dst = Path(target) if Path(target).is_absolute() else REPO / target
        Image.open(shot).convert("RGB").save(dst, format="PNG", optimize=True)


@needs_browser
def test_page_full_resolution_matches_eval_render(server, models_dir, matte_ready, samples, tmp_path):
    """The portrait's result at full resolution, recomputed in Python from the page's own model output
    and depth: the padding cut, turned back (np.rot90 k=-1), upsampled as torch does, blended by
    eval.render.sharp_keep. And the person matte sample (a bundled portrait without a depth map)."""
    import torch

    from eval.render import model_frame

    r = run_page(server, "model=fixture_lens&accelerator=wasm&sample=3", tmp_path)
    assert r["ok"], f"page failed: {r['error']}\n" + "\n".join(r.get("console", []))
    entry = next(s for s in samples["samples"] if s["id"] == "3")
    assert entry["depth"] is None and r["depth_source"] == "person matte"
    photo = np.asarray(Image.open(WEB / "samples" / entry["image"]).convert("RGB"))
    H, W = photo.shape[:2]
    assert H > W and r["after_size"] == [H, W]
    f = model_frame((H, W), tuple(r["output_shape"][1:3]))
    out = decode(r["output_b64"], np.float32).reshape(r["output_shape"])[0]
    out = np.clip(out[f.top : f.top + f.content[0], f.left : f.left + f.content[1]], 0, 1)
    out = np.rot90(out, -1).copy()
    up = (
        torch.nn.functional.interpolate(
            torch.from_numpy(out).permute(2, 0, 1)[None],
            size=(H, W),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )[0]
        .permute(1, 2, 0)
        .numpy()
    )
    want = blend_reference(
        photo / 255.0, up, decode(r["depth_full_b64"], np.float32).reshape(H, W), r["blend_lens"], f.scale
    )
    got = decode(r["after_rgba_b64"], np.uint8).reshape(H, W, 4)[..., :3]
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


@needs_browser
def test_page_user_depth_model(server, models_dir, samples, tmp_path):
    """A depth .tflite dropped by the user is used (depth file > depth model > matte): the page's
    depth equals the contract computed in Python (squash, ImageNet normalisation, min-max, resize)."""
    from eval.matte import resize
    from tests.fixture_model import run_tflite, tflite_io_details

    entry = next(s for s in samples["samples"] if s["id"] == SAMPLE)
    steps = [
        {"upload": {"model": str(models_dir / "depth_model.tflite"), "image": str(WEB / "samples" / entry["image"])}},
        {"capture": "model"},
    ]
    r = run_steps(server, "model=fixture_lens&accelerator=wasm", steps, tmp_path)
    c = r["captures"]["model"]
    assert c["depth_source"] == "depth model" and c["depth_detail"] == "depth_model.tflite"
    spec = json.loads((REPO / "android_demo/app/src/main/assets/model_spec.json").read_text())["depth_model"]
    photo = np.asarray(Image.open(WEB / "samples" / entry["image"]).convert("RGB"), np.float32) / 255.0
    H, W = photo.shape[:2]
    _, h, w, _ = tflite_io_details(models_dir / "depth_model.tflite")["inputs"][0]["shape"]
    x = (resize(photo, (h, w)) - np.array(spec["input_mean"])) / np.array(spec["input_std"])
    raw = next(iter(run_tflite(models_dir / "depth_model.tflite", {"image": x[None].astype(np.float32)}).values()))[0]
    norm = (raw - raw.min()) / (raw.max() - raw.min())
    want = resize(norm[..., None], (H, W))[..., 0]
    got = decode(c["depth_full_b64"], np.float32).reshape(H, W)
    assert float(np.abs(got - want).max()) < 1e-3, float(np.abs(got - want).max())
    assert float(np.std(want)) > 0.1, "the depth fixture gives a flat map: the check proves nothing"


@needs_browser
def test_default_url_runs_shipped_model(matte_ready, tmp_path):
    """The URL serve.py prints for each model in tflite_models/ (no ?precision= tampering) loads and
    renders a photo with no depth map at the shipped model's real size (about a minute on 2 cores)."""
    from web_demo.serve import page_urls, serve_in_thread

    manifests = sorted((REPO / "tflite_models").glob("*/manifest.json"))
    if not manifests:
        pytest.skip("no model in tflite_models/")
    srv, base = serve_in_thread()
    try:
        urls = page_urls(base, REPO / "tflite_models")
        assert len(urls) == len(manifests) and all(u.startswith(base) for u in urls), urls
        for url in urls:
            query = url.split("?", 1)[1]
            r = run_page(base, query + "&accelerator=wasm&sample=3", tmp_path, timeout=300)
            assert r["ok"] and r["error"] is None, f"{url}: {r['error']}\n" + "\n".join(r.get("console", [])[-10:])
            name = query.split("model=")[1].split("&")[0]
            m = json.loads((REPO / "tflite_models" / name / "manifest.json").read_text())
            assert r["precision"] in m["variants"] and r["output_shape"] == m["outputs"][0]["shape"]
            assert r["depth_source"] == "person matte" and r["after_size"] == [288, 192], (
                r["depth_source"],
                r["after_size"],
            )
    finally:
        srv.shutdown()
        srv.server_close()


@needs_browser
@pytest.mark.slow
def test_shipped_model_portrait_session(matte_ready, tmp_path):
    """The acceptance scenario on the shipped model itself (its 1024x1536 input; several minutes on
    2 cores). BOKEH_WEB_SHIPPED_SCREENSHOT=path saves the page."""
    from eval.matte import synthetic_portrait
    from web_demo.serve import page_urls, serve_in_thread

    manifests = sorted((REPO / "tflite_models").glob("*/manifest.json"))
    if not manifests:
        pytest.skip("no model in tflite_models/")
    img, person = synthetic_portrait(1152, 768)
    photo = tmp_path / "portrait.png"
    Image.fromarray(img).save(photo)
    m = json.loads(manifests[0].read_text())
    k0 = m["inputs"][2]["default"][1] if len(m["inputs"]) > 2 else None
    if k0 is None:
        pytest.skip(f"{manifests[0]}: not a lens-conditioned model")
    # Multiples of 0.5: the slider's step once its range passes 50 px (panel.js, setupStrength), so
    # the page sets exactly these values.
    strengths = [round(f * k0 * 2) / 2 for f in (0.5, 1.0, 2.0)]
    srv, base = serve_in_thread()
    try:
        url = page_urls(base, manifests[0].parent.parent)[0]
        shot = tmp_path / "page.png"
        r = run_steps(
            base,
            url.split("?", 1)[1] + "&accelerator=wasm",
            _portrait_steps(photo, tmp_path / "download.png", strengths, shot),
            tmp_path,
            timeout=400,
        )
    finally:
        srv.shutdown()
        srv.server_close()
    r["model_size"] = m["inputs"][0]["shape"][1:3]
    # Twice the default K puts this backdrop's blur radius past 50 px, the largest in the training
    # data (README, "Shipped model"): there the model's background stops getting smoother.
    energies = check_portrait_session(r, img, person, tmp_path / "download.png", strengths, beyond_training=1)
    print(json.dumps(energies, indent=1))
    target = os.environ.get("BOKEH_WEB_SHIPPED_SCREENSHOT")
    if target:
        Image.open(shot).convert("RGB").save(target, format="PNG", optimize=True)
