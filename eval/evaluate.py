"""Evaluate bokeh models the way the AIM bokeh challenges score them (Bokeh-Loss GAN, Lee et al.,
AIM 2022, Table 1: PSNR, SSIM, LPIPS on a held-out split at full resolution), plus an edge-region
PSNR and a picture grid.

``python -m eval --data DIR --split val|val200|val294 [--checkpoint CKPT] [--onnx FILE]
[--tflite FILE ...] [--renderer scatter --renderer layered ...] [--identity] --out runs/eval/NAME``

Any mix of models is run on every image of the split:

* a Lightning ``.ckpt``, bare generator state dict or ``model.safetensors``
  (``training.checkpoint.load_generator``);
* an ONNX file or TFLite file of any precision (``export.runtime.load_runner``);
* a classical renderer (``training.renderers``: scatter, layered, blend) with the image's lens
  parameters from ``<split>/lens/<id>.json`` (synthetic data) or, without one, the project's one
  auto-focus ``training.renderers.lens.auto_focus``; a lens-conditioned network gets the same lens;
* the identity baseline (output = input): the score a model must beat to have learnt anything.

Images are evaluated at full resolution, centre-cropped to multiples of 16 as the generator needs
(``training.data.BokehPairs`` with no crop). Metrics are in ``common/metrics.py`` and
``eval/lpips.py``. Outputs in ``--out`` (each written atomically):

* ``per_image.csv``: model, id, psnr, ssim, lpips, edge_psnr, time_s (one row per model × image);
* ``summary.json``: per-model means, the data and metric definitions, LPIPS provenance;
* ``summary.md``: the table ``model | PSNR | SSIM | LPIPS | edge PSNR | images | time/img``;
* ``grid.png``: columns input | depth | each model | ground truth for a few images, each followed
  by a row of zoomed crops around the densest depth edges, where renderers fail;
* ``crops/<id>/<column>.png`` with ``--crops``: the full-resolution edge crop of every column for
  every image.

Python API::

    runners = load_runners(checkpoint="last.ckpt", tflite=["bokeh_fp16.tflite"],
                           renderers=["scatter"], identity=True)  # eval/runners.py
    summary = evaluate(runners, "data/synthetic", "val", "runs/eval/demo")
    print(format_table(summary))  # eval/report.py

A model is an ``export.runtime.Runner`` (``runner(image, depth, lens) -> output`` on numpy
arrays, image (1, 3, H, W) and depth (1, 1, H, W) float32 in [0, 1], output (1, 3, H, W)), or
any callable ``model(image, depth)``. One with ``lens_input = True`` is also given the image's
``LensParams``. The picture grid is drawn by ``eval/grid.py``; the files' formats are in
``eval/report.py``.
Time per image is the median wall time of the model call on this machine (not a phone
measurement; see ``eval/benchmark.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from common.io import atomic_save_image, atomic_write_text
from common.metrics import depth_edge_band, edge_psnr, psnr, ssim
from eval.grid import GridRow, depth_view, edge_crop_box, render_grid, to_uint8, write_crops
from eval.lpips import LPIPS, load_lpips
from eval.report import format_report, format_table, jsonable, summarise, write_csv
from eval.runners import load_runners
from training.data import BadSampleError, SplitData, resolve_split
from training.renderers.lens import LensParams, auto_focus

__all__ = ["evaluate", "load_runners", "resolve_split", "format_table", "main"]


def _load_lens(split: SplitData, sample_id: str, depth: torch.Tensor) -> Any:
    """The image's lens parameters from ``<split>/lens/<id>.json`` (synthetic data), else the
    project's auto-focus on its depth map (``training.renderers.lens.auto_focus``)."""

    path = split.layout.lens_file(sample_id)
    if not path.is_file():
        return auto_focus(depth)
    return LensParams.load(path)  # raises FileNotFoundError / ValueError naming the file


def _as_output(out: Any, name: str, sample_id: str, shape: tuple[int, ...]) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().float().numpy()
    out = np.asarray(out, dtype=np.float32)
    if out.shape != shape:
        raise ValueError(f"model {name!r} returned shape {out.shape} for image {sample_id}, expected {shape}")
    return torch.from_numpy(out)


