"""Training-throughput benchmark for one GPU (issue "Train fast on one GPU").

The paper trained 60 + 60 epochs on 8 V100s (Bokeh-Loss GAN §4.1). This script measures how fast
one machine runs the *real* training steps of ``training.module.BokehGAN``, through a Lightning
``Trainer`` exactly as ``python -m training fit`` does (same module, same stage YAML loss weights,
same optimisers), and turns the throughput into the time of the full schedule:

    # the GPU measurement (targets: stage 1 >= 150 img/s, stage 2 >= 50 img/s on one H200)
    python -m training.benchmark --stage both --crop 1024 --batch-size 16 --precision bf16-mixed \\
        --compile --channels-last --fused-adam --steps 30 --warmup 10 --data synthetic-in-memory
    # the same on a real data folder, to see the data-loader wait
    python -m training.benchmark --stage both ... --data data/synthetic --num-workers 12
    # the CPU smoke size (seconds; --arch tiny shrinks the networks further, for tests)
    python -m training.benchmark --stage both --crop 64 --batch-size 2 --width 4 --steps 3 --warmup 1
    # the data loader alone, on EBB!-size JPEGs (the real EBB! is not downloadable here)
    python -m training.benchmark --make-fake-ebb 64 /tmp/fake_ebb
    python -m training.benchmark --loader-only --data /tmp/fake_ebb --crop 1024 --batch-size 16 --num-workers 2,4,8

What is measured, per training batch after ``--warmup`` batches (warm-up covers torch.compile,
cuDNN autotuning and the DataLoader workers' start):

* **step time**: wall time from the end of one batch to the end of the next, with
  ``torch.cuda.synchronize()`` at each batch end, so it is the GPU's time and includes everything
  the schedule pays per batch. Images/s = images / total step time.
* **loader wait**: host time from the end of one batch (``on_train_batch_end``) to the start of
  the next (``on_train_batch_start``): blocked on the DataLoader, plus Lightning's batch hand-over.
  The host-to-device copy of a pinned batch is asynchronous and lands in the step time. The
  synchronisation at every batch end makes this an upper bound: without it the GPU would still
  be busy with queued work while the host waits.
* **peak GPU memory**: ``torch.cuda.max_memory_allocated`` over the measured batches.

Stage 2 runs with manual optimisation, where Lightning counts a generator and a critic step as two
global steps per batch: everything here counts batches. The speed levers (``--compile``,
``--channels-last``, ``--fused-adam``) are ``BokehGAN`` options, so the training CLI uses the same
code (``--model.compile true`` ...); bf16 autocast is the trainer's ``--precision bf16-mixed``.
``docs/gpu_training.md`` has the recommended full-schedule commands.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from lightning.pytorch.callbacks import Callback
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from common.io import atomic_save_image, atomic_write_text

__all__ = [
    "EBB_TRAIN_IMAGES",
    "SCHEDULE_EPOCHS",
    "TARGET_IMAGES_PER_S",
    "StepTimer",
    "StageResult",
    "LoaderResult",
    "schedule_seconds",
    "workers_needed",
    "run_stage",
    "run_loader",
    "make_fake_ebb",
    "stage_table",
    "loader_table",
    "main",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# §4.1: EBB!'s 4,694 training pairs, hand-pruned to 4,425; 60 epochs per stage.
EBB_TRAIN_IMAGES = 4425
SCHEDULE_EPOCHS = (60, 60)
# The targets on one H200, width-8 generator, 1024x1024 crops; the schedule in < 3 h.
TARGET_IMAGES_PER_S = {1: 150.0, 2: 50.0}
TARGET_SCHEDULE_S = 3 * 3600.0
LEVERS = ("channels_last", "compile", "fused_adam")
# EBB! photos: 1536 (or 1600) x 1024 JPEGs.
EBB_SIZE = (1024, 1536)
# Network sizes: the paper's (36 NAFBlocks, §3.1; PatchGANs with pix2pix's 64 base channels), or
# "tiny" for CPU smoke runs (one NAFBlock per level, 8-channel critics): on a CPU each of the
# paper generator's ~235 small convolutions costs milliseconds of fixed overhead, and the critics'
# double backward dominates stage 2.
ARCHS = {
    "paper": {"enc_blocks": (2, 2, 2, 20), "middle_blocks": 2, "dec_blocks": (2, 2, 2, 2), "disc_base_channels": 64},
    "tiny": {"enc_blocks": (1, 1, 1, 1), "middle_blocks": 1, "dec_blocks": (1, 1, 1, 1), "disc_base_channels": 8},
}


# ----------------------------------------------------------------------------- arithmetic


def schedule_seconds(
    stage1_images_per_s: float,
    stage2_images_per_s: float,
    images: int = EBB_TRAIN_IMAGES,
    epochs: tuple[int, int] = SCHEDULE_EPOCHS,
) -> float:
    """Training time of the two-stage schedule: Σ epochs · images / (images/s), validation excluded."""
    if stage1_images_per_s <= 0 or stage2_images_per_s <= 0:
        raise ValueError(f"throughputs must be positive, got {stage1_images_per_s}, {stage2_images_per_s}")
    return epochs[0] * images / stage1_images_per_s + epochs[1] * images / stage2_images_per_s


def workers_needed(target_images_per_s: float, images_per_s_per_worker: float, headroom: float = 1.25) -> int:
    """DataLoader workers for ``target`` images/s, if decoding scales linearly with workers.

    ``headroom`` > 1 because a loader that only just keeps up still stalls the step whenever a
    worker is late (the prefetch queue runs dry); 25 % spare keeps the wait near zero.
    """
    if images_per_s_per_worker <= 0:
        raise ValueError(f"images/s per worker must be positive, got {images_per_s_per_worker}")
    return max(1, math.ceil(headroom * target_images_per_s / images_per_s_per_worker))


def _hms(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


# ----------------------------------------------------------------------------- timing


class StepTimer(Callback):
    """Per-batch step time, loader wait and peak GPU memory after ``warmup`` batches.

    Counts batches (``on_train_batch_end`` calls), not ``global_step``: under manual optimisation
    with two optimisers a batch is two global steps. Stops the trainer after ``warmup + steps``.
    """

    def __init__(self, warmup: int, steps: int) -> None:
        super().__init__()
        if warmup < 1 or steps < 1:
            # One warm-up batch at least: the first batch has no previous batch end to time from.
            raise ValueError(f"need warmup >= 1 and steps >= 1, got warmup={warmup}, steps={steps}")
        self.warmup = warmup
        self.steps = steps
        self.batches = 0
        self.waits: list[float] = []  # seconds, per measured batch
        self.computes: list[float] = []
        self.periods: list[float] = []
        self.batch_sizes: list[int] = []
        self.peak_memory_bytes: int | None = None
        self.warmup_seconds = 0.0
        self._cuda = False
        self._t_fit_start = 0.0
        self._t_prev_end: float | None = None
        self._t_start = 0.0

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._cuda = pl_module.device.type == "cuda"
        self._t_fit_start = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._t_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._sync()
        now = time.perf_counter()
        self.batches += 1
        if self.batches > self.warmup and self._t_prev_end is not None:
            self.waits.append(self._t_start - self._t_prev_end)
            self.computes.append(now - self._t_start)
            self.periods.append(now - self._t_prev_end)
            self.batch_sizes.append(int(batch["image"].shape[0]))
        if self.batches == self.warmup:
            self.warmup_seconds = now - self._t_fit_start
            if self._cuda:  # the peak of the steady state, not of compilation
                torch.cuda.reset_peak_memory_stats()
        if self.batches == self.warmup + self.steps:
            if self._cuda:
                self.peak_memory_bytes = int(torch.cuda.max_memory_allocated())
            trainer.should_stop = True
        self._t_prev_end = now

    # -- summaries
    @property
    def measured(self) -> int:
        return len(self.periods)

    def images_per_s(self) -> float:
        return sum(self.batch_sizes) / sum(self.periods)

    def median_step_s(self) -> float:
        return statistics.median(self.periods)

    def loader_wait_fraction(self) -> float:
        return sum(self.waits) / sum(self.periods)


# ----------------------------------------------------------------------------- data


class InMemoryBatches(Dataset):
    """Pre-collated random batches already in (pinned) memory: the GPU step without any decoding.

    Two batches alternate, so the throughput does not depend on a loader at all; each is pinned
    when CUDA is present, so Lightning's ``non_blocking`` copy is truly asynchronous, as it is for
    a ``pin_memory=True`` DataLoader.
    """

    def __init__(self, batches: int, batch_size: int, crop: int, pin: bool, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.length = batches
        self.pool = []
        for k in range(2):
            image = torch.rand(batch_size, 3, crop, crop, generator=g)
            # A smooth disparity with a near blob, so the depth-weighted losses see a real mask.
            coarse = torch.rand(batch_size, 1, 4, 4, generator=g)
            depth = F.interpolate(coarse, size=(crop, crop), mode="bilinear", align_corners=False)
            target = F.avg_pool2d(image, 5, stride=1, padding=2)  # stand-in bokeh
            batch = {"image": image, "depth": depth, "target": target}
            if pin:
                batch = {n: t.pin_memory() for n, t in batch.items()}
            batch["id"] = [f"mem{k}_{i}" for i in range(batch_size)]
            self.pool.append(batch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.pool[index % 2]


class InMemoryDataModule(L.LightningDataModule):
    def __init__(self, batches: int, batch_size: int, crop: int, seed: int = 0) -> None:
        super().__init__()
        self.dataset = InMemoryBatches(batches, batch_size, crop, pin=torch.cuda.is_available(), seed=seed)

    def train_dataloader(self) -> DataLoader:
        # batch_size=None: the dataset yields whole batches; no workers, nothing to decode.
        return DataLoader(self.dataset, batch_size=None, shuffle=False, num_workers=0)


def _one_id_val_list(root: Path, tmp: Path) -> str:
    """A one-id validation list for a folder without a usable validation split.

    The benchmark never validates, but ``BokehDataModule`` refuses a split with no validation
    ids (a small EBB!-layout folder holds none of Val200/Val294), so one id is set aside.
    """
    from training.data import detect_layout  # noqa: PLC0415

    ids = detect_layout(root).ids()
    if len(ids) < 2:
        raise ValueError(f"{root}: needs at least 2 samples (one is set aside as the unused validation split)")
    path = tmp / "benchmark_val_ids.txt"
    path.write_text(ids[-1] + "\n")
    return str(path)


def make_datamodule(
    root: str | os.PathLike,
    crop: int,
    batch_size: int,
    num_workers: int,
    tmp: Path,
    seed: int = 0,
    lens: bool = False,
    cache: bool = False,
    max_train_samples: int | None = None,
) -> L.LightningDataModule:
    """``BokehDataModule`` on ``root`` as training uses it (random crops, flips, pinned memory)."""
    from training.data import BokehDataModule  # noqa: PLC0415

    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(
            f"--data {root} does not exist; use --data synthetic-in-memory, a synthetic data set "
            "(python -m training.synth) or --make-fake-ebb N DIR for EBB!-size JPEGs"
        )
    has_splits = (root / "train" / "original").is_dir() and (root / "val" / "original").is_dir()
    val_split = "auto" if has_splits else _one_id_val_list(root, tmp)
    return BokehDataModule(
        str(root),
        val_split=val_split,
        crop_size=crop,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
        lens=lens,
        cache=cache,
        max_train_samples=max_train_samples,
    )


# ----------------------------------------------------------------------------- stages


@dataclass
class StageResult:
    stage: int
    device: str
    precision: str
    batch_size: int
    crop: int
    width: int
    arch: str
    compile: bool
    channels_last: bool
    fused_adam: bool
    data: str
    num_workers: int
    vgg: str
    warmup_batches: int
    measured_batches: int
    global_steps: int
    warmup_s: float
    median_step_ms: float
    mean_compute_ms: float
    images_per_s: float
    loader_wait_fraction: float
    peak_gpu_memory_gib: float | None
    step_ms: list[float] = field(default_factory=list)


def _device_name(accelerator: str) -> str:
    if accelerator == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    n = torch.get_num_threads()
    return f"CPU, {n} thread{'s' if n != 1 else ''} (torch {torch.__version__})"


def stage_model_kwargs(
    stage: int, width: int, vgg_weights: str | None, levers: dict[str, bool], arch: str = "paper"
) -> dict[str, Any]:
    """``BokehGAN`` arguments of a stage: the shipped YAML's model section, resized for the run.

    The generator starts from random weights (``init_generator`` off): the speed of a step does
    not depend on the weights.
    """
    cfg_path = CONFIG_DIR / f"stage{stage}.yaml"
    kwargs = dict(yaml.safe_load(cfg_path.read_text())["model"])
    kwargs["width"] = width
    kwargs.update(ARCHS[arch])
    kwargs["init_generator"] = None
    if kwargs.get("vgg_weight", 0.0) > 0:
        if vgg_weights is None:
            kwargs["vgg_weight"] = 0.0
        else:
            kwargs["vgg_weights"] = vgg_weights
    kwargs.update({k: v for k, v in levers.items() if v})
    return kwargs


def applied_levers(model: L.LightningModule, trainer: L.Trainer) -> dict[str, bool]:
    """What the trained module really ran with, read off the objects (not off the flags)."""
    weight = model.generator.intro.weight
    return {
        "channels_last": weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous(),
        "compile": getattr(model.generator, "_compiled_call_impl", None) is not None,
        "fused_adam": all(bool(opt.defaults.get("fused")) for opt in trainer.optimizers),
    }


def resolve_vgg(mode: str, tmp: Path) -> tuple[str | None, str]:
    """Weights file for stage 2's VGG19 loss and a label for the table.

    "random" writes a randomly initialised VGG19 to ``tmp``: the loss then costs exactly what the
    real one costs, which is all a throughput benchmark needs (no ImageNet weights here).
    """
    from training.losses.vgg import VGG19Features, find_vgg19_weights  # noqa: PLC0415

    if mode == "off":
        return None, "off"
    if mode in ("auto", "imagenet"):
        found = find_vgg19_weights()
        if found is not None:
            return str(found), "imagenet"
        if mode == "imagenet":
            raise FileNotFoundError("--vgg imagenet: vgg19-dcbb9e9d.pth not found (see training/losses/vgg.py)")
    path = tmp / "vgg19-random.pth"
    if not path.is_file():
        torch.save(VGG19Features().state_dict(), path)
    return str(path), "random init"


def run_stage(
    stage: int,
    *,
    crop: int,
    batch_size: int,
    width: int = 8,
    arch: str = "paper",
    precision: str = "32-true",
    compile: bool = False,
    channels_last: bool = False,
    fused_adam: bool = False,
    steps: int = 30,
    warmup: int = 10,
    data: str = "synthetic-in-memory",
    num_workers: int = 0,
    vgg: str = "auto",
    accelerator: str = "auto",
    cudnn_benchmark: bool = True,
    cpu_threads: int = 1,
    seed: int = 0,
    tmp: Path | None = None,
    lens: bool = False,
    cache: bool = False,
    max_train_samples: int | None = None,
) -> StageResult:
    """Run ``warmup + steps`` real training batches of one stage and time them.

    ``cpu_threads``: torch threads for a CPU run. One by default: on a shared CPU, OpenMP threads
    that spin-wait for busy cores made a smoke step ~60x slower with 2 threads than with 1.
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    if crop % 16:
        raise ValueError(f"--crop {crop}: must be a multiple of 16 (the generator downsamples 4x by 2)")
    if stage == 2 and crop < 64:
        raise ValueError(f"--crop {crop}: stage 2's depth-5 PatchGAN needs crops of at least 64")
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    from training.module import BokehGAN  # noqa: PLC0415

    with ExitStack() as stack:
        if tmp is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bokeh_bench_")))
        if accelerator == "cpu":
            threads_before = torch.get_num_threads()
            torch.set_num_threads(cpu_threads)
            stack.callback(torch.set_num_threads, threads_before)
        vgg_file, vgg_label = resolve_vgg(vgg, tmp) if stage == 2 else (None, "-")
        levers = {"channels_last": channels_last, "compile": compile, "fused_adam": fused_adam}
        L.seed_everything(seed, verbose=False)
        model = BokehGAN(**stage_model_kwargs(stage, width, vgg_file, levers, arch), lens_input=lens)
        device = _device_name(accelerator)  # while the run's thread count is set
        if stage == 2 and vgg_file is None:
            vgg_label = "off"
        needed = warmup + steps
        if data == "synthetic-in-memory":
            if lens:
                raise ValueError("--lens needs --data DIR (a synthetic data set with lens/ files)")
            dm: L.LightningDataModule = InMemoryDataModule(needed, batch_size, crop, seed)
            per_epoch = needed
        else:
            dm = make_datamodule(
                data,
                crop,
                batch_size,
                num_workers,
                tmp,
                seed,
                lens=lens,
                cache=cache,
                max_train_samples=max_train_samples,
            )
            dm.setup("fit")
            per_epoch = len(dm.train_set) // batch_size  # drop_last=True
            if per_epoch < 1:
                raise ValueError(
                    f"--data {data}: {len(dm.train_set)} training samples, fewer than one batch of {batch_size}"
                )
        timer = StepTimer(warmup, steps)
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=precision,
            max_epochs=math.ceil(needed / per_epoch),
            limit_train_batches=min(per_epoch, needed),
            limit_val_batches=0,
            num_sanity_val_steps=0,
            enable_checkpointing=False,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            benchmark=cudnn_benchmark if accelerator == "cuda" else None,
            callbacks=[timer],
            default_root_dir=str(tmp),
        )
        trainer.fit(model, datamodule=dm)
        global_steps = trainer.global_step
        applied = applied_levers(model, trainer)
    if applied != levers:
        raise RuntimeError(f"stage {stage}: asked for levers {levers}, the trained module ran with {applied}")
    if timer.measured < steps:
        raise RuntimeError(f"stage {stage}: only {timer.measured} of {steps} batches were measured")
    peak = timer.peak_memory_bytes
    return StageResult(
        stage=stage,
        device=device,
        precision=precision,
        batch_size=batch_size,
        crop=crop,
        width=width,
        arch=arch,
        compile=compile,
        channels_last=channels_last,
        fused_adam=fused_adam,
        data=str(data),
        num_workers=0 if data == "synthetic-in-memory" else num_workers,
        vgg=vgg_label,
        warmup_batches=warmup,
        measured_batches=timer.measured,
        global_steps=global_steps,
        warmup_s=timer.warmup_seconds,
        median_step_ms=1000 * timer.median_step_s(),
        mean_compute_ms=1000 * statistics.fmean(timer.computes),
        images_per_s=timer.images_per_s(),
        loader_wait_fraction=timer.loader_wait_fraction(),
        peak_gpu_memory_gib=None if peak is None else peak / 2**30,
        step_ms=[1000 * p for p in timer.periods],
    )


