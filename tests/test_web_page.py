"""End-to-end test of the web demo (web_demo/): headless Chromium runs the page, LiteRT.js runs the
.tflite file, and the page's output must match the Python TFLite interpreter on the same input
(PSNR >= 40 dB).

Three models, all built at the size of the bundled samples so that no resampling happens in the
browser and the reference sees exactly the pixels the page decoded:

* ``tiny``: the real exporter (``python -m export``) on a tiny random NAFNet, fp32 and fp16;
* ``tiny_lens``: the same on a lens-conditioned NAFNet (third input ``lens`` = (d_f, K, dof));
  the page feeds the project's auto-focus (``web_demo/autofocus.js``, a port of
  ``training.renderers.lens.auto_focus``) computed on the depth map it fed, which must equal the
  Python function's lens, and its output must match the interpreter given the lens the page reports;
* ``fixture``: ``tests/fixture_model.py`` (a TF-built depth-weighted blur with the same
  interface, manifest written by the exporter's own ``export.manifest``), whose output looks like
  bokeh: it makes the README screenshot.

The pre-processing is checked on its own too: the float inputs the page fed must equal the PNG
values read with Pillow. Also here: the WebGPU path, the lens the page shows before and after a
depth map, the manifests it must refuse, and an NCHW export. The models and the server are
tests/web_fixtures.py's; the tests need Debian's ``chromium``, ``node`` and
``web_demo/node_modules`` (``bash web_demo/setup.sh`` installs them) and are skipped with that
message otherwise. The modules that run under node are tested in tests/test_web_modules.py, the
page as a phone user meets it in tests/test_web_portrait.py, serve.py in tests/test_web_serve.py.
Set ``BOKEH_WEB_SCREENSHOT=docs/web_demo.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.metrics import psnr_array as psnr
from tests.web_fixtures import (
    PSNR_MIN_DB,
    REPO,
    SAMPLE,
    assert_lens_matches_python,
    auto_focus_list,
    blend_reference,
    decode,
    keep_weight,
    lens_spec,
    needs_browser,
    page_lens_inputs,
    run_page,
    sample_inputs,
)


# precision None: no ?precision= in the URL, the page must pick fp16 over the fp32 listed first.
@needs_browser
@pytest.mark.parametrize(
    ("model", "precision"), [("tiny", "fp32"), ("tiny", "fp16"), ("fixture", "fp32"), ("tiny_lens", None)]
)
def test_page_output_matches_tflite_interpreter(model, precision, server, models_dir, samples, tmp_path):
    from tests.fixture_model import run_tflite

    shot = tmp_path / "page.png"
    screenshot_run = model == "fixture"
    query = f"model={model}&accelerator=wasm&sample={SAMPLE}" + (f"&precision={precision}" if precision else "")
    r = run_page(server, query, tmp_path, shot, bench=screenshot_run)
    assert r["ok"], f"page failed: {r['error']}\n" + "\n".join(r.get("console", []))
    assert r["error"] is None, r["error"]
    precision = precision or "fp16"
    assert r["accelerator"] == "wasm" and (r["model"], r["precision"]) == (model, precision)
    assert r["layout"] == "NHWC"
    n, h, w, c = r["output_shape"]
    assert (h, w) == tuple(samples["size"]) and c == 3

    # Pre-processing: the page fed exactly the PNG values (no colour management, no resampling).
    image, depth = sample_inputs(samples, SAMPLE)
    page_image = decode(r["image_b64"], np.float32).reshape(image.shape)
    page_depth = decode(r["depth_b64"], np.float32).reshape(depth.shape)
    np.testing.assert_allclose(page_image, image, atol=1e-6)
    np.testing.assert_allclose(page_depth, depth, atol=1e-6)

    # A lens model is fed the auto-focus of the depth it was fed, and the page says so (values and
    # source); a depth-only model none. The interpreter below gets the lens the page reports.
    manifest = json.loads((models_dir / model / "manifest.json").read_text())
    lens = page_lens_inputs(manifest, r)
    if lens:
        assert r["lens_source"] == "auto-focus", r["lens_source"]
        assert_lens_matches_python(r["lens"], page_depth[0, ..., 0], f"{model} sample {SAMPLE}")
        d_f, k, dof = lens["lens"].ravel()
        assert f"d_f {d_f:.2f} · K {k:.1f} px · dof {dof:.2f} (auto-focus)" in r["facts"], r["facts"]
    else:
        assert r["lens"] is None and r["lens_source"] is None, (r["lens"], r["lens_source"])
        assert "none (depth-only model)" in r["facts"], r["facts"]

    # Inference: LiteRT.js (WASM, XNNPACK) vs the Python TFLite interpreter on the same file and lens.
    model_file = models_dir / model / f"bokeh_{precision}.tflite"
    ref = run_tflite(model_file, {"image": image, "depth": depth, **lens})["bokeh"]
    page_out = decode(r["output_b64"], np.float32).reshape(ref.shape)
    ref01, page01 = np.clip(ref, 0, 1), np.clip(page_out, 0, 1)
    assert psnr(page01, ref01) >= PSNR_MIN_DB, f"page vs interpreter: {psnr(page01, ref01):.1f} dB"
    # The comparison means something only if the model changed the photo noticeably.
    assert psnr(ref01, image) < 35.0, "model output is (nearly) the input; the test would prove nothing"
    if lens:  # ... and only if another focus would have given another picture: the far end of the
        # disparity range from d_f (the tiny random model reacts weakly to the lens; 1 - d_f is too
        # close to the auto-focus of sample 1, 0.73, to move the output by more than the tolerance)
        other = np.array([0.0 if d_f >= 0.5 else 1.0, k, dof], np.float32).reshape(lens["lens"].shape)
        ref_other = run_tflite(model_file, {"image": image, "depth": depth, "lens": other})["bokeh"]
        assert psnr(np.clip(ref_other, 0, 1), ref01) < PSNR_MIN_DB, "the lens barely changes the output"

    # Post-processing: the "after" canvas is eval.render's blend (the sample is the model's size:
    # no turn, no resampling), the photo where the blend lens's blur is under a pixel and
    # clamp(output) elsewhere, computed here with eval.render.sharp_keep on the page's own output.
    rgba = decode(r["after_rgba_b64"], np.uint8).reshape(h, w, 4)
    assert r["after_size"] == [h, w] and r["photo_size"] == [h, w] and not r["frame"]["turn"]
    blend_lens = r["blend_lens"] if lens else auto_focus_list(page_depth[0, ..., 0])
    want = blend_reference(image[0], np.clip(page_out[0], 0, 1), page_depth[0, ..., 0], blend_lens, 1.0)
    assert np.abs(rgba[..., :3].astype(int) - want.astype(int)).max() <= 1, "canvas is not eval.render's blend"
    shown = rgba[..., :3].astype(np.float32)[None] / 255.0
    keep = keep_weight(page_depth[0, ..., 0], blend_lens, 1.0)
    blurred = keep < 0.01  # where the model's output is shown as it is
    assert blurred.mean() > 0.1, "the blend keeps (nearly) the whole photo: the check proves nothing"
    assert psnr(shown[0][blurred], ref01[0][blurred]) >= PSNR_MIN_DB, "canvas vs interpreter where blurred"
    assert (rgba[..., 3] == 255).all()

    if screenshot_run:  # Benchmark: 10 runs after 2 warm-up, median <= p90
        b = r["benchmark"]
        assert (b["runs"], b["warmup"]) == (10, 2) and 0 < b["median_ms"] <= b["p90_ms"], b

    assert shot.stat().st_size > 10_000, "screenshot is (nearly) empty"
    target = os.environ.get("BOKEH_WEB_SCREENSHOT")
    if target and screenshot_run:
        dst = Path(target) if Path(target).is_absolute() else REPO / target
        fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".png")
        os.close(fd)
        Image.open(shot).convert("RGB").save(tmp, format="PNG", optimize=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)


@needs_browser
@pytest.mark.parametrize(("model", "precision"), [("tiny", "fp32"), ("tiny_lens", "fp16")])
def test_page_webgpu_path_matches_wasm_and_interpreter(model, precision, server, models_dir, samples, tmp_path):
    """The page on WebGPU (LiteRT.js's GPU accelerator on Chromium's SwiftShader adapter) gives the
    output of its WASM path and of the Python interpreter, on the same input and lens."""
    from tests.fixture_model import run_tflite

    query = f"model={model}&sample={SAMPLE}&precision={precision}"
    gpu = run_page(server, query + "&accelerator=webgpu", tmp_path, webgpu=True)
    assert gpu["ok"], f"page failed: {gpu['error']}\n" + "\n".join(gpu.get("console", []))
    if gpu["accelerator"] != "webgpu":  # the page fell back to WASM: no adapter in this browser
        why = [x for x in gpu["console"] if "adapter" in x.lower()]
        pytest.skip(f"Chromium offered no WebGPU adapter: {why[:2]}")
    cpu = run_page(server, query + "&accelerator=wasm", tmp_path)
    assert cpu["ok"] and cpu["accelerator"] == "wasm", cpu["error"]
    assert gpu["lens"] == cpu["lens"]  # the same auto-focus either way (None for a depth-only model)

    image, depth = sample_inputs(samples, SAMPLE)
    manifest = json.loads((models_dir / model / "manifest.json").read_text())
    ref = run_tflite(
        models_dir / model / f"bokeh_{precision}.tflite",
        {"image": image, "depth": depth, **page_lens_inputs(manifest, gpu)},
    )["bokeh"]
    gpu_out = np.clip(decode(gpu["output_b64"], np.float32).reshape(ref.shape), 0, 1)
    wasm_out = np.clip(decode(cpu["output_b64"], np.float32).reshape(ref.shape), 0, 1)
    ref01 = np.clip(ref, 0, 1)
    assert psnr(gpu_out, ref01) >= PSNR_MIN_DB, f"WebGPU vs interpreter: {psnr(gpu_out, ref01):.1f} dB"
    assert psnr(gpu_out, wasm_out) >= PSNR_MIN_DB, f"WebGPU vs WASM: {psnr(gpu_out, wasm_out):.1f} dB"
    assert psnr(ref01, image) < 35.0, "model output is (nearly) the input; the test would prove nothing"


@needs_browser
def test_page_auto_focus_matches_python(server, models_dir, samples, tmp_path):
    """The lens the page computes from the depth map it fed == training.renderers.lens.auto_focus
    on that same map (another sample than the parity test's), not the manifest's default."""
    sample = "2"
    r = run_page(server, f"model=tiny_lens&accelerator=wasm&sample={sample}", tmp_path)
    assert r["ok"], f"page failed: {r['error']}\n" + "\n".join(r.get("console", []))
    h, w = samples["size"]
    page_depth = decode(r["depth_b64"], np.float32).reshape(h, w)  # [1, H, W, 1]: row-major H x W
    _, png_depth = sample_inputs(samples, sample)
    np.testing.assert_allclose(page_depth, png_depth[0, ..., 0], atol=1e-6)
    assert r["lens_source"] == "auto-focus", r["lens_source"]
    assert_lens_matches_python(r["lens"], page_depth, f"page, sample {sample}")
    default = lens_spec(json.loads((models_dir / "tiny_lens" / "manifest.json").read_text()))["default"]
    assert not np.allclose(r["lens"], default, atol=1e-3), "auto-focus gave the default: the test proves nothing"
    d_f, k, dof = np.float32(r["lens"])
    assert f"d_f {d_f:.2f} · K {k:.1f} px · dof {dof:.2f} (auto-focus)" in r["facts"], r["facts"]


@needs_browser
def test_page_shows_manifest_default_until_a_depth_map(server, models_dir, tmp_path):
    """No depth map yet: the lens the page would feed is the manifest's default, and it says so."""
    r = run_page(server, "model=tiny_lens&accelerator=wasm", tmp_path, ready_only=True)
    assert r["ok"] and r["error"] is None, f"page failed: {r['error']}\n" + "\n".join(r.get("console", []))
    d_f, k, dof = lens_spec(json.loads((models_dir / "tiny_lens" / "manifest.json").read_text()))["default"]
    line = f"d_f {d_f:.2f} · K {k:.1f} px · dof {dof:.2f} (manifest default, until a depth map is loaded)"
    assert line in r["facts"], r["facts"]


@needs_browser
@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("bad_name", 'no input named "depth"'),
        ("bad_shape", "manifest says float32"),
        ("no_such_model", 'HTTP 404: no exported model "no_such_model". Make it with: python -m export'),
        ("bad_lens_default", 'input "lens": default [0.8,7]'),
        ("lens_not_listed", "manifest.json lists image, depth"),
    ],
)
def test_page_rejects_inconsistent_model(model, message, server, tmp_path):
    # No ?precision=: the page's default (fp16, else the first variant) must find the only file.
    r = run_page(server, f"model={model}&sample=0", tmp_path)
    assert not r["ok"]
    assert message in (r["error"] or ""), r["error"]