def _call(model: Any, image: np.ndarray, depth: np.ndarray, lens: Any) -> Any:
    if getattr(model, "lens_input", False):
        return model(image, depth, lens)
    return model(image, depth)


def evaluate(
    models: Mapping[str, Callable[..., Any]],
    data_dir: str | os.PathLike,
    split: str = "val",
    out_dir: str | os.PathLike = "runs/eval/default",
    max_images: int | None = None,
    grid_rows: int = 3,
    crops: bool = False,
    lpips_model: LPIPS | None = None,
    lpips_reason: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every model on every image of ``split``, write the CSV/JSON/Markdown/grid files into
    ``out_dir`` and return the summary dict (also ``summary.json``).

    ``summary["models"][name]`` holds ``psnr``, ``ssim``, ``lpips`` (None when unavailable),
    ``edge_psnr``, ``images``, ``edge_images``, ``time_per_image_s``, ``source``.
    LPIPS: pass a loaded ``lpips_model``, else ``load_lpips()`` looks for the weight files; when
    they are missing, ``summary["lpips"]["reason"]`` says which.
    """
    if not models:
        raise ValueError("no models to evaluate")
    out = Path(out_dir)
    if max_images is not None and max_images <= 0:
        raise ValueError(f"max_images must be positive, got {max_images}")
    data = resolve_split(data_dir, split)
    ids = data.ids[:max_images] if max_images is not None else data.ids
    data.ids = ids
    ds = data.dataset()
    if lpips_model is None and lpips_reason is None:
        lpips_model, lpips_reason = load_lpips()
    elif lpips_model is None and not lpips_reason:
        lpips_reason = "LPIPS not requested"

    names = list(models)
    grid_idx = (
        set(np.unique(np.linspace(0, len(ids) - 1, min(grid_rows, len(ids))).round().astype(int)).tolist())
        if grid_rows > 0
        else set()
    )
    rows: list[dict[str, Any]] = []
    per_model: dict[str, dict[str, list[float]]] = {
        n: {"psnr": [], "ssim": [], "lpips": [], "edge_psnr": [], "time": []} for n in names
    }
    grid: list[GridRow] = []
    sizes: set[tuple[int, int]] = set()

    bar = tqdm(total=len(ids) * len(names), desc=f"eval {split}", unit="run", disable=not progress, file=sys.stderr)
    try:
        for i, sample_id in enumerate(ids):
            sample = ds[i]
            image, depth, target = sample["image"][None], sample["depth"][None], sample["target"][None]
            sizes.add(tuple(image.shape[-2:]))
            image_np, depth_np = image.numpy(), depth.numpy()
            band = depth_edge_band(depth)
            target_feats = lpips_model.features(target) if lpips_model is not None else None
            lens = (
                _load_lens(data, sample_id, depth)
                if any(getattr(m, "lens_input", False) for m in models.values())
                else None
            )
            box = edge_crop_box(depth[0])
            g = None
            if i in grid_idx:
                g = GridRow(sample_id, box)
                g.add(to_uint8(image[0]), mark_box=True)  # the red box shows where the crop is
                g.add(depth_view(depth[0], band[0]))
            if crops:
                write_crops(
                    out / "crops" / sample_id,
                    {"input": image[0], "depth": depth[0], "ground_truth": target[0]},
                    band,
                    box,
                )

            for name in names:
                bar.set_postfix_str(f"{name} id {sample_id}")
                t0 = time.perf_counter()
                try:
                    raw = _call(models[name], image_np, depth_np, lens)
                except Exception as e:
                    raise RuntimeError(f"model {name!r} failed on image {sample_id} ({type(e).__name__}: {e})") from e
                dt = time.perf_counter() - t0
                pred = _as_output(raw, name, sample_id, tuple(image.shape))
                p = float(psnr(pred, target, reduction="none")[0])
                s = float(ssim(pred, target, reduction="none")[0])
                lp = (
                    float(lpips_model.distance(lpips_model.features(pred), target_feats)[0])
                    if lpips_model is not None
                    else None
                )
                e = float(edge_psnr(pred, target, band)[0])
                rows.append(
                    {"model": name, "id": sample_id, "psnr": p, "ssim": s, "lpips": lp, "edge_psnr": e, "time_s": dt}
                )
                acc = per_model[name]
                acc["psnr"].append(p)
                acc["ssim"].append(s)
                acc["time"].append(dt)
                if lp is not None:
                    acc["lpips"].append(lp)
                if not math.isnan(e):  # NaN: no depth edge in this image
                    acc["edge_psnr"].append(e)
                if g is not None:
                    g.add(to_uint8(pred[0]), label=f"{p:.2f} dB")
                if crops:
                    write_crops(out / "crops" / sample_id, {name: pred[0]}, band, box)
                bar.update(1)
            if g is not None:
                g.add(to_uint8(target[0]))
                grid.append(g)
    finally:
        bar.close()

    summary = summarise(names, models, per_model, data, data_dir, ids, sizes, lpips_model, lpips_reason)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "per_image.csv", rows)
    atomic_write_text(out / "summary.json", json.dumps(jsonable(summary), indent=2) + "\n")
    atomic_write_text(out / "summary.md", format_report(summary))
    if grid:
        atomic_save_image(out / "grid.png", render_grid(grid, ["input", "depth", *names, "ground truth"]))
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m eval",
        description="Evaluate bokeh models (PSNR, SSIM, LPIPS, edge PSNR) on a dataset split at full resolution.",
    )
    p.add_argument("--data", required=True, help="dataset root (synthetic root with val/, or EBB! root)")
    p.add_argument("--split", default="val", help="val | val200 | val294 | name of a split folder under --data")
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="[NAME=]CKPT",
        help="Lightning .ckpt, generator state dict or model.safetensors (repeatable)",
    )
    p.add_argument("--onnx", action="append", default=[], metavar="[NAME=]FILE", help="ONNX model (repeatable)")
    p.add_argument(
        "--tflite", action="append", nargs="+", default=[], metavar="[NAME=]FILE", help="TFLite model(s), any precision"
    )
    p.add_argument(
        "--renderer",
        action="append",
        default=[],
        choices=("scatter", "layered", "blend"),
        help="classical renderer (repeatable)",
    )
    p.add_argument("--identity", action="store_true", help="add the identity baseline (output = input)")
    p.add_argument("--out", required=True, help="output folder, e.g. runs/eval/NAME")
    p.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--grid-rows", type=int, default=3, help="images shown in grid.png (default 3)")
    p.add_argument(
        "--crops", action="store_true", help="also write full-resolution edge crops of every image to OUT/crops/<id>/"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="threads for PyTorch / ONNX Runtime / TFLite (default: torch's)"
    )
    p.add_argument(
        "--alexnet-weights",
        default=None,
        help="alexnet-owt-7be5be79.pth (default: $BOKEH_ALEXNET_WEIGHTS, torch hub cache, weights/)",
    )
    p.add_argument(
        "--lpips-weights",
        default=None,
        help="lpips v0.1 alex.pth (default: $BOKEH_LPIPS_WEIGHTS, lpips package, weights/)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tflite = [f for group in args.tflite for f in group]
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"error: --out {args.out}: is a file, not a folder for the results", file=sys.stderr)
        return 2
    try:
        models = load_runners(args.checkpoint, args.onnx, tflite, args.renderer, args.identity, args.threads)
        if not models:
            raise ValueError("nothing to evaluate: give --checkpoint, --onnx, --tflite, --renderer and/or --identity")
        lp, reason = load_lpips(args.alexnet_weights, args.lpips_weights)
        summary = evaluate(
            models,
            args.data,
            args.split,
            args.out,
            args.max_images,
            args.grid_rows,
            args.crops,
            lp,
            reason,
            not args.no_progress,
        )
    except (FileNotFoundError, ValueError, RuntimeError, BadSampleError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(summary), end="")
    if not summary["lpips"]["available"]:
        print(f"LPIPS unavailable: {summary['lpips']['reason']}", file=sys.stderr)
    print(f"wrote {Path(args.out) / 'summary.md'}", file=sys.stderr)
    return 0
