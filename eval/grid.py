"""The picture grid of an evaluation (``grid.png``) and its edge crops (``crops/<id>/*.png``).

Columns input | depth | each model | ground truth for a few images, each row followed by a row of
zoomed crops around the image's densest depth edges, where renderers fail. The depth column tints
the edge-PSNR band red, so a reader sees which pixels the edge score counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from common.io import atomic_save_image
from common.metrics import EDGE_THRESHOLD, depth_edge_band

__all__ = ["CELL_WIDTH", "GridRow", "depth_view", "edge_crop_box", "render_grid", "to_uint8", "write_crops"]

CELL_WIDTH = 256  # grid cell width in pixels; heights follow the image aspect ratio


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) float in [0, 1] → (H, W, 3) uint8."""
    x = x.detach().float().clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return (x.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def depth_view(depth: torch.Tensor, band: torch.Tensor) -> np.ndarray:
    """Depth as grayscale (bright = near) with the edge-PSNR band tinted red."""
    rgb = to_uint8(depth).astype(np.float32)
    m = band[0].numpy()
    rgb[m] = 0.6 * rgb[m] + 0.4 * np.array([255.0, 0.0, 0.0])
    return rgb.astype(np.uint8)


def edge_crop_box(depth: torch.Tensor, threshold: float = EDGE_THRESHOLD) -> tuple[int, int, int, int]:
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
class GridRow:
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


def render_grid(rows: list[GridRow], columns: list[str]) -> Image.Image:
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


def write_crops(
    folder: Path, images: Mapping[str, torch.Tensor], band: torch.Tensor, box: tuple[int, int, int, int]
) -> None:
    for name, x in images.items():
        rgb = depth_view(x, band[0]) if name == "depth" else to_uint8(x)
        atomic_save_image(folder / f"{_safe_name(name)}.png", Image.fromarray(rgb).crop(box))


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
