"""The "controls" picture of a lens-conditioned model: one scene at three focus settings × two
strengths, with how much detail each keeps near and far.

    python -m eval.controls --model tflite_models/<name>/bokeh_fp16.tflite --data data/phone/val --id 0 \
        --out runs/controls.png

The focus settings put d_f on the near subject (90th percentile of disparity, as ``auto_focus``),
the middle (median) and the far background (5th percentile); the strengths are half and all of the
scene's K (its ``lens/<id>.json``, else ``auto_focus``). Each cell is captioned with the detail kept
(``common.metrics.detail_kept_in``) where that setting's blur radius is under 1 px ("sharp") and
where it is 3 px or more ("blurred"): a model that follows its controls keeps ~1 in the first and
far less in the second, wherever the focus is.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from common.io import atomic_save_image
from common.metrics import detail_kept_in
from export.runtime import load_runner
from export.samples import load_sample
from training.data import split_folder_layout
from training.renderers.lens import LensParams, blur_radius

__all__ = ["FOCUS_QUANTILES", "STRENGTH_FACTORS", "ControlCell", "render_controls", "controls_picture", "main"]

FOCUS_QUANTILES = {"near": 0.9, "middle": 0.5, "far": 0.05}
STRENGTH_FACTORS = (0.5, 1.0)
# "blurred": a disc of this radius already removes most of a texture's gradient energy; small
# enough that the demo's 256x384 scenes (radii up to ~12 px) have such pixels too.
BLURRED_PX = 3.0


@dataclasses.dataclass
class ControlCell:
    focus: str
    d_f: float
    K: float
    dof: float
    sharp_kept: float  # detail kept where this lens's blur radius is < 1 px (None: no such pixel)
    blurred_kept: float  # ... where it is >= BLURRED_PX
    output: np.ndarray  # (H, W, 3) float, clamped to [0, 1]


def render_controls(runner, image: np.ndarray, depth: np.ndarray, lens) -> list[ControlCell]:
    """Run ``runner`` (``export.runtime`` interface, lens-conditioned) at every focus × strength.

    ``image`` (1, 3, H, W), ``depth`` (1, 1, H, W) NCHW float32; ``lens`` a ``LensParams`` whose K
    and dof are the scene's. Rows of the result: strengths; within a row: focus settings.
    """
    if not getattr(runner, "lens_input", False):
        raise ValueError(f"{runner.name}: not a lens-conditioned model (it has no lens input to control)")
    photo = image[0].transpose(1, 2, 0)
    disparity = depth[0, 0]
    cells = []
    for factor in STRENGTH_FACTORS:
        for focus, q in FOCUS_QUANTILES.items():
            d_f, K = float(np.quantile(disparity, q)), lens.K * factor
            out = runner(image, depth, np.array([d_f, K, lens.dof], np.float32))
            out = np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0)
            radius = blur_radius(torch.from_numpy(disparity), LensParams(K=K, d_f=d_f, dof=lens.dof)).numpy()
            kept = [
                detail_kept_in(photo, out, m) if m.any() else float("nan") for m in (radius < 1.0, radius >= BLURRED_PX)
            ]
            cells.append(ControlCell(focus, d_f, K, lens.dof, *kept, out))
    return cells


def controls_picture(photo: np.ndarray, cells: list[ControlCell], cell_width: int = 384) -> Image.Image:
    """A grid: the photo, then one row per strength with a captioned cell per focus setting."""
    h, w = photo.shape[:2]
    ch = round(cell_width * h / w)
    cols = len(FOCUS_QUANTILES)
    rows = len(cells) // cols
    caption = 30
    sheet = Image.new("RGB", ((cols + 1) * cell_width, rows * (ch + caption)), "white")
    draw = ImageDraw.Draw(sheet)

    def paste(rgb: np.ndarray, x: int, y: int, text: str) -> None:
        img = Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).resize((cell_width, ch), Image.Resampling.LANCZOS)
        sheet.paste(img, (x, y + caption))
        draw.text((x + 4, y + 2), text, fill="black")

    paste(photo, 0, 0, "input")
    for i, c in enumerate(cells):
        r, k = divmod(i, cols)
        paste(
            c.output,
            (k + 1) * cell_width,
            r * (ch + caption),
            f"focus {c.focus} d_f={c.d_f:.2f} K={c.K:.1f}\ndetail kept: sharp {c.sharp_kept:.2f}x, blurred {c.blurred_kept:.2f}x",
        )
    return sheet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.controls", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="a lens-conditioned .tflite, .onnx or checkpoint")
    p.add_argument("--data", required=True, type=Path, help="a split folder (original/, depth/, lens/)")
    p.add_argument("--id", default="0", help="the scene's id in the split folder (default 0)")
    p.add_argument("--size", help="HxW to run at (default: the model's input size, else the image's)")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    runner = load_runner(args.model, num_threads=args.threads)
    if args.size:
        size = tuple(int(v) for v in args.size.lower().split("x"))
    elif runner.input_size is not None:
        size = runner.input_size
    else:
        with Image.open(split_folder_layout(args.data).files(args.id)[0]) as im:
            size = (im.height - im.height % 16, im.width - im.width % 16)
    sample = load_sample(args.data, args.id, size)
    d_f, K, dof = sample.lens.ravel().tolist()
    cells = render_controls(runner, sample.image, sample.depth, LensParams(K=K, d_f=d_f, dof=dof))
    atomic_save_image(args.out, controls_picture(sample.image[0].transpose(1, 2, 0), cells))
    print("| K | focus | d_f | detail kept where r < 1 px | where r >= 3 px |\n|---:|---|---:|---:|---:|")
    for c in cells:
        print(f"| {c.K:.1f} | {c.focus} | {c.d_f:.2f} | {c.sharp_kept:.2f} | {c.blurred_kept:.2f} |")
    print(f"picture: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
