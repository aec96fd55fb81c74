"""What the web demo's tests share (tests/test_web_*.py): paths, the browser and node they need,
tolerances, the fixtures and the helpers that drive the page.

tests/conftest.py loads this module as a plugin (``pytest_plugins``, which also rewrites its
asserts), so its fixtures are built once a session however many modules use them: ``models_dir`` (the exported test models, a minute or
two on 2 cores) and ``server`` (serve.py on them). tests/conftest.py marks every test that uses one of
them slow (SLOW_FIXTURES). The browser tests need Debian's ``chromium``, ``node`` and
``web_demo/node_modules`` (``bash web_demo/setup.sh`` installs them) and are skipped with that
message otherwise (``needs_browser``); the node tests need only ``node`` (``needs_node``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "web_demo"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
NODE = shutil.which("node")
SETUP_HINT = "run `bash web_demo/setup.sh` (apt-get install chromium; npm ci in web_demo/)"

_missing = [
    what
    for what, ok in (
        (f"Chromium ({CHROMIUM})", Path(CHROMIUM).exists()),
        ("node", NODE is not None),
        ("web_demo/node_modules/@litertjs/core", (WEB / "node_modules/@litertjs/core/wasm").is_dir()),
        ("web_demo/node_modules/playwright-core", (WEB / "node_modules/playwright-core").is_dir()),
    )
    if not ok
]
needs_browser = pytest.mark.skipif(bool(_missing), reason=f"missing {', '.join(_missing)}: {SETUP_HINT}")
needs_node = pytest.mark.skipif(NODE is None, reason=f"missing node: {SETUP_HINT}")

PSNR_MIN_DB = 40.0
# The page's auto-focus against training.renderers.lens.auto_focus (the page feeds float32).
AF_ABS_TOL = 1e-4  # d_f and dof
AF_K_REL_TOL = 1e-3
SAMPLE = "1"  # the person-like figure: the screenshot in web_demo/README.md
PAGE_TIMEOUT_S = 90


@pytest.fixture(scope="session")
def samples() -> dict:
    return json.loads((WEB / "samples" / "index.json").read_text())


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, samples) -> Path:
    from tests.fixture_model import build_depth_fixture, build_fixture, export_tiny_generator, write_json_atomic

    root = tmp_path_factory.mktemp("tflite_models")
    size = tuple(samples["size"])
    # The real chain (python -m export: PyTorch -> ONNX -> onnx2tf -> TFLite, with its gates) on a
    # tiny random generator, ~25-50 s on 2 cores; and the TF-built fixture (~8 s), whose
    # depth-weighted blur makes the README screenshot look like bokeh.
    export_tiny_generator(root / "tiny", size=size, precisions=("fp32", "fp16"))
    # fp32 and fp16, so that the page's default precision (fp16 first) is a real choice.
    lens = export_tiny_generator(root / "tiny_lens", size=size, precisions=("fp32", "fp16"), lens_input=True)
    fixture = build_fixture(root / "fixture", size=size, precisions=("fp32",))
    # The lens stand-in (~10 s): blur levels blended by the lens's radius, so that tap-to-focus and
    # the aperture slider visibly act; and a tiny depth .tflite, the user's depth model.
    build_fixture(root / "fixture_lens", size=size, precisions=("fp32",), lens=True, name="fixture_lens")
    build_depth_fixture(root / "depth_model.tflite")

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


@pytest.fixture(scope="session")
def server(models_dir):
    from web_demo.serve import serve_in_thread

    srv, base = serve_in_thread(models_dir=models_dir)
    yield base
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def matte_ready() -> Path:
    """web_demo/matte/selfie_segmentation.tflite, prepared from the npm package as setup.sh does."""
    from eval.matte import NPM_SOURCE, prepare

    if not NPM_SOURCE.is_file():
        pytest.skip(f"missing {NPM_SOURCE.relative_to(REPO)}: {SETUP_HINT}")
    return prepare()


def decode(b64: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=dtype)


def _e2e(base: str, query: str, out: Path, timeout: int, args: list[str], proc_timeout: float) -> dict:
    """Run web_demo/e2e.mjs on the page at ``base`` with ``query`` and ``args``; its JSON result."""
    cmd = [
        NODE,
        str(WEB / "e2e.mjs"),
        "--url",
        f"{base}/web_demo/index.html?{query}",
        "--out",
        str(out),
        "--timeout",
        str(timeout),
        "--chromium",
        CHROMIUM,
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=proc_timeout, cwd=REPO)
    if not out.exists():
        pytest.fail(f"e2e.mjs wrote no result (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(out.read_text())


def run_page(
    base: str,
    query: str,
    tmp_path: Path,
    screenshot: Path | None = None,
    bench: bool = False,
    ready_only: bool = False,
    webgpu: bool = False,
    timeout: int = PAGE_TIMEOUT_S,
) -> dict:
    args = []
    if screenshot is not None:
        args += ["--screenshot", str(screenshot)]
    if bench:
        args.append("--bench")
    if ready_only:  # compile the model, run nothing: the model panel before any input
        args.append("--ready-only")
    if webgpu:  # SwiftShader's WebGPU adapter instead of --disable-gpu
        args.append("--webgpu")
    return _e2e(base, query, tmp_path / "result.json", timeout, args, timeout + 60)


def run_steps(
    base: str, query: str, steps: list, tmp_path: Path, webgpu: bool = False, timeout: int = PAGE_TIMEOUT_S
) -> dict:
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    args = ["--steps", str(tmp_path / "steps.json")] + (["--webgpu"] if webgpu else [])
    r = _e2e(base, query, tmp_path / "steps_result.json", timeout, args, timeout * (len(steps) + 2))
    assert r["ok"], f"page failed: {r['error']} (status: {r.get('status')})\n" + "\n".join(r.get("console", [])[-20:])
    return r


def sample_inputs(samples: dict, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
    entry = next(s for s in samples["samples"] if s["id"] == sample_id)
    image = np.asarray(Image.open(WEB / "samples" / entry["image"]).convert("RGB"), np.float32) / 255.0
    depth_img = Image.open(WEB / "samples" / entry["depth"])
    # 8-bit grayscale as bundled; a 16-bit PNG would be divided by 65535 by the Python pipeline
    # but reduced to 8 bits by the browser, which is why the samples are 8-bit.
    assert depth_img.mode == "L", f"{entry['depth']}: expected 8-bit grayscale, got mode {depth_img.mode}"
    depth = np.asarray(depth_img, np.float32)[..., None] / 255.0
    return image[None], depth[None]


def lens_spec(manifest: dict) -> dict | None:
    return next((t for t in manifest["inputs"] if t["name"] == "lens"), None)


def page_lens_inputs(manifest: dict, r: dict) -> dict[str, np.ndarray]:
    """The lens the page reports having fed, in the manifest's shape; {} for a depth-only model."""
    spec = lens_spec(manifest)
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


def auto_focus_list(depth_hw: np.ndarray) -> list[float]:
    from training.renderers.lens import auto_focus

    lens = auto_focus(np.array(depth_hw, np.float32))
    return [lens.d_f, lens.K, lens.dof]


def keep_weight(depth_hw: np.ndarray, lens: list[float], scale: float) -> np.ndarray:
    from eval.render import sharp_keep
    from training.renderers.lens import LensParams

    d_f, k, dof = (float(v) for v in lens)
    return sharp_keep(np.array(depth_hw, np.float32), LensParams(K=k, d_f=d_f, dof=dof), scale)


def blend_reference(
    photo01: np.ndarray, model01: np.ndarray, depth_hw: np.ndarray, lens: list[float], scale: float
) -> np.ndarray:
    """eval.render's full-resolution blend, (H, W, 3) uint8: photo where sharp, model output elsewhere."""
    keep = keep_weight(depth_hw, lens, scale)[..., None]
    return (np.clip(keep * photo01 + (1 - keep) * model01, 0, 1) * 255.0 + 0.5).astype(np.uint8)
