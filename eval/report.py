"""What an evaluation writes besides its pictures: ``per_image.csv``, ``summary.json`` (the
per-model means with the data, metric definitions and LPIPS provenance) and ``summary.md`` (the
challenge's table)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.io import atomic_write_text
from common.metrics import EDGE_THRESHOLD, SSIM_K1, SSIM_K2
from eval.lpips import LPIPS
from training.data import SplitData

__all__ = ["CSV_FIELDS", "format_report", "format_table", "jsonable", "summarise", "write_csv"]

CSV_FIELDS = ("model", "id", "psnr", "ssim", "lpips", "edge_psnr", "time_s")


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return _finite_or_none(obj)
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else (repr(r[k]) if isinstance(r[k], float) else r[k])) for k in CSV_FIELDS})
    atomic_write_text(path, buf.getvalue())


def summarise(
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