STAGE_COLUMNS = (
    "stage", "batch", "crop", "precision", "compile", "channels_last", "fused_adam", "batches",
    "step time (ms, median)", "images/s", "loader wait (% of step)", "peak GPU memory (GiB)", "warm-up (s)",
)  # fmt: skip


def stage_table(results: Sequence[StageResult]) -> str:
    """Markdown table (one row per stage), the schedule estimate and the targets."""
    yes = {True: "yes", False: "no"}
    lines = ["| " + " | ".join(STAGE_COLUMNS) + " |", "|" + "---|" * len(STAGE_COLUMNS)]
    for r in results:
        mem = "n/a (CPU)" if r.peak_gpu_memory_gib is None else f"{r.peak_gpu_memory_gib:.2f}"
        cells = [
            str(r.stage), str(r.batch_size), str(r.crop), r.precision, yes[r.compile], yes[r.channels_last],
            yes[r.fused_adam], str(r.measured_batches), f"{r.median_step_ms:.1f}", f"{r.images_per_s:.2f}",
            f"{100 * r.loader_wait_fraction:.1f}", mem, f"{r.warmup_s:.1f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    out = ["\n".join(lines)]
    if results:
        r0 = results[0]
        notes = [f"Device: {r0.device}. Width-{r0.width} generator ({r0.arch} size); data: {r0.data}"]
        if r0.data != "synthetic-in-memory":
            notes[-1] += f" ({r0.num_workers} workers)"
        stage2 = [r for r in results if r.stage == 2]
        if stage2:
            notes[-1] += f"; stage-2 VGG19 weights: {stage2[0].vgg}"
        notes[-1] += "."
        out.append(" ".join(notes))
    by_stage = {r.stage: r for r in results}
    if 1 in by_stage and 2 in by_stage:
        s1, s2 = by_stage[1].images_per_s, by_stage[2].images_per_s
        e1, e2 = SCHEDULE_EPOCHS
        t1, t2 = e1 * EBB_TRAIN_IMAGES / s1, e2 * EBB_TRAIN_IMAGES / s2
        total = schedule_seconds(s1, s2)
        out.append(
            f"Schedule estimate (training steps only, no validation): stage 1 {e1} x {EBB_TRAIN_IMAGES:,} images / "
            f"{s1:.2f} img/s = {_hms(t1)}; stage 2 {e2} x {EBB_TRAIN_IMAGES:,} / {s2:.2f} img/s = {_hms(t2)}; "
            f"total {_hms(total)} ({total:.0f} s)."
        )
    full_size = all(r.crop == 1024 and r.width == 8 and r.arch == "paper" for r in results)
    checks = []
    for r in results:
        target = TARGET_IMAGES_PER_S[r.stage]
        checks.append(f"stage {r.stage} >= {target:.0f} img/s: {'met' if r.images_per_s >= target else 'NOT met'}")
    for r in results:
        checks.append(f"stage {r.stage} loader wait < 5 %: {'met' if r.loader_wait_fraction < 0.05 else 'NOT met'}")
    if 1 in by_stage and 2 in by_stage:
        ok = schedule_seconds(by_stage[1].images_per_s, by_stage[2].images_per_s) < TARGET_SCHEDULE_S
        checks.append(f"schedule < 3 h: {'met' if ok else 'NOT met'}")
    if full_size and results and "CPU" not in results[0].device:
        out.append("Targets (one H200, width 8, 1024x1024): " + "; ".join(checks) + ".")
    else:
        out.append("Targets apply to the width-8 generator at 1024x1024 on one H200; not checked at this size/device.")
    return "\n\n".join(out)


# ----------------------------------------------------------------------------- data loader alone


@dataclass
class LoaderResult:
    data: str
    files: str
    num_workers: int
    batch_size: int
    crop: int
    batches: int
    batches_per_s: float
    images_per_s: float
    images_per_s_per_worker: float
    h2d_ms_per_batch: float | None


def _describe_files(root: Path) -> str:
    from training.data import detect_layout  # noqa: PLC0415

    split = root / "train" if (root / "train" / "original").is_dir() else root
    layout = detect_layout(split)
    ids = layout.ids()
    if not ids:
        return "no files"
    img_path, _, _ = layout.files(ids[0])
    with Image.open(img_path) as im:
        w, h = im.size
    return f"{len(ids)} x {img_path.suffix.lstrip('.').upper()} {w}x{h}"


def run_loader(
    data: str | os.PathLike,
    *,
    crop: int,
    batch_size: int,
    num_workers: int,
    steps: int = 30,
    warmup: int = 5,
    seed: int = 0,
) -> LoaderResult:
    """Decoded batches/s of ``BokehDataModule``'s training loader, workers already started.

    The first ``warmup`` batches (worker start-up, first decodes) are not timed. Epochs repeat
    when the folder holds fewer than ``warmup + steps`` batches (persistent workers, as in
    training). With CUDA, also the time of copying one pinned batch to the GPU.
    """
    threads = torch.get_num_threads()
    # With num_workers=0 the main process decodes: give it one thread, as each worker has.
    torch.set_num_threads(1)
    with ExitStack() as stack:
        stack.callback(torch.set_num_threads, threads)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bokeh_loader_"))
        dm = make_datamodule(data, crop, batch_size, num_workers, Path(tmp), seed)
        loader = dm.train_dataloader()
        if len(loader) < 1:
            raise ValueError(f"--data {data}: fewer training samples than one batch of {batch_size}")
        it = iter(loader)
        h2d: list[float] = []

        def next_batch():
            nonlocal it
            try:
                return next(it)
            except StopIteration:
                it = iter(loader)
                return next(it)

        for _ in range(warmup):
            next_batch()
        t0 = time.perf_counter()
        for _ in range(steps):
            batch = next_batch()
        elapsed = time.perf_counter() - t0
        if torch.cuda.is_available():
            for _ in range(3):
                torch.cuda.synchronize()
                t = time.perf_counter()
                moved = {k: v.to("cuda", non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
                torch.cuda.synchronize()
                h2d.append(time.perf_counter() - t)
                del moved
        # Drop the iterator and the loader (and so its workers) before the temp folder goes; not
        # `del`, which would leave next_batch's closure reading an unbound name.
        it = loader = None
    ips = steps * batch_size / elapsed
    return LoaderResult(
        data=str(data),
        files=_describe_files(Path(data)),
        num_workers=num_workers,
        batch_size=batch_size,
        crop=crop,
        batches=steps,
        batches_per_s=steps / elapsed,
        images_per_s=ips,
        images_per_s_per_worker=ips / max(num_workers, 1),
        h2d_ms_per_batch=1000 * min(h2d) if h2d else None,
    )


def decode_breakdown(data: str | os.PathLike, crop: int, samples: int = 4) -> dict[str, float]:
    """Milliseconds per training sample of each part of the loader's work, in this process.

    One torch thread, like a DataLoader worker. Separates what a faster format or a cache would
    save (decoding) from what stays (crop and conversion to float).
    """
    from training.data import detect_layout, read_depth  # noqa: PLC0415

    root = Path(data)
    layout = detect_layout(root / "train" if (root / "train" / "original").is_dir() else root)
    ids = layout.ids()[:samples]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    parts = {"decode photo + ground truth": 0.0, "decode depth": 0.0, "crop + to float (3 tensors)": 0.0}
    try:
        for sid in ids:
            img_path, tgt_path, depth_path = layout.files(sid)
            t0 = time.perf_counter()
            images = []
            for path in (img_path, tgt_path):
                with Image.open(path) as im:
                    im.load()
                    images.append(im.convert("RGB"))
            t1 = time.perf_counter()
            h, w = images[0].size[1], images[0].size[0]
            depth = read_depth(depth_path, (h, w))
            t2 = time.perf_counter()
            box = (0, 0, min(crop, w), min(crop, h))
            for im in images:
                torch.from_numpy(np.asarray(im.crop(box), dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
            depth[:, : box[3], : box[2]].contiguous()
            t3 = time.perf_counter()
            parts["decode photo + ground truth"] += t1 - t0
            parts["decode depth"] += t2 - t1
            parts["crop + to float (3 tensors)"] += t3 - t2
    finally:
        torch.set_num_threads(threads)
    return {k: 1000 * v / len(ids) for k, v in parts.items()}


LOADER_COLUMNS = (
    "files", "workers", "batch", "crop", "batches", "batches/s", "images/s", "images/s per worker",
    "H2D copy (ms/batch)",
)  # fmt: skip


def loader_table(results: Sequence[LoaderResult]) -> str:
    lines = ["| " + " | ".join(LOADER_COLUMNS) + " |", "|" + "---|" * len(LOADER_COLUMNS)]
    for r in results:
        h2d = "n/a (CPU)" if r.h2d_ms_per_batch is None else f"{r.h2d_ms_per_batch:.1f}"
        cells = [
            r.files, str(r.num_workers), str(r.batch_size), str(r.crop), str(r.batches), f"{r.batches_per_s:.2f}",
            f"{r.images_per_s:.2f}", f"{r.images_per_s_per_worker:.2f}", h2d,
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    out = ["\n".join(lines)]
    with_workers = [r for r in results if r.num_workers > 0]
    if with_workers:
        # The row with the most workers: its per-worker rate already includes their contention.
        r = max(with_workers, key=lambda x: x.num_workers)
        need = {s: workers_needed(t, r.images_per_s_per_worker) for s, t in TARGET_IMAGES_PER_S.items()}
        out.append(
            f"Workers needed at {r.images_per_s_per_worker:.2f} images/s per worker (measured with {r.num_workers}; "
            f"assumes linear scaling up to the physical cores, 25 % headroom): stage 1 at "
            f"{TARGET_IMAGES_PER_S[1]:.0f} img/s -> {need[1]}, stage 2 at {TARGET_IMAGES_PER_S[2]:.0f} img/s -> {need[2]}."
        )
    return "\n\n".join(out)


# ----------------------------------------------------------------------------- fake EBB!


def _smooth_field(g: torch.Generator, channels: int, coarse: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    x = torch.rand(1, channels, *coarse, generator=g)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)[0]


def _fake_ebb_sample(index: int, size: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo uint8 HxWx3, bokeh uint8 HxWx3, disparity float HxW in [0, 1]) of one fake pair.

    Smooth colour fields at several scales plus a little sensor-like noise, so that a quality-95
    JPEG is about as large (and as slow to decode) as an EBB! photo, not a noise-sized file.
    """
    h, w = size
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    photo = (
        0.55 * _smooth_field(g, 3, (6, 9), size)
        + 0.30 * _smooth_field(g, 3, (64, 96), size)
        + 0.15 * _smooth_field(g, 3, (h // 6, w // 6), size)
        + 0.02 * torch.randn(3, h, w, generator=g)
    ).clamp(0, 1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    cy, cx = (torch.rand(2, generator=g) - 0.5).tolist()
    subject = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.15)  # a near blob, 1 = near
    disparity = (0.7 * subject + 0.3 * _smooth_field(g, 1, (3, 4), size)[0]).clamp(0, 1)
    # A cheap defocus stand-in: 8x box-downsample, bilinear back up.
    blurred = F.interpolate(F.avg_pool2d(photo[None], 8), size=size, mode="bilinear", align_corners=False)[0]
    bokeh = disparity * photo + (1 - disparity) * blurred
    to8 = lambda t: (t.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return to8(photo), to8(bokeh), disparity.numpy()


def _save_jpeg_atomic(arr: np.ndarray, path: Path, quality: int) -> None:
    atomic_save_image(path, Image.fromarray(arr), format="JPEG", quality=quality)


def make_fake_ebb(
    n: int, root: str | os.PathLike, size: tuple[int, int] = EBB_SIZE, quality: int = 95, seed: int = 0
) -> Path:
    """Write ``n`` fake EBB!-size pairs in the AIM 2020 layout, for loader benchmarks only.

    ``ROOT/Training/{original,bokeh}/<i>.jpg`` (``size`` = (H, W), default 1024x1536, JPEG
    quality ``quality``) and ``ROOT/Training/depth/<i>.png`` (16-bit disparity, as
    ``python -m training.depth`` writes for real EBB!). The pictures are not scenes; only their
    size and JPEG cost resemble EBB!'s.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from training.data import write_depth_png  # noqa: PLC0415

    if n < 2:
        raise ValueError(f"--make-fake-ebb: need at least 2 pairs, got {n}")
    root = Path(root)
    t = root / "Training"
    for sub in ("original", "bokeh", "depth"):
        (t / sub).mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small element-wise work: extra threads only spin on a shared CPU
    try:
        for i in tqdm(range(n), desc=f"fake EBB! -> {t}", leave=False):
            photo, bokeh, disparity = _fake_ebb_sample(i, size, seed)
            _save_jpeg_atomic(photo, t / "original" / f"{i}.jpg", quality)
            _save_jpeg_atomic(bokeh, t / "bokeh" / f"{i}.jpg", quality)
            write_depth_png(t / "depth" / f"{i}.png", disparity)
    finally:
        torch.set_num_threads(threads)
    return root


# ----------------------------------------------------------------------------- CLI


def _workers(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--num-workers {text!r}: expected an integer or a comma list") from e
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"--num-workers {text!r}: expected non-negative integers")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.benchmark",
        description="Throughput of BokehGAN's real training steps (both stages) and of the data loader.",
    )
    p.add_argument("--stage", choices=("1", "2", "both"), default="both")
    p.add_argument("--crop", type=int, default=1024, help="training crop side (paper: 1024)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--width", type=int, default=8, help="generator width (paper: 8)")
    p.add_argument(
        "--arch",
        choices=tuple(ARCHS),
        default="paper",
        help="network sizes: the paper's, or 'tiny' (1 NAFBlock per level, 8-channel critics) for CPU smoke runs",
    )
    p.add_argument(
        "--precision",
        default="auto",
        help="Lightning precision (bf16-mixed, 32-true, ...); auto: bf16-mixed on a CUDA GPU, else 32-true",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="torch.compile the generator and the critics' scoring calls",
    )
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--fused-adam", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument(
        "--cudnn-benchmark",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cudnn.benchmark on CUDA (fixed crop size: autotune once)",
    )
    p.add_argument("--steps", type=int, default=30, help="measured batches per stage")
    p.add_argument("--warmup", type=int, default=10, help="untimed batches first (compile, autotune, workers)")
    p.add_argument(
        "--data",
        default="synthetic-in-memory",
        help="'synthetic-in-memory' (pinned random batches, no decoding) or a data folder",
    )
    p.add_argument(
        "--num-workers", type=_workers, default=[2], help="DataLoader workers; --loader-only takes a comma list (2,4,8)"
    )
    p.add_argument(
        "--vgg",
        choices=("auto", "imagenet", "random", "off"),
        default="auto",
        help="stage 2's VGG19 loss: the ImageNet file if found, else random weights (same cost)",
    )
    p.add_argument("--accelerator", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument(
        "--cpu-threads",
        type=int,
        default=1,
        help="torch threads on a CPU run (default 1: spare threads spin on a shared CPU)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--lens", action="store_true", help="the lens-conditioned generator (needs --data DIR)")
    p.add_argument("--cache", action="store_true", help="BokehDataModule's in-memory cache of decoded samples")
    p.add_argument(
        "--max-train-samples",
        type=int,
        default=None,
        help="use the first N training pairs only: with --cache and N <= warm-up images, the measured "
        "batches read the cache, as every epoch after the first of a real run does",
    )
    p.add_argument(
        "--compare-cpu-recipe",
        action="store_true",
        help="run each stage twice, eager fp32 and training/configs/cpu_fast.yaml (bf16 autocast, "
        "channels_last, torch.compile, cache), and print the speed-up",
    )
    p.add_argument("--loader-only", action="store_true", help="time BokehDataModule's training loader alone")
    p.add_argument(
        "--make-fake-ebb",
        nargs=2,
        metavar=("N", "DIR"),
        help="write N fake EBB!-size JPEG pairs (1536x1024, quality 95) into DIR first",
    )
    return p


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    command = "python -m training.benchmark " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    # Lightning's start-up chatter (GPU available, TPU ...) and the "few workers" hint for the
    # in-memory loader would bury the table.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # Expected here: no validation loop on purpose, and the frozen VGG19 stays in eval mode.
    # BokehGAN's channels_last hook is on_after_batch_transfer; Lightning notes that it is used.
    for message in (
        ".*no `val_dataloader`.*",
        ".*module\\(s\\) in eval mode.*",
        ".*LeafSpec.*",
        ".*overridden `on_after_batch_transfer`.*",
    ):
        warnings.filterwarnings("ignore", message=message)

    if args.precision == "auto":
        cuda = args.accelerator != "cpu" and torch.cuda.is_available()
        args.precision = "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true"
    payload: dict[str, Any] = {"command": command}
    if args.make_fake_ebb:
        n_text, fake_dir = args.make_fake_ebb
        make_fake_ebb(int(n_text), fake_dir, seed=args.seed)
        print(f"wrote {n_text} fake EBB! pairs to {fake_dir}")
        payload["fake_ebb"] = fake_dir
        if not args.loader_only:
            return payload
        if args.data == "synthetic-in-memory":
            args.data = fake_dir

    if args.loader_only:
        if args.data == "synthetic-in-memory":
            raise SystemExit("--loader-only needs --data DIR (a data folder) or --make-fake-ebb N DIR")
        loader_results = [
            run_loader(
                args.data,
                crop=args.crop,
                batch_size=args.batch_size,
                num_workers=w,
                steps=args.steps,
                warmup=args.warmup,
                seed=args.seed,
            )
            for w in args.num_workers
        ]
        breakdown = decode_breakdown(args.data, args.crop)
        parts = "; ".join(f"{k} {v:.1f}" for k, v in breakdown.items())
        print(
            f"`{command}`\n\n{loader_table(loader_results)}\n\n"
            f"Per sample, one thread (ms): {parts}; total {sum(breakdown.values()):.1f}."
        )
        payload["loader"] = [asdict(r) for r in loader_results]
        payload["decode_breakdown_ms"] = breakdown
    else:
        if len(args.num_workers) != 1:
            raise SystemExit("--num-workers: one value for a training benchmark (lists are for --loader-only)")
        stages = (1, 2) if args.stage == "both" else (int(args.stage),)
        # (precision, compile, channels_last, cache) of each run; the recipe is read from its YAML
        # so that the table measures exactly what the config trains with.
        runs = [(args.precision, args.compile, args.channels_last, args.cache)]
        if args.compare_cpu_recipe:
            recipe = yaml.safe_load((CONFIG_DIR / "cpu_fast.yaml").read_text())
            runs = [
                ("32-true", False, False, args.cache),
                (
                    recipe["trainer"]["precision"],
                    recipe["model"]["compile"],
                    recipe["model"]["channels_last"],
                    recipe["data"]["cache"],
                ),
            ]
        results = []
        with tempfile.TemporaryDirectory(prefix="bokeh_bench_") as tmp:
            for stage in stages:
                for precision, compiled, channels_last, cache in runs:
                    results.append(run_stage(
                        stage, crop=args.crop, batch_size=args.batch_size, width=args.width, arch=args.arch,
                        precision=precision,
                        compile=compiled, channels_last=channels_last, fused_adam=args.fused_adam,
                        steps=args.steps, warmup=args.warmup, data=args.data, num_workers=args.num_workers[0],
                        vgg=args.vgg, accelerator=args.accelerator, cudnn_benchmark=args.cudnn_benchmark,
                        cpu_threads=args.cpu_threads, seed=args.seed, tmp=Path(tmp), lens=args.lens, cache=cache,
                        max_train_samples=args.max_train_samples,
                    ))  # fmt: skip
        print(f"`{command}`\n\n{stage_table(results)}")
        if args.compare_cpu_recipe:
            for base, fast in zip(results[::2], results[1::2]):
                print(
                    f"\nstage {base.stage}: cpu_fast.yaml / eager fp32 = "
                    f"{fast.images_per_s / base.images_per_s:.2f}x images/s "
                    f"(loader wait {100 * fast.loader_wait_fraction:.1f} %)"
                )
        payload["stages"] = [asdict(r) for r in results]
        by_stage = {r.stage: r.images_per_s for r in results[-len(stages) :]}
        if len(by_stage) == 2:
            payload["schedule_s"] = schedule_seconds(by_stage[1], by_stage[2])
    if args.json:
        _write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
