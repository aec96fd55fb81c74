"""End-to-end tests of the synthetic data generator (``python -m training.synth``) at a tiny size."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from training import synth
from training.renderers.lens import LensParams

H, W = 64, 96
ROOT = Path(__file__).resolve().parents[1]


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _dilate(mask: torch.Tensor, r: int) -> torch.Tensor:
    return F.max_pool2d(mask.float()[None, None], 2 * r + 1, stride=1, padding=r)[0, 0] > 0


def _laplacian(rgb: np.ndarray) -> torch.Tensor:
    g = torch.from_numpy(rgb.astype(np.float32).mean(axis=2))[None, None]
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    return F.conv2d(g, k, padding=1)[0, 0].abs()


def test_pair_is_deterministic_per_scene():
    a = synth.make_pair(7, "val", 3, H, W)
    b = synth.make_pair(7, "val", 3, H, W)
    for field in ("original", "bokeh", "depth"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert a.lens == b.lens
    c = synth.make_pair(7, "train", 3, H, W)  # another split, same index: another scene
    assert not np.array_equal(a.original, c.original)
    d = synth.make_pair(8, "val", 3, H, W)  # another seed
    assert not np.array_equal(a.original, d.original)


def test_pair_contents_are_consistent():
    h, w = 128, 192  # large enough for blur radii of several pixels
    checked_sharp = checked_blur = 0
    for i in range(6):
        p = synth.make_pair(1, "train", i, h, w)
        assert p.original.shape == (h, w, 3) and p.original.dtype == np.uint8
        assert p.bokeh.shape == (h, w, 3) and p.bokeh.dtype == np.uint8
        assert p.depth.shape == (h, w) and p.depth.dtype == np.uint16
        # min-max normalised disparity, like a monocular depth estimate
        assert p.depth.min() == 0 and p.depth.max() == 65535
        # (the blur radius itself: test_blur_of_the_backdrop_is_the_thin_lens_radius)
        meta = p.meta
        # in-focus pixels far (more than the largest blur radius) from anything defocused are unchanged
        d = torch.from_numpy(p.depth.astype(np.float32) / 65535.0)
        defocused = (p.lens.K * (d - p.lens.d_f).abs() > 0.3).float()[None, None]
        reach = int(math.ceil(meta["max_blur_radius_px"])) + 2
        near_defocus = F.max_pool2d(defocused, 2 * reach + 1, stride=1, padding=reach)[0, 0] > 0
        keep = (~near_defocus).numpy()
        if keep.sum() > 20:
            diff = np.abs(p.original.astype(int) - p.bokeh.astype(int))[keep]
            assert diff.max() <= 1
            checked_sharp += 1
        # and strongly defocused areas really are blurred: less fine detail (mean |Laplacian|) there,
        # away from depth edges and from highlights (whose bokeh balls add edges of their own)
        strong = p.lens.K * (d - p.lens.d_f).abs() > 2.0
        bright = torch.from_numpy(p.original.max(axis=2) >= 250)
        mask = ~_dilate(~strong, 2) & ~_dilate(bright, 2 * reach)
        if mask.sum() > 300:
            ratio = float(_laplacian(p.bokeh)[mask].mean() / _laplacian(p.original)[mask].mean())
            assert ratio < 1.0
            checked_blur += ratio < 0.8
    assert checked_sharp >= 2 and checked_blur >= 2


@pytest.mark.parametrize("delta_b", [0.0, 0.2], ids=["backdrop_at_infinity", "backdrop_nearer"])
def test_blur_of_the_backdrop_is_the_thin_lens_radius(delta_b):
    """A pair's bokeh blurs a surface at true disparity delta_b (z_near / z) by the EBB! camera's
    thin-lens radius for the drawn focus distance, worked out by hand: r_inf (delta_s - delta_b) /
    delta_s with the subject in focus at delta_s, whatever the per-image normalisation of the depth
    map (at 0.2 the farthest visible surface is not at infinity, so d_inf < 0). Measured on the
    written 8-bit image: the spread of a vertical edge on the backdrop. A K that mishandles d_inf
    (say r_inf / d_f) blurs by the wrong radius here."""
    H, W, delta_s, gamma = 64, 384, 0.6, 2.2
    my, mx = synth.canvas_margin(H, W)
    Hc, Wc = H + 2 * my, W + 2 * mx
    light = torch.zeros(3, Hc, Wc)
    light[:, :, : mx + W // 2] = 0.5  # lit left of frame column W // 2, dark right of it
    backdrop = synth.SceneLayer(light, torch.ones(1, Hc, Wc), torch.full((1, Hc, Wc), delta_b), 0, 0, -1.0, "backdrop")
    band = 8  # a dark subject along the top of the frame, in focus: the near end of the depth range
    subject = synth.SceneLayer(
        torch.zeros(3, band, Wc), torch.ones(1, band, Wc), torch.full((1, band, Wc), delta_s), my, 0, delta_s, "subject"
    )
    for seed in range(3):
        rng = np.random.default_rng(seed)
        p = synth.render_pair([backdrop, subject], delta_s, {}, gamma, (H, W), rng)
        z_f = p.meta["focus_distance_m"]
        r_inf = 0.5 * (50.0 / 1.8) * 50.0 / (z_f * 1000.0 - 50.0) / (22.3 / W)  # A f / (z_f - f), in pixels
        expected = r_inf * (delta_s - delta_b) / delta_s
        # the line spread: the step in linear light between neighbouring columns, rows below the subject
        profile = ((p.bokeh[band:, :, 1].astype(np.float64) / 255.0) ** gamma).mean(axis=0)
        spread = np.clip(profile[:-1] - profile[1:], 0.0, None)
        x = np.arange(W - 1) + 0.5
        mean = (spread * x).sum() / spread.sum()
        var = (spread * (x - mean) ** 2).sum() / spread.sum() - 1 / 12  # less the pixel's own width
        # per axis, a disk has E[x^2] = r^2 / 4; a regular N-gon of circumradius r, r^2 (2 + cos(2 pi / N)) / 12
        lens = p.lens
        shape = 3.0 if lens.aperture == "disk" else 2.0 + math.cos(2 * math.pi / lens.blades)
        assert math.sqrt(12 * var / shape) == pytest.approx(expected, rel=0.02, abs=0.1), (seed, lens)
        assert mean == pytest.approx(W // 2 - 0.5, abs=0.2)  # the edge: between columns W // 2 - 1 and W // 2


def test_command_layout_resume_and_determinism(tmp_path):
    out = tmp_path / "data"
    args = ["--out", str(out), "--train", "2", "--val", "1", "--size", f"{H}x{W}", "--seed", "5"]
    assert synth.main(args) == 0
    for split, n in (("train", 2), ("val", 1)):
        for i in range(n):
            for kind, suffix in (("original", "png"), ("bokeh", "png"), ("depth", "png"), ("lens", "json")):
                assert (out / split / kind / f"{i}.{suffix}").is_file()
        assert not (out / split / "original" / f"{n}.png").exists()
    cfg = json.loads((out / "dataset.json").read_text())
    assert cfg["size"] == [H, W] and cfg["seed"] == 5 and cfg["train"] == 2 and cfg["val"] == 1
    with Image.open(out / "train" / "depth" / "0.png") as im:
        assert im.mode.startswith("I") and np.asarray(im).dtype == np.uint16 and im.size == (W, H)
    with Image.open(out / "train" / "bokeh" / "0.png") as im:
        assert im.mode == "RGB" and im.size == (W, H)
    lens = LensParams.load(out / "train" / "lens" / "1.json")
    assert lens.K > 0 and 0 <= lens.d_f <= 1
    first = _files(out)

    # simulate an interruption: one scene lost its bokeh image, another its depth map, and a
    # temp file was left behind; completed scenes must not be rewritten
    (out / "train" / "bokeh" / "1.png").unlink()
    (out / "val" / "depth" / "0.png").unlink()
    stale = out / "train" / "bokeh" / ".1.png.abc123.tmp"
    stale.write_bytes(b"partial")
    untouched = out / "train" / "original" / "0.png"
    mtime = untouched.stat().st_mtime_ns
    stats = synth.generate(out, 2, 1, (H, W), 5, progress=False)
    assert stats == {**stats, "generated": 2, "skipped": 1}
    assert untouched.stat().st_mtime_ns == mtime
    assert not stale.exists()
    assert _files(out) == first  # the redone scenes are byte-identical

    # growing the dataset keeps the existing scenes
    synth.generate(out, 3, 1, (H, W), 5, progress=False)
    assert (out / "train" / "lens" / "2.json").is_file()
    assert (out / "train" / "bokeh" / "0.png").read_bytes() == first["train/bokeh/0.png"]

    # a different size or seed in the same folder is refused
    with pytest.raises(SystemExit, match="refusing"):
        synth.generate(out, 1, 0, (H, W), 6, progress=False)


def test_two_workers_give_the_same_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    synth.generate(a, 2, 1, (H, W), 3, workers=1, progress=False)
    synth.generate(b, 2, 1, (H, W), 3, workers=2, progress=False)
    fa, fb = _files(a), _files(b)
    fa.pop("dataset.json"), fb.pop("dataset.json")
    assert fa == fb


@pytest.mark.parametrize("size", ["65x96", "64x100", "64", "0x16"])
def test_size_must_be_multiple_of_16(size, capsys):
    with pytest.raises(SystemExit):
        synth.main(["--out", "/nonexistent/never", "--train", "1", "--val", "0", "--size", size])
    assert "--size" in capsys.readouterr().err


def test_module_runs_as_a_command(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.synth",
            "--out",
            str(tmp_path / "d"),
            "--train",
            "1",
            "--val",
            "0",
            "--size",
            "32x48",
            "--seed",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d" / "train" / "bokeh" / "0.png").is_file()
