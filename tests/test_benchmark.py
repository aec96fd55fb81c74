"""training.benchmark: the timing callback, the Markdown table, the schedule arithmetic and the
data-loader check, run for real at CPU size (seconds). Speed targets are not asserted here: they
belong to the GPU run of the benchmark (see docs/gpu_training.md)."""

from __future__ import annotations

import json
import re
import time

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

from training.benchmark.cli import main
from training.benchmark.fake_ebb import make_fake_ebb
from training.benchmark.schedule import schedule_seconds, workers_needed
from training.benchmark.stages import run_stage
from training.benchmark.timer import StepTimer

TINY = ["--crop", "64", "--batch-size", "2", "--width", "4", "--arch", "tiny", "--steps", "3", "--warmup", "1"]


def _table_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and body rows of the first Markdown table in ``text``."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    header, body = cells[0], cells[2:]
    assert set(cells[1]) == {"---"}, "second line must be the Markdown separator"
    return header, body


# ----------------------------------------------------------------------------- arithmetic


def test_schedule_estimate_matches_hand_computation():
    # 60 · 4425 / 150 = 1770 s and 60 · 4425 / 50 = 5310 s: 7080 s in all (1 h 58 min).
    assert schedule_seconds(150, 50) == pytest.approx(7080.0)
    # 1 · 1000 / 100 + 2 · 1000 / 100 = 30 s
    assert schedule_seconds(100, 100, images=1000, epochs=(1, 2)) == pytest.approx(30.0)
    with pytest.raises(ValueError):
        schedule_seconds(0, 50)


def test_workers_needed_rounds_up_with_headroom():
    # 150 img/s from 20 img/s workers: 7.5 workers; with 25 % headroom 9.375, so 10.
    assert workers_needed(150, 20) == 10
    assert workers_needed(150, 20, headroom=1.0) == 8
    assert workers_needed(50, 100) == 1


# ----------------------------------------------------------------------------- the timer


