"""The training-throughput run of one stage and its Markdown table.

``run_stage`` trains ``training.module.BokehGAN`` for ``warmup + steps`` real batches through a
Lightning ``Trainer`` exactly as ``python -m training fit`` does (same module, same stage YAML loss
weights, same optimisers) and times them with ``StepTimer``; ``stage_table`` turns the results
into the table, the schedule estimate and the target checks.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from training.benchmark.inputs import InMemoryDataModule, make_datamodule
from training.benchmark.schedule import (
    EBB_TRAIN_IMAGES,
    SCHEDULE_EPOCHS,
    TARGET_IMAGES_PER_S,
    TARGET_SCHEDULE_S,
    hms,
    schedule_seconds,
)
from training.benchmark.timer import StepTimer
from training.losses.vgg import VGG19Features, find_vgg19_weights
from training.module import BokehGAN

__all__ = [
    "CONFIG_DIR",
    "ARCHS",
    "StageResult",
    "stage_model_kwargs",
    "applied_levers",
    "resolve_vgg",
    "run_stage",
    "stage_table",
]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # training/configs/
LEVERS = ("channels_last", "compile", "fused_adam")
# Network sizes: the paper's (36 NAFBlocks, §3.1; PatchGANs with pix2pix's 64 base channels), or
# "tiny" for CPU smoke runs (one NAFBlock per level, 8-channel critics): on a CPU each of the
# paper generator's ~235 small convolutions costs milliseconds of fixed overhead, and the critics'
# double backward dominates stage 2.
ARCHS = {
    "paper": {"enc_blocks": (2, 2, 2, 20), "middle_blocks": 2, "dec_blocks": (2, 2, 2, 2), "disc_base_channels": 64},
    "tiny": {"enc_blocks": (1, 1, 1, 1), "middle_blocks": 1, "dec_blocks": (1, 1, 1, 1), "disc_base_channels": 8},
}


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
    callbacks: Sequence[Callback] = (),
) -> StageResult:
    """Run ``warmup + steps`` real training batches of one stage and time them.

    ``cpu_threads``: torch threads for a CPU run. One by default: on a shared CPU, OpenMP threads
    that spin-wait for busy cores made a smoke step ~60x slower with 2 threads than with 1.
    ``callbacks``: more Lightning callbacks for the same trainer, after the timer (a test looks
    inside the timed batches with one).
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    if crop % 16:
        raise ValueError(f"--crop {crop}: must be a multiple of 16 (the generator downsamples 4x by 2)")
    if stage == 2 and crop < 64:
        raise ValueError(f"--crop {crop}: stage 2's depth-5 PatchGAN needs crops of at least 64")
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
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
            callbacks=[timer, *callbacks],
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
            f"{s1:.2f} img/s = {hms(t1)}; stage 2 {e2} x {EBB_TRAIN_IMAGES:,} / {s2:.2f} img/s = {hms(t2)}; "
            f"total {hms(total)} ({total:.0f} s)."
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
