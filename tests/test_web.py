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
* ``fixture``: ``web_demo/fixture_model.py`` (a TF-built depth-weighted blur with the same
  interface, manifest written by the exporter's own ``export.manifest``), whose output looks like
  bokeh: it makes the README screenshot.

The pre-processing is checked on its own too: the float inputs the page fed must equal the PNG
values read with Pillow. The auto-focus module is also run under node on maps the samples do not
cover (flat, one pixel, out of [0, 1], over 1,000,000 values). The browser tests need Debian's
``chromium``, ``node`` and ``web_demo/node_modules`` (``bash web_demo/setup.sh`` installs them) and
are skipped with that message otherwise; the node test needs only ``node``; the tests of
``serve.py``'s default URLs and of the auto-focus constants need none of them. Set
``BOKEH_WEB_SCREENSHOT=docs/web_demo.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.autofocus_constants import python_auto_focus_constants

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "web_demo"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
NODE = shutil.which("node")
SETUP_HINT = "run `bash web_demo/setup.sh` (apt-get install chromium; npm ci in web_demo/)"

_missing = [
    what for what, ok in (
        (f"Chromium ({CHROMIUM})", Path(CHROMIUM).exists()),
        ("node", NODE is not None),
        ("web_demo/node_modules/@litertjs/core", (WEB / "node_modules/@litertjs/core/wasm").is_dir()),
        ("web_demo/node_modules/playwright-core", (WEB / "node_modules/playwright-core").is_dir()),
    ) if not ok
]
needs_browser = pytest.mark.skipif(bool(_missing), reason=f"missing {', '.join(_missing)}: {SETUP_HINT}")
needs_node = pytest.mark.skipif(NODE is None, reason=f"missing node: {SETUP_HINT}")

PSNR_MIN_DB = 40.0
# The page's auto-focus against training.renderers.lens.auto_focus (the page feeds float32).
AF_ABS_TOL = 1e-4   # d_f and dof
AF_K_REL_TOL = 1e-3
SAMPLE = "1"  # the person-like figure: the screenshot in web_demo/README.md
PAGE_TIMEOUT_S = 90


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB for images in [0, 1] (data range 1), written out here as the reference formula."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def samples() -> dict:
    return json.loads((WEB / "samples" / "index.json").read_text())


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, samples) -> Path:
    from web_demo.fixture_model import build_fixture, export_tiny_generator, write_json_atomic

    root = tmp_path_factory.mktemp("tflite_models")
    size = tuple(samples["size"])
    # The real chain (python -m export: PyTorch -> ONNX -> onnx2tf -> TFLite, with its gates) on a
    # tiny random generator, ~25-50 s on 2 cores; and the TF-built fixture (~8 s), whose
    # depth-weighted blur makes the README screenshot look like bokeh.
    export_tiny_generator(root / "tiny", size=size, precisions=("fp32", "fp16"))
    # fp32 and fp16, so that the page's default precision (fp16 first) is a real choice.
    lens = export_tiny_generator(root / "tiny_lens", size=size, precisions=("fp32", "fp16"), lens_input=True)
    fixture = build_fixture(root / "fixture", size=size, precisions=("fp32",))

    # Broken copies, to prove the page checks what it is given instead of running anyway.
    def broken_copy(name: str, model: Path, tflite: str, mutate) -> None:
        d = root / name
        d.mkdir()
        shutil.copy(model / tflite, d / tflite)
        m = json.loads((model / "manifest.json").read_text())
        mutate(m)
        write_json_atomic(d / "manifest.json", m)

    def taller(m: dict) -> None:  # self-consistent, but 16 rows taller than the .tflite file's tensors
        for t in m["inputs"] + m["outputs"]:
            t["shape"][1] += 16

    # the app and page expect "depth"
    broken_copy("bad_name", fixture, "bokeh_fp32.tflite", lambda m: m["inputs"][1].update(name="disparity"))
    broken_copy("bad_shape", fixture, "bokeh_fp32.tflite", taller)
    # lens models: no usable default, and a manifest that omits the lens the file reads
    broken_copy("bad_lens_default", lens, "bokeh_fp16.tflite", lambda m: m["inputs"][2].update(default=[0.8, 7.0]))
    broken_copy("lens_not_listed", lens, "bokeh_fp16.tflite", lambda m: m.update(inputs=m["inputs"][:2]))
    return root