@needs_browser
@pytest.mark.slow
def test_page_runs_nchw_export(server, models_dir, samples, tmp_path):
    """An onnx-tf export keeps NCHW ([1, 3, H, W]): the page packs and unpacks by the manifest's layout."""
    from tests.fixture_model import export_tiny_generator, run_tflite

    export_tiny_generator(models_dir / "nchw", size=tuple(samples["size"]), precisions=("fp32",), converter="onnx-tf")
    r = run_page(server, f"model=nchw&precision=fp32&accelerator=wasm&sample={SAMPLE}", tmp_path)
    assert r["ok"], f"page failed: {r['error']}\n" + "\n".join(r.get("console", []))
    assert r["layout"] == "NCHW"
    image, depth = sample_inputs(samples, SAMPLE)
    nchw = {"image": image.transpose(0, 3, 1, 2).copy(), "depth": depth.transpose(0, 3, 1, 2).copy()}
    np.testing.assert_allclose(
        decode(r["image_b64"], np.float32).reshape(nchw["image"].shape), nchw["image"], atol=1e-6
    )
    ref = run_tflite(models_dir / "nchw" / "bokeh_fp32.tflite", nchw)["bokeh"]
    page_out = decode(r["output_b64"], np.float32).reshape(ref.shape)
    assert psnr(np.clip(page_out, 0, 1), np.clip(ref, 0, 1)) >= PSNR_MIN_DB
    h, w = samples["size"]
    shown = decode(r["after_rgba_b64"], np.uint8).reshape(h, w, 4)[..., :3].astype(np.float32) / 255.0
    blurred = keep_weight(depth[0, ..., 0], r["blend_lens"], 1.0) < 0.01  # the model's output, not the photo
    assert psnr(shown[blurred], np.clip(ref[0].transpose(1, 2, 0), 0, 1)[blurred]) >= PSNR_MIN_DB
