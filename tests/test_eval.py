"""``python -m eval`` end to end on a tiny data set written here, plus the model wiring.

The identity model's PSNR is recomputed by hand in numpy from the PNG files (centre crop included),
and the checkpoint's PSNR from a direct forward pass of a NAFNet with non-identity weights (by hand
and with ``common.metrics.psnr``): both independent of eval/, and the checkpoint's differs from
the identity's, so evaluating the input instead of the output fails.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import runpy
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from common.metrics import psnr
from eval.evaluate import evaluate, resolve_split
from eval.grid import CELL_WIDTH
from eval.runners import load_runners
from export.compare import non_identity_
from training.model import NAFNet

H, W = 40, 72  # not multiples of 16: evaluation centre-crops to 32 × 64
CH, CW = 32, 64


def _write_split(split_dir, n: int = 3, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for sub in ("original", "bokeh", "depth"):
        (split_dir / sub).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(n):
        img = np.clip(0.5 + 0.3 * np.sin(xx / (2 + i))[..., None] + 0.2 * rng.random((H, W, 3)) - 0.1, 0, 1)
        near = (xx > 20 + 5 * i) & (xx < 50) & (yy > 8) & (yy < 32)
        blur = (img + np.roll(img, 1, 0) + np.roll(img, -1, 0) + np.roll(img, 1, 1) + np.roll(img, -1, 1)) / 5
        target = np.where(near[..., None], img, blur)
        depth = np.where(near, 0.9, 0.1 + 0.05 * i)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(split_dir / "original" / f"{i}.png")
        Image.fromarray((target * 255).round().astype(np.uint8)).save(split_dir / "bokeh" / f"{i}.png")
        Image.fromarray((depth * 65535).round().astype(np.uint16)).save(split_dir / "depth" / f"{i}.png")


def _crop(a: np.ndarray) -> np.ndarray:
    top, left = (H - CH) // 2, (W - CW) // 2
    return a[top : top + CH, left : left + CW]


def _read(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float64) / 255.0


def _hand_psnr(pred: np.ndarray, target: np.ndarray) -> float:
    return 10 * math.log10(1.0 / np.mean((np.clip(pred, 0, 1) - target) ** 2))


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    _write_split(root / "val", n=3)
    _write_split(root / "train", n=1, seed=9)
    return root


@pytest.fixture
def tiny_ckpt(tmp_path):
    # Default blocks, so load_generator infers the arch from width. Not the fresh NAFNet, which
    # returns its input: evaluating the input instead of the output would then go unnoticed.
    gen = non_identity_(NAFNet(width=4)).eval()
    path = tmp_path / "gen.pt"
    torch.save(gen.state_dict(), path)
    return path, gen


def _rows(out):
    with open(out / "per_image.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_cli_end_to_end(data, tiny_ckpt, tmp_path, monkeypatch):
    ckpt, gen = tiny_ckpt
    out = tmp_path / "runs" / "eval" / "t"
    paths = {"--data": data, "--checkpoint": ckpt, "--out": out, "--alexnet-weights": tmp_path / "absent.pth"}
    argv = ["eval", "--split", "val", "--identity", "--crops", "--grid-rows", "2"]
    argv += [arg for flag, path in paths.items() for arg in (flag, str(path))]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("eval", run_name="__main__")  # what `python -m eval` runs
    assert exit_info.value.code == 0

    for name in ("per_image.csv", "summary.json", "summary.md", "grid.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries

    rows = _rows(out)
    assert [(r["model"], r["id"]) for r in rows] == [(m, i) for i in "012" for m in ("pytorch", "identity")]

    # Identity: PSNR of the centre-cropped original against the centre-cropped ground truth.
    hand = []
    for i in "012":
        original = _crop(_read(data / "val" / "original" / f"{i}.png"))
        target = _crop(_read(data / "val" / "bokeh" / f"{i}.png"))
        hand.append(_hand_psnr(original, target))
        row = next(r for r in rows if r["model"] == "identity" and r["id"] == i)
        assert float(row["psnr"]) == pytest.approx(hand[-1], abs=1e-4)
        # Checkpoint: a direct forward pass of the same generator.
        with torch.no_grad():
            x = torch.from_numpy(original.transpose(2, 0, 1)[None]).float()
            d = torch.from_numpy(
                _crop(np.asarray(Image.open(data / "val" / "depth" / f"{i}.png"), dtype=np.float64) / 65535.0)[
                    None, None
                ]
            ).float()
            y = gen(x, d)[0].double().numpy().transpose(1, 2, 0)
        row = next(r for r in rows if r["model"] == "pytorch" and r["id"] == i)
        assert float(row["psnr"]) == pytest.approx(_hand_psnr(y, target), abs=1e-3)
        # the same with the project's metric, on the model's clamped output
        as_batch = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]
        own = float(psnr(as_batch(np.clip(y, 0, 1)), as_batch(target)))
        assert float(row["psnr"]) == pytest.approx(own, abs=1e-3)
        # and the model really changed the photo: its PSNR is not the input's
        assert abs(own - hand[-1]) > 0.5, (own, hand[-1])
        assert row["lpips"] == ""  # unavailable: empty, not a number

    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["identity"]["psnr"] == pytest.approx(np.mean(hand), abs=1e-4)
    assert summary["models"]["identity"]["images"] == 3
    assert summary["data"]["sizes_hw"] == [[CH, CW]]
    assert summary["lpips"]["available"] is False and "absent.pth" in summary["lpips"]["reason"]
    assert summary["models"]["identity"]["lpips"] is None
    assert summary["models"]["pytorch"]["source"]["kind"] == "checkpoint"
    # Every image has a depth step, so every image has an edge band.
    assert summary["models"]["identity"]["edge_images"] == 3

    md = (out / "summary.md").read_text()
    assert "| model | PSNR ↑ | SSIM ↑ | LPIPS ↓ | edge PSNR ↑ | images | time/img |" in md
    assert f"| identity | {np.mean(hand):.2f} |" in md and "LPIPS unavailable" in md

    grid = Image.open(out / "grid.png")
    assert grid.width == 4 + 5 * (CELL_WIDTH + 4)  # input | depth | pytorch | identity | ground truth
    for i in "012":
        for name in ("input", "depth", "ground_truth", "pytorch", "identity"):
            assert (out / "crops" / i / f"{name}.png").is_file()


def test_grid_has_one_column_per_model_plus_three(data, tmp_path):
    out = tmp_path / "o"
    models = {"a": load_runners(identity=True)["identity"], "b": lambda img, d: img * 0.5}
    evaluate(models, data, "val", out, max_images=2, lpips_reason="off", progress=False)
    assert Image.open(out / "grid.png").width == 4 + (2 + 2 + 1) * (CELL_WIDTH + 4)
    assert len(_rows(out)) == 4  # 2 images × 2 models


def test_lpips_column_with_weight_files(data, tmp_path):
    from eval.lpips import load_lpips
    from tests.test_metrics import _random_weight_files

    alex, lin, _, _ = _random_weight_files(tmp_path)
    model, reason = load_lpips(alex, lin)
    models = load_runners(identity=True)
    models["perfect"] = _GroundTruthOracle(data)
    summary = evaluate(models, data, "val", tmp_path / "o", lpips_model=model, progress=False)
    assert summary["lpips"]["available"] and summary["lpips"]["official_weights"] is False
    assert summary["models"]["identity"]["lpips"] > 0
    assert summary["models"]["perfect"]["lpips"] == 0.0  # identical to the target
    assert math.isinf(float(_rows(tmp_path / "o")[1]["psnr"]))
    assert "not the published files" in (tmp_path / "o" / "summary.md").read_text()


class _GroundTruthOracle:
    """Returns the (centre-cropped) ground truth: PSNR inf, LPIPS 0."""

    def __init__(self, root) -> None:
        self.split = resolve_split(root, "val")
        self.ds = self.split.dataset()
        self.i = 0

    def __call__(self, image, depth):
        out = self.ds[self.i % len(self.ds)]["target"][None].numpy()
        self.i += 1
        return out


def test_renderer_gets_lens_parameters(data, tmp_path, monkeypatch):
    seen = []

    class FakeRenderer:
        def render(self, image, disparity, lens):
            seen.append((lens.K, lens.d_f, lens.gamma))
            return image * 0 + disparity.mean()

    import eval.evaluate as evaluate_module
    import eval.runners as runners_module
    import training.renderers.lens as lens_module

    monkeypatch.setattr(runners_module, "get_renderer", lambda name: FakeRenderer())
    # A scene's lens file when it has one, all of it (gamma too), else the project's one
    # auto-focus on its depth map (here a lens whose K is the depth map's width).
    file_lens = lens_module.LensParams(K=7.0, d_f=0.25, gamma=3.0)
    monkeypatch.setattr(lens_module.LensParams, "load", staticmethod(lambda path: file_lens))
    monkeypatch.setattr(
        evaluate_module, "auto_focus", lambda disparity: lens_module.LensParams(K=float(disparity.shape[-1]), d_f=0.5)
    )
    (data / "val" / "lens").mkdir()
    (data / "val" / "lens" / "1.json").write_text("{}")
    models = load_runners(renderers=["scatter"])
    evaluate(models, data, "val", tmp_path / "o", lpips_reason="off", progress=False, grid_rows=0)
    assert seen == [(CW, 0.5, 2.2), (7.0, 0.25, 3.0), (CW, 0.5, 2.2)]
    assert not (tmp_path / "o" / "grid.png").exists()


def test_classical_renderers_run(data, tmp_path):
    pytest.importorskip("training.renderers")
    models = load_runners(renderers=["scatter", "layered", "blend"], identity=True)
    summary = evaluate(models, data, "val", tmp_path / "o", max_images=1, lpips_reason="off", progress=False)
    for name in ("scatter", "layered", "blend"):
        m = summary["models"][name]
        assert m["images"] == 1 and math.isfinite(m["psnr"]) and 0 < m["ssim"] <= 1
        # A renderer blurs: its output differs from the input, so its score differs from identity's.
        assert m["psnr"] != summary["models"]["identity"]["psnr"]


def test_exported_files_go_through_load_runner(tmp_path, monkeypatch):
    calls = []

    def load_runner(path, num_threads):
        calls.append((path, num_threads))
        return lambda image, depth: image + 1

    import eval.runners as runners_module

    monkeypatch.setattr(runners_module, "load_runner", load_runner)
    files = [tmp_path / n for n in ("model.onnx", "bokeh_fp16.tflite", "bokeh_int8.tflite", "x.tflite")]
    for f in files:
        f.write_bytes(b"\0")
    models = load_runners(onnx=files[0], tflite=[str(files[1]), str(files[2]), f"mine={files[3]}"], num_threads=3)
    assert list(models) == ["onnx", "tflite_fp16", "tflite_int8", "mine"]
    assert calls == [(str(f), 3) for f in files]
    assert models["tflite_fp16"](np.zeros((1, 3, 16, 16), np.float32), None).max() == 1


def test_a_checkpoint_runner_says_where_it_came_from(tiny_ckpt):
    ckpt, _ = tiny_ckpt
    source = load_runners(checkpoint=ckpt)["pytorch"].source
    assert source["kind"] == "checkpoint" and source["path"] == str(ckpt)
    assert source["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert source["arch"]["width"] == 4


def test_clear_errors(data, tmp_path, capsys):
    from eval.evaluate import main

    assert (
        main(["--data", str(data), "--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "missing.ckpt" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "nodata"), "--identity", "--out", str(tmp_path / "o")]) == 2
    assert "nodata" in capsys.readouterr().err
    assert main(["--data", str(data), "--split", "val294", "--identity", "--out", str(tmp_path / "o")]) == 2
    assert "val294" in capsys.readouterr().err
    assert main(["--data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_runners(tflite=[tmp_path / "none.tflite"])
    (data / "val" / "depth" / "2.png").unlink()
    with pytest.raises(Exception, match="2.png"):
        evaluate(load_runners(identity=True), data, "val", tmp_path / "o", lpips_reason="off", progress=False)
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_val294_ids_on_an_ebb_root(tmp_path):
    # AIM 2020 layout: Training/{original,bokeh,depth}/<i>.png; val294 = ids 4400..4693.
    root = tmp_path / "ebb"
    t = root / "Training"
    for sub in ("original", "bokeh", "depth"):
        (t / sub).mkdir(parents=True)
    for i in [0, *range(4400, 4694)]:
        for sub in ("original", "bokeh", "depth"):
            (t / sub / f"{i}.png").write_bytes(b"")
    split = resolve_split(root, "val294")
    assert split.ids == [str(i) for i in range(4400, 4694)] and split.layout.kind == "aim2020"
    (t / "original" / "4500.png").unlink()
    with pytest.raises(FileNotFoundError, match="4500"):
        resolve_split(root, "val294")


def test_out_that_is_a_file_is_one_clear_error(tmp_path, capsys):
    """Probe row 8: `eval --out FILE` and `training.synth --out FILE` ended in a FileExistsError
    traceback; both now stop before any work with one line naming the path."""
    from eval.evaluate import main as eval_main
    from training.synth import main as synth_main

    f = tmp_path / "a_file"
    f.write_text("x")
    assert eval_main(["--data", str(tmp_path), "--identity", "--out", str(f)]) == 2
    assert f"--out {f}: is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        synth_main(["--out", str(f), "--train", "0", "--val", "1"])
    assert e.value.code == 2 and f"--out {f}: is a file" in capsys.readouterr().err
