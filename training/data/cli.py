"""``python -m training.data``: check a data set, or (re)write the Val200 id list::

    python -m training.data --check ROOT [--crop-size 1024]   # every bad file of ROOT; exit 1 if any
    python -m training.data --write-val200 training/splits/val200.txt

``--check`` is a gate for scripts: its exit status is 1 when any sample is bad.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tqdm import tqdm

from training.data.datamodule import BokehDataModule
from training.data.io import BadSampleError
from training.data.splits import write_val200

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """0 = every sample loads; 1 = ``--check`` found bad samples (a gate for scripts); 2 = usage or
    a data set that cannot be opened at all."""
    # prog: run as a package, argparse would name the program "__main__.py"
    p = argparse.ArgumentParser(prog="python -m training.data", description="Dataset utilities.")
    p.add_argument("--write-val200", metavar="PATH", help="(re)write the seeded Val200 id list")
    p.add_argument(
        "--check",
        metavar="ROOT",
        help="load every sample of ROOT once and report bad files; exit status 1 if any is bad",
    )
    p.add_argument(
        "--crop-size",
        type=int,
        default=1024,
        help="the training crop the check loads with (default 1024, the paper's): a smaller image is bad",
    )
    a = p.parse_args(argv)
    if not (a.write_val200 or a.check):
        p.print_help(sys.stderr)
        return 2
    if a.write_val200:
        write_val200(a.write_val200)
    if not a.check:
        return 0
    try:
        dm = BokehDataModule(a.check, crop_size=a.crop_size, num_workers=0)
        dm.setup()
    except (FileNotFoundError, ValueError, BadSampleError) as e:
        print(f"--check {a.check}: {e}", file=sys.stderr)
        return 2
    bad = 0
    for ds in (dm.train_set, dm.val_set):
        if ds is None:
            continue
        for i in tqdm(range(len(ds)), desc=str(ds.layout.original)):
            try:
                ds[i]
            except BadSampleError as e:
                bad += 1
                tqdm.write(str(e))
    print(f"{bad} bad samples")
    return 1 if bad else 0
