"""``python -m eval.render``: the command line of the photo renderer (see ``eval/render/__init__.py``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from common.paths import REPO
from common.sizes import parse_size
from eval.matte import MatteError, PersonMatte
from eval.photos import depth_for
from training.depth import DepthModelMissing, load_dpt
from training.renderers import RENDERERS

from .files import list_photos, output_paths, write_outputs
from .inputs import RenderError
from .photo import DEFAULT_MODEL, DEFAULT_SIZE, load_model, render_photo


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m eval.render",
        description="Render a photo (or a folder of photos) with shallow depth of field, at the photo's own "
        "resolution. Writes <id>.bokeh.png, <id>.depth.png (the depth used) and <id>.side_by_side.jpg.",
    )
    p.add_argument(
        "photos",
        type=Path,
        metavar="PHOTO_OR_DIR",
        help="a JPEG/PNG, or a folder of them (or a split folder with original/ and depth/)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--model", type=Path, help=f".tflite or .onnx model (default: {DEFAULT_MODEL.relative_to(REPO)})")
    who.add_argument("--checkpoint", type=Path, help="a PyTorch checkpoint (.ckpt/.pt) or model.safetensors")
    who.add_argument("--renderer", choices=sorted(RENDERERS), help="a classical renderer instead of a model")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--depth",
        type=Path,
        metavar="FILE_OR_DIR",
        help="disparity map (bright = near) of the photo as displayed, or a folder of <id>.depth.png / "
        "<id>.png (default: <id>.depth.png beside the photo, or depth/<id>.png for original/<id>)",
    )
    src.add_argument(
        "--depth-model",
        type=Path,
        metavar="DIR",
        help="estimate depth with DPT from these local weights (see python -m training.depth)",
    )
    src.add_argument(
        "--matte",
        action="store_true",
        help="no depth map: MediaPipe's person matte as the depth (person near, the rest far; "
        "python -m eval.matte prepare makes the model)",
    )
    focus = p.add_mutually_exclusive_group()
    focus.add_argument(
        "--focus",
        metavar="X,Y",
        help="tap to focus: X,Y as fractions of the width and height (0,0 = top left); d_f = median "
        "depth there (default: auto-focus, the 90th percentile of disparity)",
    )
    focus.add_argument("--focus-disparity", type=float, metavar="D", help="focal disparity d_f in [0, 1] (1 = near)")
    p.add_argument(
        "--strength",
        type=float,
        metavar="K",
        help="blur strength K: blur radius in pixels per unit of disparity, in pixels of the model's "
        "input (the photo scaled to fit it, e.g. 1536 px wide), not of the photo (default: "
        "auto-focus's, which blurs the farthest surface by 1.63%% of the width)",
    )
    p.add_argument(
        "--dof", type=float, help="half-width of the sharp band around d_f, in disparity, [0, 0.5] (default 0.1)"
    )
    p.add_argument(
        "--size",
        default=None,
        metavar="HxW",
        help="input size for --checkpoint and --renderer (default 1024x1536; an exported model has its own)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--overwrite", action="store_true", help="render photos whose outputs already exist again")
    return p


def _parse_focus(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise RenderError(f"--focus {text!r}: expected X,Y, e.g. 0.5,0.4") from None
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise RenderError(f"--focus {text}: X and Y are fractions of the width and height, in [0, 1]")
    return x, y


def main(argv: Sequence[str] | None = None) -> int:

    args = build_parser().parse_args(argv)
    try:
        if args.out.exists() and not args.out.is_dir():
            raise RenderError(f"--out {args.out} is a file, not a folder")
        focus = _parse_focus(args.focus) if args.focus else None
        if args.size and not (args.checkpoint or args.renderer):
            raise RenderError("--size applies to --checkpoint and --renderer; an exported model has its own input size")
        try:
            size = parse_size(args.size) if args.size else DEFAULT_SIZE
        except ValueError as e:
            raise RenderError(f"--size: {e}") from None
        jobs = list_photos(args.photos, args.depth)
        for _, photo, depth in jobs:  # never write over an input
            inputs = {p.resolve() for p in (photo, depth or depth_for(photo)) if p.exists()}
            for out in output_paths(args.out, photo.stem).values():
                if out.resolve() in inputs:
                    raise RenderError(
                        f"--out {args.out}: writing {out.name} would overwrite an input; choose another folder"
                    )
        runner = load_model(args.renderer or args.checkpoint or args.model, args.threads)
        depth_model = load_dpt(str(args.depth_model)) if args.depth_model else None
        matte = None
        if args.matte:
            try:
                matte = PersonMatte(num_threads=args.threads)
            except MatteError as e:
                raise RenderError(str(e)) from None
    except (RenderError, DepthModelMissing) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    done, skipped, failed = 0, 0, 0
    bar = tqdm(jobs, desc="render", unit="photo", disable=not args.photos.is_dir())
    for photo_id, photo, depth in bar:
        paths = output_paths(args.out, photo_id)
        if not args.overwrite and all(p.is_file() for p in paths.values()):
            skipped += 1
            continue
        try:
            r = render_photo(
                photo,
                depth,
                runner,
                depth_model=depth_model,
                matte=matte,
                focus=focus,
                focus_disparity=args.focus_disparity,
                strength=args.strength,
                dof=args.dof,
                size=size,
            )
            try:
                write_outputs(r, paths)
            except OSError as e:  # disk full, permissions: the earlier files stay whole
                raise RenderError(f"{photo}: cannot write its outputs to {args.out} ({e})") from None
            done += 1
        except RenderError as e:  # one bad photo does not stop a folder; the exit status says so
            failed += 1
            tqdm.write(f"error: {e}", file=sys.stderr)
    bar.close()
    print(f"{done} rendered, {skipped} already done (--overwrite to redo), {failed} failed -> {args.out}")
    return 2 if failed else 0
