"""The person matte (eval/matte.py): the depth of a photo that has none.

* ``prepare`` takes MediaPipe's selfie segmentation from the npm package the web set-up installs,
  replaces its custom op with builtin TRANSPOSE_CONV, and the rewrite computes what the original
  computes: the original runs on XNNPACK's MediaPipe-op path, the rewrite on LiteRT's reference
  kernels (no delegate), two independent implementations;
* bad sources are one-line errors naming the file;
* the matte finds the person of a synthetic head-and-shoulders scene, in portrait and landscape;
* ``python -m eval.render --matte`` end to end with the shipped model: the silhouette stays sharp
  and the background blurs, at the photo's own resolution.

The tests that need the model skip, naming ``web_demo/setup.sh``, when the npm package is missing.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval import matte as em
from eval.matte_rewrite import CUSTOM_OP
from export.gates import op_census

REPO = Path(__file__).resolve().parent.parent
needs_npm = pytest.mark.skipif(
    not em.NPM_SOURCE.is_file(), reason=f"missing {em.NPM_SOURCE.relative_to(REPO)}: run `bash web_demo/setup.sh`"
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return em.prepare(out_dir=tmp_path_factory.mktemp("matte"))


@needs_npm
def test_rewrite_replaces_the_custom_op_and_computes_the_same(prepared):
    original = em.NPM_SOURCE.read_bytes()
    before, after = op_census(original), op_census(prepared.read_bytes())
    custom = f"CUSTOM:{CUSTOM_OP.decode()}"
    assert before.get(custom) == 1 and "TRANSPOSE_CONV" not in before
    assert custom not in after and after["TRANSPOSE_CONV"] == 1
    # the two DEQUANTIZE nodes that fed the custom op its fp16 weights and bias are folded
    assert after["DEQUANTIZE"] == before["DEQUANTIZE"] - 2
    # Without a delegate the original cannot run at all: that is the problem the rewrite solves.
    with pytest.raises(RuntimeError, match="Convolution2DTransposeBias"):
        em._interpreter(original, delegates=False)
    ref = em._interpreter(original, delegates=True)
    new = em._interpreter(prepared.read_bytes(), delegates=False)
    img, _ = em.synthetic_portrait(256, 256, seed=3)  # another scene than prepare's own probe
    x = img[None].astype(np.float32) / 255.0
    want, got = em._run(ref, x), em._run(new, x)
    assert want.std() > 0.1, "the probe gives a flat matte: the comparison proves nothing"
    assert float(np.abs(want - got).max()) < em.PARITY_MAX_ABS
    info = json.loads((prepared.parent / em.INFO_FILE).read_text())
    assert info["source_sha256"] != info["sha256"] and info["rewrite"]["nodes"] == 1
    assert info["rewrite"]["max_abs_diff_same_kernels"] <= em.SAME_KERNELS_MAX_ABS
    assert info["licence"].startswith("Apache-2.0")


@needs_npm
def test_prepare_is_idempotent_and_atomic(prepared):
    stamp = prepared.stat().st_mtime_ns
    assert em.prepare(out_dir=prepared.parent) == prepared
    assert prepared.stat().st_mtime_ns == stamp, "an up-to-date model was rewritten"
    assert not [p for p in prepared.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_bad_sources_are_one_line_errors(tmp_path, capsys):
    wheel = tmp_path / "mediapipe-0.10.14-cp311-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("mediapipe/__init__.py", "")
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_bytes(b"not a flatbuffer at all")
    for src, msg in [
        (wheel, f"no {em.WHEEL_MEMBER} in it"),
        (not_tflite, "not a .tflite file"),
        (tmp_path / "missing.tflite", "no such file"),
    ]:
        assert em.main(["prepare", "--from", str(src), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(src) in err and msg in err, err
    assert em.main(["x.jpg", "--out", str(tmp_path), "--model", str(tmp_path / "none.tflite")]) == 2
    assert "python -m eval.matte prepare" in capsys.readouterr().err


@needs_npm
@pytest.mark.parametrize("size", [(576, 384), (384, 576)], ids=["portrait", "landscape"])
def test_matte_finds_the_person(prepared, size):
    img, person = em.synthetic_portrait(*size)
    m = em.PersonMatte(prepared)(img)
    assert m.shape == size and m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0
    iou = ((m > 0.5) & person).sum() / ((m > 0.5) | person).sum()
    assert iou > 0.9, f"IoU {iou:.3f}"


def _energy(rgb: np.ndarray, mask: np.ndarray) -> float:
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    gx, gy = np.zeros_like(y), np.zeros_like(y)
    gx[:, :-1], gy[:-1] = np.diff(y, axis=1), np.diff(y, axis=0)
    return float((gx**2 + gy**2)[mask].mean())


@needs_npm
def test_render_with_the_matte_keeps_the_person_sharp(prepared, tmp_path, monkeypatch):
    """python -m eval.render PHOTO --matte with the shipped model: a portrait photo with no depth map
    comes back at its own size, the silhouette as sharp as the photo, the background blurred."""
    from scipy.ndimage import binary_erosion

    from eval.render import DEFAULT_MODEL, main

    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"no shipped model at {DEFAULT_MODEL}")
    monkeypatch.setattr(em, "MATTE_DIR", prepared.parent)
    img, person = em.synthetic_portrait(768, 512)
    photo = tmp_path / "portrait.png"
    Image.fromarray(img).save(photo)
    assert main([str(photo), "--matte", "--out", str(tmp_path / "out")]) == 0
    out = np.asarray(Image.open(tmp_path / "out" / "portrait.bokeh.png").convert("RGB"))
    assert out.shape == img.shape
    depth = np.asarray(Image.open(tmp_path / "out" / "portrait.depth.png"), np.float64)
    assert ((depth / depth.max() > 0.5) == person).mean() > 0.97, "the depth written is not the matte"
    subj, bg = binary_erosion(person, iterations=12), binary_erosion(~person, iterations=12)
    assert _energy(out, subj) >= 0.9 * _energy(img, subj), "the person lost detail"
    assert _energy(out, bg) <= 0.5 * _energy(img, bg), "the background is not blurred"
