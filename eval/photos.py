"""Real photos without ground truth: how much detail a model keeps on the subject and in the
background, and side-by-side pictures to look at.

    python -m eval.photos --model tflite_models/nafnet_w8_lens_cpu/bokeh_fp16.tflite \
        --photos PHOTOS_DIR --out runs/photos [--lens auto|default|D_F,K,DOF]
    python -m eval.photos --renderer scatter --size 1024x1536 --photos PHOTOS_DIR --out runs/photos_scatter

``--photos`` holds ``<id>.jpg|png`` with ``<id>.depth.png`` beside it (disparity, bright = near;
the layout of PyNET-Bokeh's visual samples), or is a split folder with ``original/`` and
``depth/``. Each photo is centre-cropped to the model's aspect ratio and resized to its input
size; the depth map is min-max normalised, as a monocular estimate is. A lens-conditioned model
gets the project's ``auto_focus`` (default), the manifest's documented default lens, or the
given values; so does a classical renderer (``--renderer``, from ``training.renderers``). Printed: background (farthest 40 % of disparity) and subject (nearest 20 %) detail
kept, per photo and the median (``common.metrics.detail_kept``); pictures: photo | depth | output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from common.io import atomic_save_image
from common.metrics import detail_kept
from eval.runners import RendererRunner
from export.manifest import MANIFEST_NAME, read_manifest
from export.runtime import load_runner
from training.data import id_key
from training.renderers.lens import LensParams, auto_focus

__all__ = ["depth_for", "find_photos", "load_photo", "main"]

PHOTO_EXTS = (".jpg", ".jpeg", ".png")


def depth_for(photo: Path) -> Path:
    """Where the depth map of ``photo`` lies in the two layouts: ``<split>/depth/<id>.png`` for
    ``<split>/original/<id>.jpg``, else ``<id>.depth.png`` beside the photo."""
    if photo.parent.name == "original":
        return photo.parent.parent / "depth" / f"{photo.stem}.png"
    return photo.with_name(f"{photo.stem}.depth.png")


def find_photos(folder: Path) -> list[tuple[str, Path, Path]]:
    """(id, photo, depth map) of every photo in ``folder`` that has a depth map."""
    if (folder / "original").is_dir():
        pairs = [
            (p.stem, p, depth_for(p)) for p in sorted((folder / "original").iterdir()) if p.suffix.lower() in PHOTO_EXTS
        ]
    else:
        pairs = [
            (p.stem, p, depth_for(p))
            for p in sorted(folder.iterdir())
            if p.suffix.lower() in PHOTO_EXTS and not p.name.endswith(".depth.png")
        ]
    missing = [str(d) for _, _, d in pairs if not d.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: photos without a depth map, expected {', '.join(missing[:3])}")
    if not pairs:
        raise FileNotFoundError(f"{folder}: no photos (<id>.jpg with <id>.depth.png, or original/ + depth/)")
    return sorted(pairs, key=lambda t: id_key(t[0]))


def load_photo(photo: Path, depth: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) RGB and (H, W) disparity in [0, 1] at ``size`` = (H, W): centre crop to the
    aspect ratio, bicubic resize, min-max normalised depth."""
    H, W = size
    img = ImageOps.exif_transpose(Image.open(photo)).convert("RGB")  # as the camera meant it, like eval.render
    dep = Image.open(depth).convert("L").resize(img.size, Image.BICUBIC)
    w0, h0 = img.size
    tw = min(w0, round(h0 * W / H))
    th = min(h0, round(tw * H / W))
    box = ((w0 - tw) // 2, (h0 - th) // 2, (w0 - tw) // 2 + tw, (h0 - th) // 2 + th)
    rgb = np.asarray(img.crop(box).resize((W, H), Image.BICUBIC), np.float32) / 255.0
    d = np.asarray(dep.crop(box).resize((W, H), Image.BICUBIC), np.float32)
    d = (d - d.min()) / max(float(d.max() - d.min()), 1e-6)
    return rgb, d


def _lens(choice: str, disparity: np.ndarray, manifest: dict | None) -> np.ndarray:
    if choice == "auto":
        return auto_focus(disparity).network_input().ravel()
    if choice.startswith("auto,"):  # the auto-focus rule with another sharp band (0: BokehMe eq. 1)
        return LensParams.for_photo(disparity, dof=float(choice.split(",", 1)[1])).network_input().ravel()
    if choice == "default":
        spec = next((i for i in (manifest or {}).get("inputs", []) if i["name"] == "lens"), None)
        if spec is None:
            raise ValueError("--lens default needs a manifest.json beside the model with a lens input")
        return np.array(spec["default"], np.float32)
    try:
        values = [float(v) for v in choice.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise ValueError(f"--lens {choice!r}: expected auto, default or D_F,K,DOF")
    return np.array(values, np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.photos", description=__doc__.split("\n\n")[0])
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", type=Path, help=".tflite, .onnx or checkpoint")
    who.add_argument("--renderer", help="a classical renderer instead: scatter, layered or blend")
    p.add_argument("--photos", required=True, type=Path, help="folder of <id>.jpg + <id>.depth.png")
    p.add_argument("--out", required=True, type=Path, help="folder for the side-by-side pictures")
    p.add_argument("--size", default=None, help="HxW (default: the model's input size; required for checkpoints)")
    p.add_argument(
        "--lens",
        default="auto",
        help="auto (auto_focus, default), auto,DOF (its rule with another sharp band), default (the "
        "manifest's) or D_F,K,DOF",
    )
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    runner = load_runner(args.model, num_threads=args.threads) if args.model else RendererRunner(args.renderer)
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else runner.input_size
    if size is None:
        p.error("--size HxW is needed for a model without a fixed input size")
    has_manifest = args.model is not None and (args.model.parent / MANIFEST_NAME).is_file()
    manifest = read_manifest(args.model.parent) if has_manifest else None
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{runner.name} on {args.photos} at {size[1]}x{size[0]}, lens {args.lens}\n")
    print("| photo | d_f | K | dof | background kept | subject kept |\n|---|---:|---:|---:|---:|---:|")
    bg, fg = [], []
    for pid, photo, depth in find_photos(args.photos):
        rgb, d = load_photo(photo, depth, size)
        lens = _lens(args.lens, d, manifest) if runner.lens_input else None
        out = runner(rgb.transpose(2, 0, 1)[None], d[None, None], lens)[0].transpose(1, 2, 0)
        b, f = detail_kept(rgb, out, d)
        bg.append(b)
        fg.append(f)
        lens_cells = " | ".join(f"{v:.2f}" for v in lens) if lens is not None else "- | - | -"
        print(f"| {pid} | {lens_cells} | {b:.2f} | {f:.2f} |")
        side = np.concatenate([rgb, np.repeat(d[..., None], 3, -1), np.clip(out, 0, 1)], 1)
        atomic_save_image(args.out / f"{pid}.png", Image.fromarray((side * 255 + 0.5).astype(np.uint8)))
    print(f"| median | | | | {np.median(bg):.2f} | {np.median(fg):.2f} |\n\npictures: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
