"""``python -m training.synth``: the command line of the synthetic data generator.

python -m training.synth --out DIR --train N --val M --size HxW --seed S [--workers W]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common.sizes import parse_size

from .dataset import generate

# the first paragraph of the package docstring, which the command's --help has always shown
DESCRIPTION = "Synthetic bokeh pairs: procedural scenes rendered with the ground-truth renderer."


def parse_data_size(text: str) -> tuple[int, int]:
    return parse_size(text, max_mpx=None)  # data may be made larger than a model input


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.synth", description=DESCRIPTION)
    p.add_argument("--out", type=Path, required=True, help="dataset folder (created; re-running resumes)")
    p.add_argument("--train", type=int, required=True, help="number of training pairs")
    p.add_argument("--val", type=int, required=True, help="number of validation pairs")
    p.add_argument("--size", type=parse_data_size, default=(512, 768), help="HxW, multiples of 16 (default 512x768)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1; use 2 on a 2-core machine)")
    p.add_argument(
        "--refocus-prob",
        type=float,
        default=0.0,
        help="share of scenes focused at a random disparity instead of the subject (default 0; "
        "0.35 for the lens-conditioned model)",
    )
    p.add_argument(
        "--dof-max",
        type=float,
        default=0.0,
        help="half of the scenes get a sharp band (LensParams.dof) in [0, DOF_MAX] (default 0; 0.2 for "
        "the lens-conditioned model)",
    )
    args = p.parse_args(argv)
    if not 0.0 <= args.dof_max <= 0.5:
        p.error("--dof-max must lie in [0, 0.5]")
    if not 0.0 <= args.refocus_prob <= 1.0:
        p.error("--refocus-prob must lie in [0, 1]")
    if args.train < 0 or args.val < 0:
        p.error("--train and --val must be >= 0")
    if args.workers < 1:
        p.error("--workers must be >= 1")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        p.error(f"--out {args.out}: is a file, not a folder for the data set")
    # one thread per process: on a shared 2-core machine a second OpenMP thread made generation 6x
    # slower (measured); use --workers 2 to use both cores
    torch.set_num_threads(1)
    stats = generate(
        args.out,
        args.train,
        args.val,
        args.size,
        args.seed,
        args.workers,
        refocus_prob=args.refocus_prob,
        dof_max=args.dof_max,
    )
    rate = stats["pairs_per_minute"]
    print(
        f"{stats['generated']} pairs generated, {stats['skipped']} already present"
        + (f", {rate:.1f} pairs/min" if rate else ""),
        file=sys.stderr,
    )
    return 0
