"""The data loader alone: decoded batches/s of the real training loader, and where a sample's time goes.

``run_loader`` times ``BokehDataModule``'s training loader (``training.data``, as training builds
it) for several worker counts; ``decode_breakdown`` splits one sample's cost between the loader's
own readers and its crop. ``loader_table`` prints them with the workers a target needs.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from training.benchmark.inputs import make_datamodule
from training.benchmark.schedule import TARGET_IMAGES_PER_S, workers_needed
from training.data import FolderLayout, read_pair, read_pair_depth

__all__ = ["LoaderResult", "describe_files", "run_loader", "decode_breakdown", "loader_table"]


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


def describe_files(layout: FolderLayout) -> str:
    """``64 x JPG 1536x1024``: how many photos the training folder holds, their format and size."""
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
        files = describe_files(dm.train_set.layout)
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
        files=files,
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

    One torch thread, like a DataLoader worker. The loader is the training one (``BokehPairs`` from
    ``make_datamodule``): its pair and depth readers are timed on their own, then a second read of
    the same item from its cache, which leaves only the crop, flip and conversion to float.
    Separates what a faster format or a cache would save (decoding) from what stays.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    parts = {"decode photo + ground truth": 0.0, "decode depth": 0.0, "crop + to float (3 tensors)": 0.0}
    try:
        with tempfile.TemporaryDirectory(prefix="bokeh_loader_") as tmp:
            dm = make_datamodule(data, crop, batch_size=1, num_workers=0, tmp=Path(tmp), cache=True)
            dm.setup("fit")
            pairs = dm.train_set
            count = min(samples, len(pairs))
            for index in range(count):
                img_path, tgt_path, depth_path = pairs.layout.files(pairs.ids[index])
                t0 = time.perf_counter()
                photo, _ = read_pair(img_path, tgt_path)
                t1 = time.perf_counter()
                read_pair_depth(depth_path, (photo.height, photo.width))
                t2 = time.perf_counter()
                pairs[index]  # decodes once more, into the cache (not timed)
                t3 = time.perf_counter()
                pairs[index]  # from the cache: what every sample costs besides decoding
                t4 = time.perf_counter()
                parts["decode photo + ground truth"] += t1 - t0
                parts["decode depth"] += t2 - t1
                parts["crop + to float (3 tensors)"] += t4 - t3
    finally:
        torch.set_num_threads(threads)
    return {k: 1000 * v / count for k, v in parts.items()}


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