@pytest.fixture(scope="module")
def server(models_dir):
    from web_demo.serve import serve_in_thread

    srv, base = serve_in_thread(models_dir=models_dir)
    yield base
    srv.shutdown()
    srv.server_close()


def _decode(b64: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=dtype)


def run_page(base: str, query: str, tmp_path: Path, screenshot: Path | None = None, bench: bool = False,
             ready_only: bool = False, webgpu: bool = False) -> dict:
    out = tmp_path / "result.json"
    cmd = [NODE, str(WEB / "e2e.mjs"), "--url", f"{base}/web_demo/index.html?{query}",
           "--out", str(out), "--timeout", str(PAGE_TIMEOUT_S), "--chromium", CHROMIUM]
    if screenshot is not None:
        cmd += ["--screenshot", str(screenshot)]
    if bench:
        cmd.append("--bench")
    if ready_only:  # compile the model, run nothing: the model panel before any input
        cmd.append("--ready-only")
    if webgpu:  # SwiftShader's WebGPU adapter instead of --disable-gpu
        cmd.append("--webgpu")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PAGE_TIMEOUT_S + 60, cwd=REPO)
    if not out.exists():
        pytest.fail(f"e2e.mjs wrote no result (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(out.read_text())


def _sample_inputs(samples: dict, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
    entry = next(s for s in samples["samples"] if s["id"] == sample_id)
    image = np.asarray(Image.open(WEB / "samples" / entry["image"]).convert("RGB"), np.float32) / 255.0
    depth_img = Image.open(WEB / "samples" / entry["depth"])
    # 8-bit grayscale as bundled; a 16-bit PNG would be divided by 65535 by the Python pipeline
    # but reduced to 8 bits by the browser, which is why the samples are 8-bit.
    assert depth_img.mode == "L", f"{entry['depth']}: expected 8-bit grayscale, got mode {depth_img.mode}"
    depth = np.asarray(depth_img, np.float32)[..., None] / 255.0
    return image[None], depth[None]


def _lens_spec(manifest: dict) -> dict | None:
    return next((t for t in manifest["inputs"] if t["name"] == "lens"), None)


def _page_lens_inputs(manifest: dict, r: dict) -> dict[str, np.ndarray]:
    """The lens the page reports having fed, in the manifest's shape; {} for a depth-only model."""
    spec = _lens_spec(manifest)
    if spec is None:
        return {}
    assert r["lens"] is not None and len(r["lens"]) == 3, r["lens"]
    return {"lens": np.array(r["lens"], np.float32).reshape(spec["shape"])}


def assert_lens_matches_python(page_lens, depth_hw: np.ndarray, where: str) -> None:
    """(d_f, K, dof) from the page (or the JS module) == training.renderers.lens.auto_focus(depth)."""
    from training.renderers.lens import auto_focus

    ref = auto_focus(np.array(depth_hw, np.float32))  # a copy: frombuffer arrays are read-only
    d_f, k, dof = (float(v) for v in page_lens)
    assert abs(d_f - ref.d_f) <= AF_ABS_TOL, f"{where}: d_f {d_f} vs Python {ref.d_f}"
    assert abs(dof - ref.dof) <= AF_ABS_TOL, f"{where}: dof {dof} vs Python {ref.dof}"
    assert abs(k - ref.K) <= AF_K_REL_TOL * abs(ref.K), f"{where}: K {k} vs Python {ref.K}"


# precision None: no ?precision= in the URL, the page must pick fp16 over the fp32 listed first.
@needs_browser
@pytest.mark.parametrize(("model", "precision"),
                         [("tiny", "fp32"), ("tiny", "fp16"), ("fixture", "fp32"), ("tiny_lens", None)])
def test_page_output_matches_tflite_interpreter(model, precision, server, models_dir, samples, tmp_path):
    from web_demo.fixture_model import run_tflite

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
    image, depth = _sample_inputs(samples, SAMPLE)
    page_image = _decode(r["image_b64"], np.float32).reshape(image.shape)
    page_depth = _decode(r["depth_b64"], np.float32).reshape(depth.shape)
    np.testing.assert_allclose(page_image, image, atol=1e-6)
    np.testing.assert_allclose(page_depth, depth, atol=1e-6)

    # A lens model is fed the auto-focus of the depth it was fed, and the page says so (values and
    # source); a depth-only model none. The interpreter below gets the lens the page reports.
    manifest = json.loads((models_dir / model / "manifest.json").read_text())
    lens = _page_lens_inputs(manifest, r)
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
    page_out = _decode(r["output_b64"], np.float32).reshape(ref.shape)
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

    # Post-processing: the "after" canvas shows clamp(output) * 255.
    rgba = _decode(r["after_rgba_b64"], np.uint8).reshape(h, w, 4)
    shown = rgba[..., :3].astype(np.float32)[None] / 255.0
    assert psnr(shown, ref01) >= PSNR_MIN_DB, f"canvas vs interpreter: {psnr(shown, ref01):.1f} dB"
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
    from web_demo.fixture_model import run_tflite

    query = f"model={model}&sample={SAMPLE}&precision={precision}"
    gpu = run_page(server, query + "&accelerator=webgpu", tmp_path, webgpu=True)
    assert gpu["ok"], f"page failed: {gpu['error']}\n" + "\n".join(gpu.get("console", []))
    if gpu["accelerator"] != "webgpu":  # the page fell back to WASM: no adapter in this browser
        why = [x for x in gpu["console"] if "adapter" in x.lower()]
        pytest.skip(f"Chromium offered no WebGPU adapter: {why[:2]}")
    cpu = run_page(server, query + "&accelerator=wasm", tmp_path)
    assert cpu["ok"] and cpu["accelerator"] == "wasm", cpu["error"]
    assert gpu["lens"] == cpu["lens"]  # the same auto-focus either way (None for a depth-only model)

    image, depth = _sample_inputs(samples, SAMPLE)
    manifest = json.loads((models_dir / model / "manifest.json").read_text())
    ref = run_tflite(models_dir / model / f"bokeh_{precision}.tflite",
                     {"image": image, "depth": depth, **_page_lens_inputs(manifest, gpu)})["bokeh"]
    gpu_out = np.clip(_decode(gpu["output_b64"], np.float32).reshape(ref.shape), 0, 1)
    wasm_out = np.clip(_decode(cpu["output_b64"], np.float32).reshape(ref.shape), 0, 1)
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
    page_depth = _decode(r["depth_b64"], np.float32).reshape(h, w)  # [1, H, W, 1]: row-major H x W
    _, png_depth = _sample_inputs(samples, sample)
    np.testing.assert_allclose(page_depth, png_depth[0, ..., 0], atol=1e-6)
    assert r["lens_source"] == "auto-focus", r["lens_source"]
    assert_lens_matches_python(r["lens"], page_depth, f"page, sample {sample}")
    default = _lens_spec(json.loads((models_dir / "tiny_lens" / "manifest.json").read_text()))["default"]
    assert not np.allclose(r["lens"], default, atol=1e-3), "auto-focus gave the default: the test proves nothing"
    d_f, k, dof = np.float32(r["lens"])
    assert f"d_f {d_f:.2f} · K {k:.1f} px · dof {dof:.2f} (auto-focus)" in r["facts"], r["facts"]


@needs_browser
def test_page_shows_manifest_default_until_a_depth_map(server, models_dir, tmp_path):
    """No depth map yet: the lens the page would feed is the manifest's default, and it says so."""
    r = run_page(server, "model=tiny_lens&accelerator=wasm", tmp_path, ready_only=True)
    assert r["ok"] and r["error"] is None, f"page failed: {r['error']}\n" + "\n".join(r.get("console", []))
    d_f, k, dof = _lens_spec(json.loads((models_dir / "tiny_lens" / "manifest.json").read_text()))["default"]
    line = f"d_f {d_f:.2f} · K {k:.1f} px · dof {dof:.2f} (manifest default, until a depth map is loaded)"
    assert line in r["facts"], r["facts"]


@needs_browser
@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("bad_name", 'no input named "depth"'),
        ("bad_shape", "manifest says float32"),
        ("no_such_model", "HTTP 404"),
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
    from web_demo.fixture_model import export_tiny_generator, run_tflite

    export_tiny_generator(models_dir / "nchw", size=tuple(samples["size"]), precisions=("fp32",),
                          converter="onnx-tf")
    r = run_page(server, f"model=nchw&precision=fp32&accelerator=wasm&sample={SAMPLE}", tmp_path)
    assert r["ok"], f"page failed: {r['error']}\n" + "\n".join(r.get("console", []))
    assert r["layout"] == "NCHW"
    image, depth = _sample_inputs(samples, SAMPLE)
    nchw = {"image": image.transpose(0, 3, 1, 2).copy(), "depth": depth.transpose(0, 3, 1, 2).copy()}
    np.testing.assert_allclose(_decode(r["image_b64"], np.float32).reshape(nchw["image"].shape), nchw["image"], atol=1e-6)
    ref = run_tflite(models_dir / "nchw" / "bokeh_fp32.tflite", nchw)["bokeh"]
    page_out = _decode(r["output_b64"], np.float32).reshape(ref.shape)
    assert psnr(np.clip(page_out, 0, 1), np.clip(ref, 0, 1)) >= PSNR_MIN_DB
    h, w = samples["size"]
    shown = _decode(r["after_rgba_b64"], np.uint8).reshape(h, w, 4)[..., :3].astype(np.float32) / 255.0
    assert psnr(shown, np.clip(ref[0].transpose(1, 2, 0), 0, 1)) >= PSNR_MIN_DB


# ------------------------------------------------------------------ web_demo/autofocus.js (node, no browser)

AUTOFOCUS_JS = WEB / "autofocus.js"

# Reads a JSON list of {path, width} (raw little-endian float32 maps), prints [[d_f, K, dof], ...].
_NODE_AUTOFOCUS = """
import {readFileSync} from 'node:fs';
const {autoFocus} = await import(process.argv[1]);
const jobs = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = jobs.map(({path, width}) => {
  const b = readFileSync(path);
  return autoFocus(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4), width);
});
process.stdout.write(JSON.stringify(out));
"""


def _auto_focus_maps(samples: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    maps = {f"sample {s['id']}": _sample_inputs(samples, s["id"])[1][0, ..., 0] for s in samples["samples"]}
    maps["uniform 37x53"] = rng.random((37, 53), dtype=np.float32)
    maps["flat 0.5"] = np.full((16, 24), 0.5, np.float32)  # K hits the max(..., 0.1) floor
    maps["one pixel"] = np.array([[0.3]], np.float32)
    maps["out of [0, 1]"] = rng.uniform(-0.5, 1.5, (20, 30)).astype(np.float32)  # d_f, d_far clamped
    maps["exactly 1,000,000"] = rng.beta(2, 5, (1000, 1000)).astype(np.float32)  # no stride yet
    # Over 1,000,000 values Python samples flat[::n // 1_000_000 + 1]: the values it skips are set
    # apart (all near, all far) so that a port without the stride, or with another, gets another lens.
    strided = rng.beta(5, 2, 1000 * 1001).astype(np.float32)
    strided[1::2] = 0.99  # stride 2
    maps["1000x1001 (strided)"] = strided.reshape(1000, 1001)
    strided = rng.random(2001 * 1000, dtype=np.float32) ** 3
    strided[(np.arange(strided.size) % 3) != 0] = 0.0  # stride 3
    maps["2001x1000 (strided)"] = strided.reshape(2001, 1000)
    return maps


@needs_node
def test_auto_focus_module_matches_python(samples, tmp_path):
    """web_demo/autofocus.js (run by node) == training.renderers.lens.auto_focus, map by map."""
    maps = _auto_focus_maps(samples)
    jobs = []
    for i, (name, d) in enumerate(maps.items()):
        path = tmp_path / f"map{i}.f32"
        path.write_bytes(np.ascontiguousarray(d, "<f4").tobytes())
        jobs.append({"path": str(path), "width": int(d.shape[1])})
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run([NODE, "--input-type=module", "-e", _NODE_AUTOFOCUS, AUTOFOCUS_JS.as_uri(),
                           str(tmp_path / "jobs.json")], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lenses = json.loads(proc.stdout)
    assert len(lenses) == len(maps)
    for (name, d), lens in zip(maps.items(), lenses):
        assert_lens_matches_python(lens, d, name)




def test_auto_focus_module_constants_are_pythons():
    """autofocus.js states the same numbers as training/renderers/lens.py (needs no node)."""
    js = {m.group(1): float(m.group(2).replace("_", "")) for m in
          re.finditer(r"export const (AUTO_\w+) = ([0-9._]+);", AUTOFOCUS_JS.read_text())}
    py = python_auto_focus_constants()
    assert js == {"AUTO_FOCUS_QUANTILE": py["focus_quantile"], "AUTO_FAR_QUANTILE": py["far_quantile"],
                  "AUTO_BLUR_FRACTION": py["blur_fraction"], "AUTO_DOF": py["dof"],
                  "AUTO_MIN_SPREAD": py["min_spread"], "AUTO_MAX_SAMPLES": py["max_samples"]}
    assert "training.renderers.lens.auto_focus" in AUTOFOCUS_JS.read_text()


# ------------------------------------------------------------------ serve.py's default URLs (no browser)


def _fake_export(root: Path, name: str, precisions: list[str]) -> None:
    (root / name).mkdir()
    variants = {p: {"file": f"bokeh_{p}.tflite"} for p in precisions}
    (root / name / "manifest.json").write_text(json.dumps({"name": name, "variants": variants}))


def test_serve_prints_a_url_per_model_with_an_exported_precision(tmp_path):
    """A shipped model may have no fp32 file: the printed URL asks for fp16, else the first variant."""
    from web_demo.serve import page_urls

    _fake_export(tmp_path, "nafnet_w8_lens_cpu", ["fp16", "int8"])
    _fake_export(tmp_path, "all", ["fp32", "fp16", "int8"])
    _fake_export(tmp_path, "int8_only", ["int8"])
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    lines = page_urls("http://127.0.0.1:8000", tmp_path)
    assert lines[0] == "http://127.0.0.1:8000/web_demo/index.html?model=all&precision=fp16"
    assert lines[1].startswith(f"{tmp_path / 'broken' / 'manifest.json'}: not usable")
    assert lines[2:] == ["http://127.0.0.1:8000/web_demo/index.html?model=int8_only&precision=int8",
                         "http://127.0.0.1:8000/web_demo/index.html?model=nafnet_w8_lens_cpu&precision=fp16"]


def test_serve_names_every_repo_model(capsys, monkeypatch):
    """``serve.py`` with no --models lists the folders of tflite_models/ (no model name is hard-coded)."""
    from web_demo import serve

    class NoServe:  # stop main() before it serves forever
        server_address = ("127.0.0.1", 8000)

        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            pass

    monkeypatch.setattr(serve, "make_server", lambda *a, **k: NoServe())
    serve.main([])
    out = capsys.readouterr().out
    manifests = sorted((REPO / "tflite_models").glob("*/manifest.json"))
    for path in manifests:
        precision = serve.default_precision(json.loads(path.read_text()))
        assert f"index.html?model={path.parent.name}&precision={precision}" in out, out
    assert manifests or "no exported model" in out, out


def test_serve_only_serves_the_page_and_the_models(tmp_path):
    """Under --bind 0.0.0.0 the server is on the LAN: .git, runs/, listings and symlinks that lead
    out of a served folder are a 404; the page and a model's files are served."""
    import urllib.error
    import urllib.request

    from web_demo.serve import serve_in_thread

    models = tmp_path / "models"
    (models / "m").mkdir(parents=True)
    (models / "m" / "manifest.json").write_text("{}")
    (models / "m" / "leak").symlink_to("/etc/hostname")
    srv, base = serve_in_thread(models_dir=models)

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(base + path) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        assert status("/web_demo/index.html") == 200
        assert status("/tflite_models/m/manifest.json") == 200
        assert status("/web_demo/") == 200  # its index.html, not a listing
        for path in ("/.git/config", "/README.md", "/runs/", "/", "/web_demo/samples/", "/tflite_models/",
                     "/tflite_models/m/leak", "/web_demo/../.git/config", "/web_demo/%2e%2e/.git/config"):
            assert status(path) == 404, path
    finally:
        srv.shutdown()
        srv.server_close()


def test_serve_on_a_port_in_use_is_one_clear_error(capsys):
    """Probe row 8: a used port ended in an OSError traceback."""
    import socket

    from web_demo.serve import main as serve_main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as e:
            serve_main(["--port", str(port)])
    assert e.value.code == 2 and f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
