"""The web demo's modules that run without a browser, against the Python they port or state:
``web_demo/photo.js`` (eval.render's frame, tap, blend and resampling) and ``web_demo/autofocus.js``
(training.renderers.lens.auto_focus) run under node, on maps the samples do not cover too (flat,
one pixel, out of [0, 1], over 1,000,000 values); the auto-focus constants and the depth-model
contract (``web_demo/depth.js`` DEPTH_MODEL) are read as text and need no node."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np

from tests.autofocus_constants import python_auto_focus_constants
from tests.web_fixtures import NODE, REPO, WEB, assert_lens_matches_python, needs_node, sample_inputs


def _run_node(script: str, module: Path, jobs: list, tmp_path: Path) -> list:
    """``script`` run by node on ``module`` (web_demo/<name>.js) and ``jobs`` (as JSON): its JSON output."""
    assert NODE is not None  # the callers are marked needs_node
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", script, module.as_uri(), str(tmp_path / "jobs.json")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ------------------------------------------------------------------ web_demo/photo.js (node, no browser)

PHOTO_JS = WEB / "photo.js"

# Reads {jobs: [...]} and prints one result per job, each computed by photo.js.
_NODE_PHOTO = """
import {readFileSync} from 'node:fs';
const P = await import(process.argv[1]);
const jobs = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const f32 = (path) => { const b = readFileSync(path); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
const out = jobs.map((j) => {
  if (j.kind === 'frame') return P.modelFrame(...j.args);
  if (j.kind === 'tap') return P.tapDisparity(f32(j.path), j.h, j.w, j.x, j.y);
  if (j.kind === 'resize') return Array.from(P.resize(f32(j.path), j.h, j.w, j.c, j.H, j.W));
  if (j.kind === 'rot90') return Array.from(P.rot90(f32(j.path), j.h, j.w, j.c, j.k).data);
  if (j.kind === 'pad') return Array.from(P.reflectPad(f32(j.path), j.h, j.w, j.c, j.H, j.W, j.top, j.left));
  if (j.kind === 'keep') return Array.from(P.sharpKeep(f32(j.path), j.lens, j.scale));
  if (j.kind === 'consts') return {SHARP_RADIUS: P.SHARP_RADIUS, FOCUS_WINDOW: P.FOCUS_WINDOW};
  throw new Error(j.kind);
});
process.stdout.write(JSON.stringify(out));
"""


@needs_node
def test_photo_module_matches_eval_render(tmp_path):
    """web_demo/photo.js (run by node) against the Python it ports: eval.render's frame, tap, blend
    weight and constants, torch's antialiased bilinear resize, np.rot90 and np.pad(mode='reflect')."""
    import torch

    from eval import render as er
    from training.renderers.lens import LensParams

    rng = np.random.default_rng(5)
    jobs, want = [], []

    def arr(a: np.ndarray) -> str:
        path = tmp_path / f"a{len(jobs)}.f32"
        path.write_bytes(np.ascontiguousarray(a, "<f4").tobytes())
        return str(path)

    for photo, model in [
        ((3024, 4032), (1024, 1536)),
        ((4032, 3024), (1024, 1536)),
        ((576, 384), (192, 288)),
        ((1000, 1000), (1024, 1536)),
        ((1024, 1600), (1024, 1536)),
        ((7, 3), (192, 288)),
        ((288, 192), (192, 288)),
        ((1080, 1920), (1536, 1024)),
    ]:
        f = er.model_frame(photo, model)
        jobs.append({"kind": "frame", "args": [*photo, *model]})
        want.append(
            {"turn": f.turn, "scale": f.scale, "ch": f.content[0], "cw": f.content[1], "top": f.top, "left": f.left}
        )
    depth = rng.random((61, 83), dtype=np.float32)
    for x, y in [(0.5, 0.5), (0.0, 0.0), (1.0, 1.0), (0.25, 0.75), (0.5, 0.1)]:
        jobs.append({"kind": "tap", "path": arr(depth), "h": 61, "w": 83, "x": x, "y": y})
        want.append(er._tap_disparity(depth, (x, y)))
    for (h, w, c), (H, W) in [
        ((37, 53, 3), (111, 160)),
        ((120, 90, 1), (31, 47)),
        ((64, 64, 3), (256, 256)),
        ((256, 256, 1), (40, 300)),
    ]:
        a = rng.random((h, w, c), dtype=np.float32)
        jobs.append({"kind": "resize", "path": arr(a), "h": h, "w": w, "c": c, "H": H, "W": W})
        t = torch.from_numpy(a).permute(2, 0, 1)[None]
        want.append(
            torch.nn.functional.interpolate(t, size=(H, W), mode="bilinear", align_corners=False, antialias=True)[0]
            .permute(1, 2, 0)
            .numpy()
            .ravel()
        )
    a = rng.random((5, 7, 3), dtype=np.float32)
    for k in (1, -1):
        jobs.append({"kind": "rot90", "path": arr(a), "h": 5, "w": 7, "c": 3, "k": k})
        want.append(np.rot90(a, k).ravel())
    jobs.append({"kind": "pad", "path": arr(a), "h": 5, "w": 7, "c": 3, "H": 11, "W": 12, "top": 3, "left": 2})
    want.append(np.pad(a, ((3, 3), (2, 3), (0, 0)), mode="reflect").ravel())
    d = rng.random((40, 50), dtype=np.float32)
    for lens, scale in [((0.7, 12.0, 0.1), 0.25), ((0.2, 40.0, 0.0), 1.0), ((1.0, 3.0, 0.3), 0.5)]:
        jobs.append({"kind": "keep", "path": arr(d), "lens": list(lens), "scale": scale})
        want.append(er.sharp_keep(d, LensParams(K=lens[1], d_f=lens[0], dof=lens[2]), scale).ravel())
    jobs.append({"kind": "consts"})
    want.append({"SHARP_RADIUS": list(er.SHARP_RADIUS), "FOCUS_WINDOW": er.FOCUS_WINDOW})

    for job, got, exp in zip(jobs, _run_node(_NODE_PHOTO, PHOTO_JS, jobs, tmp_path), want):
        if job["kind"] in ("frame", "consts"):
            assert got == exp, (job, got, exp)
        elif job["kind"] == "tap":
            assert abs(got - exp) < 1e-7, (job, got, exp)
        else:
            # float32 (torch) vs float64 (JS) accumulation: 3e-6 measured, 1/400 of an 8-bit level
            np.testing.assert_allclose(
                np.array(got, np.float32),
                np.asarray(exp, np.float32),
                atol=1e-5,
                err_msg=f"{job['kind']} {job.get('H')}x{job.get('W')}",
            )


def test_depth_model_contract_is_the_apps():
    """The page's depth-model contract (depth.js DEPTH_MODEL) is model_spec.json's "depth_model"."""
    spec = json.loads((REPO / "android_demo/app/src/main/assets/model_spec.json").read_text())["depth_model"]
    m = re.search(
        r"export const DEPTH_MODEL = \{mean: \[([^\]]*)\], std: \[([^\]]*)\]\};", (WEB / "depth.js").read_text()
    )
    assert m, "DEPTH_MODEL not found in web_demo/depth.js"
    assert [float(v) for v in m.group(1).split(",")] == spec["input_mean"]
    assert [float(v) for v in m.group(2).split(",")] == spec["input_std"]


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
    maps = {
        f"sample {s['id']}": sample_inputs(samples, s["id"])[1][0, ..., 0] for s in samples["samples"] if s.get("depth")
    }
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
    for i, d in enumerate(maps.values()):
        path = tmp_path / f"map{i}.f32"
        path.write_bytes(np.ascontiguousarray(d, "<f4").tobytes())
        jobs.append({"path": str(path), "width": int(d.shape[1])})
    lenses = _run_node(_NODE_AUTOFOCUS, AUTOFOCUS_JS, jobs, tmp_path)
    assert len(lenses) == len(maps)
    for (name, d), lens in zip(maps.items(), lenses):
        assert_lens_matches_python(lens, d, name)


def test_auto_focus_module_constants_are_pythons():
    """autofocus.js states the same numbers as training/renderers/lens.py (needs no node)."""
    js = {
        m.group(1): float(m.group(2).replace("_", ""))
        for m in re.finditer(r"export const (AUTO_\w+) = ([0-9._]+);", AUTOFOCUS_JS.read_text())
    }
    py = python_auto_focus_constants()
    assert js == {
        "AUTO_FOCUS_QUANTILE": py["focus_quantile"],
        "AUTO_FAR_QUANTILE": py["far_quantile"],
        "AUTO_BLUR_FRACTION": py["blur_fraction"],
        "AUTO_DOF": py["dof"],
        "AUTO_MIN_SPREAD": py["min_spread"],
        "AUTO_MAX_SAMPLES": py["max_samples"],
    }
    assert "training.renderers.lens.auto_focus" in AUTOFOCUS_JS.read_text()
