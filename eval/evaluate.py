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

Python API (used by ``eval/demo.py``)::

    models = make_model_callables(checkpoint="last.ckpt", tflite=["bokeh_fp16.tflite"],
                                  renderers=["scatter"], identity=True)
    summary = evaluate(models, "data/synthetic", "val", "runs/eval/demo")
    print(format_table(summary))

A model is any callable ``model(image, depth) -> output`` on numpy arrays, image (1, 3, H, W) and
depth (1, 1, H, W) float32 in [0, 1], output (1, 3, H, W) (numpy or torch). A callable with
``needs_lens = True`` is called ``model(image, depth, lens)`` with the image's lens parameters.
Time per image is the median wall time of the model call on this machine (not a phone
measurement; see ``eval/benchmark.py``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from common.hashing import file_sha256
from common.io import atomic_save_image, atomic_write_text
from common.metrics import EDGE_THRESHOLD, SSIM_K1, SSIM_K2, depth_edge_band, edge_psnr, psnr, ssim
from eval.lpips import LPIPS, load_lpips
from export.runtime import load_runner
from training.checkpoint import load_generator
from training.data import BadSampleError, SplitData, resolve_split
from training.renderers import get_renderer
from training.renderers.lens import LensParams, auto_focus

__all__ = [
    "evaluate",
    "make_model_callables",
    "identity_model",
    "checkpoint_model",
    "runtime_model",
    "renderer_model",
    "resolve_split",
    "format_table",
    "main",
]

CSV_FIELDS = ("model", "id", "psnr", "ssim", "lpips", "edge_psnr", "time_s")
CELL_WIDTH = 256  # grid cell width in pixels; heights follow the image aspect ratio


# ----------------------------------------------------------------------------- models


class IdentityModel:
    """Output = input: the floor any bokeh model must beat (its PSNR is that of doing nothing)."""

    needs_lens = False

    def __init__(self) -> None:
        self.source: dict[str, Any] = {"kind": "identity"}

    def __call__(self, image: np.ndarray, depth: np.ndarray) -> np.ndarray:
        return image.copy()


class TorchModel:
    """A generator ``module(image, depth[, lens])`` run in PyTorch on the CPU, without gradients."""

    def __init__(self, module: torch.nn.Module, source: dict[str, Any] | None = None) -> None:
        self.module = module.eval()
        self.source = source or {"kind": "torch", "class": type(module).__name__}
        self.needs_lens = bool(getattr(module, "lens_input", False))

    def __call__(self, image: np.ndarray, depth: np.ndarray, lens: Any = None) -> np.ndarray:
        args = [torch.from_numpy(image), torch.from_numpy(depth)]
        if self.needs_lens:
            args.append(torch.from_numpy(lens.network_input()))
        with torch.inference_mode():
            return self.module(*args).float().numpy()


class RuntimeModel:
    """An exported file (.onnx / .tflite) run by ``export.runtime.load_runner``."""

    def __init__(self, runner: Callable[..., np.ndarray], source: dict[str, Any]) -> None:
        self.runner = runner
        self.source = source
        self.needs_lens = bool(getattr(runner, "lens_input", False))

    def __call__(self, image: np.ndarray, depth: np.ndarray, lens: Any = None) -> np.ndarray:
        if self.needs_lens:
            return self.runner(image, depth, lens.network_input())
        return self.runner(image, depth)


class RendererModel:
    """A classical renderer from ``training.renderers``; takes the image's lens parameters."""

    needs_lens = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.renderer = get_renderer(name)
        self.source = {"kind": "renderer", "name": name}

    def __call__(self, image: np.ndarray, depth: np.ndarray, lens: Any = None) -> np.ndarray:
        img, disp = torch.from_numpy(image), torch.from_numpy(depth)
        with torch.inference_mode():
            return self.renderer.render(img, disp, lens).float().numpy()


def identity_model() -> IdentityModel:
    return IdentityModel()


def checkpoint_model(path: str | os.PathLike) -> TorchModel:
    """A Lightning checkpoint, bare NAFNet state dict or model.safetensors, via ``training.checkpoint.load_generator``."""
    ck = load_generator(path)  # raises FileNotFoundError / ValueError naming the file
    return TorchModel(
        ck.generator, {"kind": "checkpoint", "path": str(ck.path), "sha256": ck.sha256, "arch": _jsonable(ck.arch)}
    )


def runtime_model(path: str | os.PathLike, num_threads: int | None = None) -> RuntimeModel:
    """A .onnx or .tflite file through ``export.runtime.load_runner(path, num_threads)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path} (export one with `python -m export`)")
    threads = num_threads or torch.get_num_threads()
    runner = load_runner(str(path), threads)
    kind = "onnx" if path.suffix.lower() == ".onnx" else "tflite"
    return RuntimeModel(runner, {"kind": kind, "path": str(path), "sha256": file_sha256(path), "threads": threads})


def renderer_model(name: str) -> RendererModel:
    return RendererModel(name)


def _split_name(spec: str | os.PathLike) -> tuple[str | None, str]:
    """``NAME=PATH`` → (NAME, PATH); a plain path → (None, path)."""
    s = str(spec)
    if "=" in s and not Path(s).exists():
        name, path = s.split("=", 1)
        if name and "/" not in name and os.sep not in name:
            return name, path
    return None, s


def _tflite_default_name(path: str) -> str:
    stem = Path(path).stem
    return "tflite_" + (stem[len("bokeh_") :] if stem.startswith("bokeh_") else stem)


def _add(models: dict[str, Any], name: str, model: Any) -> None:
    if name in models:
        raise ValueError(f"two models are named {name!r}; name them with NAME=PATH")
    models[name] = model


def make_model_callables(
    checkpoint: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    onnx: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    tflite: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    renderers: Sequence[str] = (),
    identity: bool = False,
    num_threads: int | None = None,
) -> dict[str, Any]:
    """Build the named models for ``evaluate``, in table order: checkpoint(s) ("pytorch"),
    ONNX ("onnx"), TFLite ("tflite_fp32" for ``bokeh_fp32.tflite``, else "tflite_<stem>"),
    renderers (by name), identity. Any path may be given as ``NAME=PATH`` to choose its name.
    Missing files raise FileNotFoundError naming the file, before anything is evaluated."""

    def as_list(x: Any) -> list[str]:
        if x is None:
            return []
        return [str(x)] if isinstance(x, (str, os.PathLike)) else [str(v) for v in x]

    models: dict[str, Any] = {}
    ckpts = as_list(checkpoint)
    for spec in ckpts:
        name, path = _split_name(spec)
        _add(models, name or ("pytorch" if len(ckpts) == 1 else f"pytorch_{Path(path).stem}"), checkpoint_model(path))
    onnxs = as_list(onnx)
    for spec in onnxs:
        name, path = _split_name(spec)
        _add(
            models, name or ("onnx" if len(onnxs) == 1 else f"onnx_{Path(path).stem}"), runtime_model(path, num_threads)
        )
    for spec in as_list(tflite):
        name, path = _split_name(spec)
        _add(models, name or _tflite_default_name(path), runtime_model(path, num_threads))
    for r in renderers:
        _add(models, r, renderer_model(r))
    if identity:
        _add(models, "identity", identity_model())
    return models


# ----------------------------------------------------------------------------- data


def _load_lens(split: SplitData, sample_id: str, depth: torch.Tensor) -> Any:
    """The image's lens parameters from ``<split>/lens/<id>.json`` (synthetic data), else the
    project's auto-focus on its depth map (``training.renderers.lens.auto_focus``)."""

    path = split.layout.lens_file(sample_id)
    if not path.is_file():
        return auto_focus(depth)
    return LensParams.load(path)  # raises FileNotFoundError / ValueError naming the file


# ----------------------------------------------------------------------------- writing


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return _finite_or_none(obj)
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# ----------------------------------------------------------------------------- picture grid


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) float in [0, 1] → (H, W, 3) uint8."""
    x = x.detach().float().clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return (x.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def _depth_view(depth: torch.Tensor, band: torch.Tensor) -> np.ndarray:
    """Depth as grayscale (bright = near) with the edge-PSNR band tinted red."""
    rgb = _to_uint8(depth).astype(np.float32)
    m = band[0].numpy()
    rgb[m] = 0.6 * rgb[m] + 0.4 * np.array([255.0, 0.0, 0.0])
    return rgb.astype(np.uint8)


def _edge_crop_box(depth: torch.Tensor, threshold: float = EDGE_THRESHOLD) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a crop a quarter of the image's size around the densest
    depth edges; the image centre when there are none."""
    _, h, w = depth.shape
    ch, cw = max(h // 4, 16), max(w // 4, 16)
    edges = depth_edge_band(depth[None], threshold, radius=0)[0, 0].float()  # (H, W)
    density = F.avg_pool2d(edges[None, None], (ch, cw), stride=(max(ch // 4, 1), max(cw // 4, 1)))[0, 0]
    if float(density.max()) <= 0:
        top, left = (h - ch) // 2, (w - cw) // 2
    else:
        iy, ix = divmod(int(torch.argmax(density)), density.shape[1])
        top, left = iy * max(ch // 4, 1), ix * max(cw // 4, 1)
    return left, top, left + cw, top + ch


@dataclass
class _GridRow:
    sample_id: str
    box: tuple[int, int, int, int]
    full: list[Image.Image] = field(default_factory=list)
    crops: list[Image.Image] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # per-cell caption (e.g. PSNR), "" for none

    def add(self, rgb: np.ndarray, label: str = "", mark_box: bool = False) -> None:
        full, crop = _cells(rgb, self.box, mark_box)
        self.full.append(full)
        self.crops.append(crop)
        self.labels.append(label)


def _cells(rgb: np.ndarray, box: tuple[int, int, int, int], mark_box: bool = False) -> tuple[Image.Image, Image.Image]:
    h, w = rgb.shape[:2]
    cell_h = max(1, round(CELL_WIDTH * h / w))
    img = Image.fromarray(rgb)
    full = img.resize((CELL_WIDTH, cell_h), Image.Resampling.LANCZOS)
    crop = img.crop(box).resize((CELL_WIDTH, cell_h), Image.Resampling.NEAREST)  # zoom: show pixels
    if mark_box:
        s = CELL_WIDTH / w
        ImageDraw.Draw(full).rectangle(
            [box[0] * s, box[1] * s, box[2] * s - 1, box[3] * s - 1], outline=(255, 40, 40), width=2
        )
    return full, crop


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _render_grid(rows: list[_GridRow], columns: list[str]) -> Image.Image:
    pad, header, row_label = 4, 22, 16
    font, small = _font(14), _font(12)
    heights = [r.full[0].height for r in rows]
    total_h = header + sum(2 * (row_label + h + pad) for h in heights)
    total_w = pad + len(columns) * (CELL_WIDTH + pad)
    canvas = Image.new("RGB", (total_w, total_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(columns):
        draw.text((pad + c * (CELL_WIDTH + pad) + 2, 4), name, fill=(0, 0, 0), font=font)
    y = header
    for r, h in zip(rows, heights):
        for kind, cells in (("full image", r.full), ("edge crop, zoomed x4", r.crops)):
            draw.text((pad + 2, y + 1), f"id {r.sample_id}: {kind}", fill=(80, 80, 80), font=small)
            y += row_label
            for c, cell in enumerate(cells):
                x = pad + c * (CELL_WIDTH + pad)
                canvas.paste(cell, (x, y))
                if kind == "full image" and r.labels[c]:
                    tw = draw.textlength(r.labels[c], font=small)
                    draw.rectangle([x, y + h - 16, x + tw + 6, y + h], fill=(0, 0, 0))
                    draw.text((x + 3, y + h - 15), r.labels[c], fill=(255, 255, 255), font=small)
            y += h + pad
    return canvas


# ----------------------------------------------------------------------------- evaluation


def _as_output(out: Any, name: str, sample_id: str, shape: tuple[int, ...]) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().float().numpy()
    out = np.asarray(out, dtype=np.float32)
    if out.shape != shape:
        raise ValueError(f"model {name!r} returned shape {out.shape} for image {sample_id}, expected {shape}")
    return torch.from_numpy(out)


def _call(model: Any, image: np.ndarray, depth: np.ndarray, lens: Any) -> Any:
    if getattr(model, "needs_lens", False):
        return model(image, depth, lens)
    return model(image, depth)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


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
    grid: list[_GridRow] = []
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
                if any(getattr(m, "needs_lens", False) for m in models.values())
                else None
            )
            box = _edge_crop_box(depth[0])
            g = None
            if i in grid_idx:
                g = _GridRow(sample_id, box)
                g.add(_to_uint8(image[0]), mark_box=True)  # the red box shows where the crop is
                g.add(_depth_view(depth[0], band[0]))
            if crops:
                _write_crops(
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
                    g.add(_to_uint8(pred[0]), label=f"{p:.2f} dB")
                if crops:
                    _write_crops(out / "crops" / sample_id, {name: pred[0]}, band, box)
                bar.update(1)
            if g is not None:
                g.add(_to_uint8(target[0]))
                grid.append(g)
    finally:
        bar.close()

    summary = _summarise(names, models, per_model, data, data_dir, ids, sizes, lpips_model, lpips_reason)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "per_image.csv", rows)
    atomic_write_text(out / "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")
    atomic_write_text(out / "summary.md", format_report(summary))
    if grid:
        atomic_save_image(out / "grid.png", _render_grid(grid, ["input", "depth", *names, "ground truth"]))
    return summary


def _write_crops(
    folder: Path, images: Mapping[str, torch.Tensor], band: torch.Tensor, box: tuple[int, int, int, int]
) -> None:
    for name, x in images.items():
        rgb = _depth_view(x, band[0]) if name == "depth" else _to_uint8(x)
        atomic_save_image(folder / f"{_safe_name(name)}.png", Image.fromarray(rgb).crop(box))


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else (repr(r[k]) if isinstance(r[k], float) else r[k])) for k in CSV_FIELDS})
    atomic_write_text(path, buf.getvalue())


def _summarise(
    names: list[str],
    models: Mapping[str, Any],
    per_model: dict[str, dict[str, list[float]]],
    data: SplitData,
    data_dir: str | os.PathLike,
    ids: list[str],
    sizes: set[tuple[int, int]],
    lpips_model: LPIPS | None,
    lpips_reason: str | None,
) -> dict[str, Any]:
    model_rows = {}
    for n in names:
        acc = per_model[n]
        model_rows[n] = {
            "psnr": _mean(acc["psnr"]),
            "ssim": _mean(acc["ssim"]),
            "lpips": _mean(acc["lpips"]) if lpips_model is not None else None,
            "edge_psnr": _mean(acc["edge_psnr"]),
            "images": len(acc["psnr"]),
            "edge_images": len(acc["edge_psnr"]),
            "time_per_image_s": float(np.median(acc["time"])) if acc["time"] else None,
            "source": getattr(models[n], "source", {"kind": type(models[n]).__name__}),
        }
    lp: dict[str, Any] = {"available": lpips_model is not None, "version": "0.1", "net": "alex"}
    if lpips_model is None:
        lp["reason"] = lpips_reason
    else:
        lp.update(
            alexnet_weights=str(lpips_model.alexnet_path) if lpips_model.alexnet_path else None,
            alexnet_sha256=lpips_model.alexnet_sha256,
            lin_weights=str(lpips_model.lin_path) if lpips_model.lin_path else None,
            lin_sha256=lpips_model.lin_sha256,
            official_weights=lpips_model.official,
        )
    return {
        "format_version": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "dir": str(data_dir),
            "split": data.name,
            "layout": data.layout.kind,
            "folder": str(data.layout.original.parent),
            "images": len(ids),
            "ids": ids,
            "sizes_hw": sorted([list(s) for s in sizes]),
            "crop": "full resolution, centre-cropped to multiples of 16",
        },
        "metrics": {
            "psnr": "per image, data range 1, 10*log10(1/MSE) over RGB, mean over images",
            "ssim": f"Gaussian window 11, sigma 1.5, k1={SSIM_K1}, k2={SSIM_K2}, data range 1, RGB, valid window positions only (kornia), mean over images",
            "edge_psnr": (
                f"PSNR over the band within r = max(2, round(min(H, W)/64)) px (square dilation) of pixels whose "
                f"3x3 disparity range exceeds {EDGE_THRESHOLD}; mean over images that have such a band"
            ),
            "time_per_image_s": "median wall time of the model call on this machine, CPU",
        },
        "lpips": lp,
        "models": model_rows,
    }


def _fmt(x: float | None, digits: int) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "n/a"
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


def format_table(summary: Mapping[str, Any]) -> str:
    """The Markdown table ``model | PSNR | SSIM | LPIPS | edge PSNR | images | time/img``."""
    lines = [
        "| model | PSNR ↑ | SSIM ↑ | LPIPS ↓ | edge PSNR ↑ | images | time/img |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in summary["models"].items():
        lines.append(
            f"| {name} | {_fmt(m['psnr'], 2)} | {_fmt(m['ssim'], 4)} | {_fmt(m['lpips'], 4)} | "
            f"{_fmt(m['edge_psnr'], 2)} | {m['images']} | {_fmt_time(m['time_per_image_s'])} |"
        )
    return "\n".join(lines) + "\n"


def format_report(summary: Mapping[str, Any]) -> str:
    """``summary.md``: the table, what each column means, and the LPIPS status."""
    d = summary["data"]
    sizes = ", ".join(f"{w}×{h}" for h, w in d["sizes_hw"])
    lp = summary["lpips"]
    if lp["available"]:
        lp_note = "LPIPS v0.1, AlexNet" + (
            ""
            if lp.get("official_weights")
            else " — **weights are not the published files; not comparable with papers**"
        )
    else:
        lp_note = f"LPIPS unavailable: {lp['reason']}"
    m = summary["metrics"]
    return (
        f"# Evaluation on {d['split']} ({d['images']} images, {d['folder']})\n\n"
        + format_table(summary)
        + f"\n- Resolution: {sizes} ({d['crop']}).\n"
        f"- PSNR: {m['psnr']}.\n- SSIM: {m['ssim']}.\n- {lp_note}.\n"
        f"- Edge PSNR: {m['edge_psnr']}.\n- time/img: {m['time_per_image_s']}.\n\n"
        "![grid: input | depth | models | ground truth, with zoomed crops at depth edges](grid.png)\n"
    )


# ----------------------------------------------------------------------------- CLI


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
        models = make_model_callables(args.checkpoint, args.onnx, tflite, args.renderer, args.identity, args.threads)
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
