"""Contact sheet of a synthetic split: input | depth | ground truth | scatter | layered | blend.

    python -m training.contact_sheet --data DIR/val --out docs/contact_sheet.png [--scenes 4]

One row per scene. The three classical renderers (BokehMe scatter, D2F layered, DBSI blend) render
each scene from its all-in-focus image, depth map and lens JSON, so the sheet shows what the data
looks like and where the baselines differ from the ground truth (depth edges, bokeh balls).
Files are found and read as training reads them (``training.data``).
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
from training.data import BadSampleError, read_pair, read_pair_depth, split_folder_layout
from training.renderers import RENDERERS, get_renderer
from training.renderers.lens import LensParams

COLUMNS = ("input", "depth", "ground truth", *RENDERERS)


def scene_ids(data: Path) -> list[str]:
    if not (data / "original").is_dir():
        raise SystemExit(f"{data}: no original/ folder; point --data at a split folder such as DIR/val")
    return split_folder_layout(data).ids()


def thumb(a: np.ndarray, width: int) -> Image.Image:
    im = Image.fromarray(a)
    h = round(a.shape[0] * width / a.shape[1])
    return im.resize((width, h), Image.LANCZOS)


def build_sheet(data: Path, ids: list[str], width: int) -> Image.Image:
    renderers = {name: get_renderer(name) for name in RENDERERS}
    layout = split_folder_layout(data)
    rows = []
    for i in ids:
        photo_path, gt_path, depth_path = layout.files(i)
        photo, truth = read_pair(photo_path, gt_path)  # the training data's readers and checks
        rgb, gt = np.array(photo), np.array(truth)  # (H, W, 3) uint8, writable for torch
        disp = read_pair_depth(depth_path, rgb.shape[:2])[None]  # (1, 1, H, W)
        depth = disp[0, 0].numpy()
        lens = LensParams.load(layout.lens_file(i))
        image = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0)[None]
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
    try:
        sheet = build_sheet(args.data, ids, args.width)
    except BadSampleError as exc:  # names the file and what is wrong with it
        raise SystemExit(f"cannot read {exc}") from None
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out} ({sheet.width}x{sheet.height}, {len(buf.getvalue()) / 1e6:.2f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