class _SleepyPairs(torch.utils.data.Dataset):
    """Each sample takes 50 ms to 'decode'; the step itself is trivial."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        time.sleep(0.05)
        return {"image": torch.zeros(3, 4, 4)}


class _Trivial(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - 1).pow(2).sum() + 0 * batch["image"].sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_SleepyPairs(), batch_size=1, num_workers=0)


def test_timer_sees_a_slow_loader_as_wait_and_stops_after_the_measured_batches():
    timer = StepTimer(warmup=1, steps=3)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(_Trivial())
    assert timer.batches == 4  # of 8: stopped after warm-up + steps
    assert timer.measured == 3
    # Each batch blocks >= 50 ms on the loader, and the step is microseconds of work.
    assert min(timer.waits) >= 0.045
    assert timer.loader_wait_fraction() > 0.5
    assert timer.images_per_s() == pytest.approx(3 / sum(timer.periods))
    with pytest.raises(ValueError):
        StepTimer(warmup=0, steps=3)


# ----------------------------------------------------------------------------- the benchmark


def test_cpu_tiny_benchmark_prints_both_stages_and_the_schedule(tmp_path, capsys):
    out = tmp_path / "bench.json"
    payload = main(["--stage", "both", *TINY, "--json", str(out)])
    text = capsys.readouterr().out
    header, rows = _table_rows(text)
    for col in (
        "stage",
        "batch",
        "crop",
        "precision",
        "step time (ms, median)",
        "images/s",
        "loader wait (% of step)",
        "peak GPU memory (GiB)",
    ):
        assert col in header, col
    assert [r[header.index("stage")] for r in rows] == ["1", "2"]
    for r in rows:
        row = dict(zip(header, r))
        assert row["batch"] == "2" and row["crop"] == "64" and row["precision"] == "32-true"
        assert row["batches"] == "3"
        step_ms, ips, wait = (
            float(row["step time (ms, median)"]),
            float(row["images/s"]),
            float(row["loader wait (% of step)"]),
        )
        assert step_ms > 0 and ips > 0 and 0 <= wait < 100
        # images/s and the step time describe the same batches: 2 images per step, give or take
        # the spread of three steps around their median.
        assert 0.33 < ips * step_ms / 1000 / 2 < 3
        assert row["peak GPU memory (GiB)"] == "n/a (CPU)"
    # The JSON holds the same runs; stage 2 counted batches, while Lightning counted a generator
    # and a critic step per batch.
    saved = json.loads(out.read_text())
    s1, s2 = saved["stages"]
    assert (s1["global_steps"], s2["global_steps"]) == (4, 8)
    assert s1["measured_batches"] == s2["measured_batches"] == 3
    # The schedule line repeats the hand formula on the measured throughputs.
    expected = 60 * 4425 / s1["images_per_s"] + 60 * 4425 / s2["images_per_s"]
    assert saved["schedule_s"] == pytest.approx(expected)
    m = re.search(r"total \d+ h \d+ min \((\d+) s\)", text)
    assert m and int(m.group(1)) == round(expected)
    assert "not checked at this size" in text
    assert payload["stages"][0]["vgg"] == "-" and payload["stages"][1]["vgg"] in ("random init", "imagenet")


def test_benchmark_on_a_data_folder_repeats_epochs(tiny_dataset, capsys):
    # 6 training pairs at batch 2 = 3 batches an epoch; 4 batches need a second epoch.
    main(["--stage", "1", *TINY, "--data", str(tiny_dataset), "--num-workers", "0"])
    header, rows = _table_rows(capsys.readouterr().out)
    assert len(rows) == 1 and dict(zip(header, rows[0]))["batches"] == "3"


def _channels_last(t: torch.Tensor) -> bool:
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


class _Inside(Callback):
    """What the generator really ran with, seen from inside every batch the trainer ran."""

    def __init__(self) -> None:
        self.images: list[bool] = []  # the image batch in channels_last, per generator call
        self.intros: list[tuple[bool, torch.dtype | None, torch.dtype]] = []  # weight layout, autocast, output
        self.fused: list[list[bool]] = []  # per batch, per optimiser

    def on_fit_start(self, trainer, pl_module) -> None:
        pl_module.generator.register_forward_hook(lambda m, args, out: self.images.append(_channels_last(args[0])))
        pl_module.generator.intro.register_forward_hook(self._intro_ran)

    def _intro_ran(self, conv, args, output) -> None:
        autocast = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        self.intros.append((_channels_last(conv.weight), autocast, output.dtype))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.fused.append([bool(opt.defaults.get("fused")) for opt in trainer.optimizers])


def test_the_timed_batches_run_with_the_precision_and_levers_asked_for():
    """The row says bf16-mixed, channels_last and fused Adam; the batches it timed must have run so
    (run_stage copies the flags into its row, so the row alone proves nothing)."""
    for stage in (1, 2):
        inside = _Inside()
        r = run_stage(
            stage,
            crop=64,
            batch_size=2,
            width=4,
            arch="tiny",
            steps=2,
            warmup=1,
            precision="bf16-mixed",
            channels_last=True,
            fused_adam=True,
            vgg="off",
            callbacks=[inside],
        )
        assert (r.precision, r.channels_last, r.fused_adam) == ("bf16-mixed", True, True)
        # every call: the image batch and the first layer's weights in channels_last, the first
        # convolution under bf16 autocast and computed in bf16
        assert inside.images and set(inside.images) == {True}
        assert set(inside.intros) == {(True, torch.bfloat16, torch.bfloat16)}
        assert inside.fused == [[True] * (1 if stage == 1 else 2)] * 3  # warm-up + 2 batches, every optimiser
        # the row's numbers are those of the 2 timed batches, not of the warm-up one
        assert r.measured_batches == 2 and len(r.step_ms) == 2 and r.images_per_s > 0


@pytest.mark.slow
def test_compile_runs_both_stages():  # minutes on CPU: inductor compiles C++ for every graph
    for stage in (1, 2):
        r = run_stage(stage, crop=64, batch_size=2, width=4, arch="tiny", steps=1, warmup=2, compile=True, vgg="off")
        assert r.compile and r.images_per_s > 0


# ----------------------------------------------------------------------------- the data loader


def test_fake_ebb_is_ebb_sized_quality_95_jpeg_and_the_loader_check_reads_it(tmp_path, capsys):
    root = make_fake_ebb(2, tmp_path / "ebb")
    photo = root / "Training" / "original" / "0.jpg"
    with Image.open(photo) as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (1536, 1024), "RGB")
        # libjpeg scales the standard luminance table by (200 − 2·95) % = 10 %: its DC entry
        # 16 → (16·10 + 50) // 100 = 2 and its largest entry 121 → (121·10 + 50) // 100 = 12.
        luma = list(im.quantization[0])
        assert luma[0] == 2 and max(luma) == 12
    with Image.open(root / "Training" / "depth" / "0.png") as d:
        assert d.mode.startswith("I") and d.size == (1536, 1024)  # 16-bit, as training.depth writes
    assert (root / "Training" / "bokeh" / "1.jpg").is_file()

    main(
        [
            "--loader-only",
            "--data",
            str(root),
            "--crop",
            "64",
            "--batch-size",
            "1",
            "--num-workers",
            "0",
            "--steps",
            "2",
            "--warmup",
            "1",
        ]
    )
    text = capsys.readouterr().out
    header, rows = _table_rows(text)
    row = dict(zip(header, rows[0]))
    assert row["files"].endswith("JPG 1536x1024") and row["workers"] == "0"
    assert float(row["images/s"]) > 0 and float(row["batches/s"]) == pytest.approx(float(row["images/s"]), rel=0.01)
    assert "decode depth" in text
