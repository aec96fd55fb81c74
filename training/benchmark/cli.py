"""``python -m training.benchmark``: the command line of the throughput and loader benchmarks.

The commands and what they measure are in ``training/benchmark/__init__.py`` and
``docs/gpu_training.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml

from common.io import atomic_write_text
from training.benchmark.fake_ebb import make_fake_ebb
from training.benchmark.loader import decode_breakdown, loader_table, run_loader
from training.benchmark.schedule import schedule_seconds
from training.benchmark.stages import ARCHS, CONFIG_DIR, run_stage, stage_table

__all__ = ["build_parser", "main"]


def _workers(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--num-workers {text!r}: expected an integer or a comma list") from e
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"--num-workers {text!r}: expected non-negative integers")
    return values


# The training-speed switches a run can turn on or off: (flag, default, what it does).
SPEED_LEVERS = (
    ("--compile", False, "torch.compile the generator and the critics' scoring calls"),
    ("--channels-last", False, "channels_last memory format for the networks and batches"),
    ("--fused-adam", False, "the fused AdamW kernel (CUDA)"),
    ("--cudnn-benchmark", True, "cudnn.benchmark on CUDA (fixed crop size: autotune once)"),
)


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
    for flag, default, what in SPEED_LEVERS:
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=what)
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
