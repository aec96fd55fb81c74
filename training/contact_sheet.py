"""Contact sheet of a synthetic split: input | depth | ground truth | scatter | layered | blend.

    python -m training.contact_sheet --data DIR/val --out docs/contact_sheet.png [--scenes 4]

One row per scene. The three classical renderers (BokehMe scatter, D2F layered, DBSI blend) render
each scene from its all-in-focus image, depth map and lens JSON, so the sheet shows what the data
looks like and where the baselines differ from the ground truth (depth edges, bokeh balls).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from common.io import atomic_write_bytes
from training.renderers import RENDERERS, get_renderer
from training.renderers.lens import LensParams

COLUMNS = ("input", "depth", "ground truth", *RENDERERS)


def read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except OSError as exc:
        raise SystemExit(f"cannot read image {path}: {exc}") from None


def read_depth(path: Path) -> np.ndarray:
    """Normalised disparity in [0, 1] from a 16-bit (or 8-bit) grayscale PNG."""
    try:
        with Image.open(path) as im:
            a = np.array(im)
    except OSError as exc:
        raise SystemExit(f"cannot read depth map {path}: {exc}") from None
    if a.ndim != 2:
        raise SystemExit(f"{path}: depth must be a single-channel PNG, got shape {a.shape}")
    scale = 65535.0 if a.dtype == np.uint16 or a.max() > 255 else 255.0
    return a.astype(np.float32) / scale


def scene_ids(data: Path) -> list[str]:
    folder = data / "original"
    if not folder.is_dir():
        raise SystemExit(f"{data}: no original/ folder; point --data at a split folder such as DIR/val")
    ids = [p.stem for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg") and p.stem.isdigit()]
    return sorted(ids, key=int)


def thumb(a: np.ndarray, width: int) -> Image.Image:
    im = Image.fromarray(a)
    h = round(a.shape[0] * width / a.shape[1])
    return im.resize((width, h), Image.LANCZOS)


def build_sheet(data: Path, ids: list[str], width: int) -> Image.Image:
    renderers = {name: get_renderer(name) for name in RENDERERS}
    rows = []
    for i in ids:
        rgb = read_rgb(data / "original" / f"{i}.png")
        depth = read_depth(data / "depth" / f"{i}.png")
        gt = read_rgb(data / "bokeh" / f"{i}.png")
        lens = LensParams.load(data / "lens" / f"{i}.json")
        image = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0)[None]
        disp = torch.from_numpy(depth)[None, None]
        cells = [rgb, np.repeat((depth * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2), gt]
        for r in renderers.values():
            out = r.render(image, disp, lens)[0]
            cells.append((out.clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).numpy())
        rows.append([thumb(c, width) for c in cells])
    cell_h = rows[0][0].height
    header = 16
    sheet = Image.new("RGB", (width * len(COLUMNS), header + cell_h * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(COLUMNS):
        draw.text((c * width + 4, 2), name, fill=(0, 0, 0))
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            sheet.paste(im, (c * width, header + r * cell_h))
    return sheet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.contact_sheet", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a split folder of the synthetic data, e.g. DIR/val")
    p.add_argument("--out", type=Path, default=Path("docs/contact_sheet.png"))
    p.add_argument("--scenes", type=int, default=4, help="number of scenes (rows), default 4")
    p.add_argument("--ids", type=str, default=None, help="comma-separated scene ids instead of the first N")
    p.add_argument("--width", type=int, default=240, help="thumbnail width in px, default 240")
    args = p.parse_args(argv)
    ids = args.ids.split(",") if args.ids else scene_ids(args.data)[: args.scenes]
    if not ids:
        raise SystemExit(f"{args.data}: no scenes found")
    sheet = build_sheet(args.data, ids, args.width)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out} ({sheet.width}x{sheet.height}, {len(buf.getvalue()) / 1e6:.2f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
