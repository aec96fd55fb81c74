"""The data set on disk: the EBB! layout the data loader reads, written atomically and resumably.

    DIR/<split>/original/<i>.png   all-in-focus photo, 8-bit RGB
    DIR/<split>/bokeh/<i>.png      ground truth, 8-bit RGB
    DIR/<split>/depth/<i>.png      16-bit grayscale, normalised disparity * 65535 (bright = near)
    DIR/<split>/lens/<i>.json      the LensParams used (plus scene metadata under "meta")
    DIR/dataset.json               the generator's arguments

Scene i of a split depends only on (seed, split, i). Files are written atomically and a scene
counts as done only when all four files exist, so an interrupted run can be re-run: it redoes the
incomplete scenes and skips the rest.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from common.io import atomic_write_bytes

from .pair import SPLITS, Pair, make_pair

KINDS = ("original", "bokeh", "depth", "lens")
SUFFIX = {"original": ".png", "bokeh": ".png", "depth": ".png", "lens": ".json"}
FORMAT_VERSION = 1


def scene_paths(out: Path, split: str, index: int) -> dict[str, Path]:
    return {k: out / split / k / f"{index}{SUFFIX[k]}" for k in KINDS}


def scene_complete(out: Path, split: str, index: int) -> bool:
    return all(p.is_file() and p.stat().st_size > 0 for p in scene_paths(out, split, index).values())


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_pair(out: Path, split: str, index: int, pair: Pair) -> None:
    """Write the four files atomically; the lens JSON goes last, but completeness is judged on all
    four, so a scene interrupted between files is redone (identically) on the next run."""
    paths = scene_paths(out, split, index)
    atomic_write_bytes(paths["original"], _png_bytes(pair.original))
    atomic_write_bytes(paths["depth"], _png_bytes(pair.depth))
    atomic_write_bytes(paths["bokeh"], _png_bytes(pair.bokeh))
    pair.lens.save(paths["lens"], meta=pair.meta)


def _work(job: tuple) -> tuple[str, int, float]:
    out, split, index, seed, H, W, refocus_prob, dof_max = job
    t = time.perf_counter()
    write_pair(Path(out), split, index, make_pair(seed, split, index, H, W, refocus_prob=refocus_prob, dof_max=dof_max))
    return split, index, time.perf_counter() - t


def _init_worker() -> None:
    torch.set_num_threads(1)  # one process per core: threads would only fight each other


def _clean_temp_files(out: Path) -> None:
    """Remove temp files left by an interrupted run: ``.<file>.tmp-<host>-<pid>`` (``common.io``), and
    ``.<file>.<random>.tmp`` from folders written before it."""
    for split in SPLITS:
        for kind in KINDS:
            folder = out / split / kind
            if folder.is_dir():
                for p in [*folder.glob(".*.tmp"), *folder.glob(".*.tmp-*")]:
                    try:
                        p.unlink()
                    except OSError:
                        pass


def generate(
    out: Path,
    n_train: int,
    n_val: int,
    size: tuple[int, int],
    seed: int,
    workers: int = 1,
    progress: bool = True,
    refocus_prob: float = 0.0,
    dof_max: float = 0.0,
) -> dict:
    """Generate (or complete) a dataset; returns counts of generated and skipped scenes."""
    H, W = size
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "dataset.json"
    config = {
        "format_version": FORMAT_VERSION,
        "generator": "training.synth",
        "size": [H, W],
        "seed": seed,
        "train": n_train,
        "val": n_val,
        "refocus_prob": refocus_prob,
        "dof_max": dof_max,
        "layout": "<split>/{original,bokeh,depth}/<i>.png, <split>/lens/<i>.json; depth = disparity * 65535",
    }
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"{meta_path}: unreadable ({exc}); remove it or choose another --out") from None
        if (
            old.get("size") != [H, W]
            or old.get("seed") != seed
            or old.get("format_version") != FORMAT_VERSION
            or old.get("refocus_prob", 0.0) != refocus_prob
            or old.get("dof_max", 0.0) != dof_max
        ):
            raise SystemExit(
                f"{meta_path}: this folder holds a dataset made with size {old.get('size')}, seed "
                f"{old.get('seed')}, refocus_prob {old.get('refocus_prob', 0.0)} and dof_max "
                f"{old.get('dof_max', 0.0)}; refusing to mix it with size {[H, W]}, seed {seed}, "
                f"refocus_prob {refocus_prob} and dof_max {dof_max}. "
                f"Choose another --out or delete the folder."
            )
    atomic_write_bytes(meta_path, (json.dumps(config, indent=2) + "\n").encode())
    _clean_temp_files(out)
    for split in SPLITS:
        for kind in KINDS:
            (out / split / kind).mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(out), split, i, seed, H, W, refocus_prob, dof_max)
        for split, n in (("val", n_val), ("train", n_train))
        for i in range(n)
    ]
    todo = [j for j in jobs if not scene_complete(out, j[1], j[2])]
    skipped = len(jobs) - len(todo)
    bar = tqdm(total=len(jobs), initial=skipped, desc=f"synth {H}x{W}", unit="pair", disable=not progress)
    t0 = time.perf_counter()
    try:
        if workers <= 1:
            for job in todo:
                _work(job)
                bar.update(1)
        else:
            ctx = mp.get_context("spawn")  # no fork after torch has started its thread pools
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for _ in pool.imap_unordered(_work, todo, chunksize=1):
                    bar.update(1)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    return {
        "generated": len(todo),
        "skipped": skipped,
        "seconds": elapsed,
        "pairs_per_minute": (60.0 * len(todo) / elapsed) if todo and elapsed > 0 else None,
    }
