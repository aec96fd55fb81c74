"""The files a render writes: ``<id>.bokeh.png``, ``<id>.depth.png`` and ``<id>.side_by_side.jpg``,
and the photos a folder holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from common.io import atomic_save_image
from eval.photos import PHOTO_EXTS
from training.data import write_depth_png

from .inputs import RenderError
from .photo import Rendered

SIDE_BY_SIDE_HEIGHT = 512  # panel height of the side-by-side picture (smaller photos keep theirs)
SUFFIXES = {"bokeh": ".bokeh.png", "depth": ".depth.png", "side_by_side": ".side_by_side.jpg"}


def output_paths(out: Path, photo_id: str) -> dict[str, Path]:
    return {k: out / f"{photo_id}{suffix}" for k, suffix in SUFFIXES.items()}


def _is_output_or_depth(p: Path) -> bool:
    return p.name.startswith(".") or any(p.name.endswith(s) for s in SUFFIXES.values())


def list_photos(source: Path, depth: Path | None) -> list[tuple[str, Path, Path | None]]:
    """(id, photo, depth file or None) for a photo file or a folder of photos (either layout of
    ``eval.photos``). ``depth``: a file (one photo) or a folder of ``<id>.depth.png`` / ``<id>.png``;
    None = the file beside each photo (``depth_for``), looked up when it is rendered."""
    if source.is_file():
        photos = [source]
    elif source.is_dir():
        folder = source / "original" if (source / "original").is_dir() else source
        photos = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_EXTS and not _is_output_or_depth(p)
        )
        if not photos:
            raise RenderError(f"{source}: no photos ({', '.join(PHOTO_EXTS)}) in it")
    else:
        raise RenderError(f"{source}: no such file or folder")
    seen: dict[str, Path] = {}
    for p in photos:
        if p.stem in seen:
            raise RenderError(f"{p}: same id as {seen[p.stem]}; their outputs would overwrite each other")
        seen[p.stem] = p
    if depth is None:
        return [(p.stem, p, None) for p in photos]
    if depth.is_dir():

        def find(p: Path) -> Path:
            for cand in (depth / f"{p.stem}.depth.png", depth / f"{p.stem}.png"):
                if cand.is_file():
                    return cand
            return depth / f"{p.stem}.depth.png"  # missing: load_depth names it

        return [(p.stem, p, find(p)) for p in photos]
    if not depth.exists():
        raise RenderError(f"{depth}: --depth file or folder not found")
    if len(photos) > 1:
        raise RenderError(
            f"--depth {depth} is one file but {source} holds {len(photos)} photos; give a folder of depth maps"
        )
    return [(photos[0].stem, photos[0], depth)]


def side_by_side(r: Rendered) -> Image.Image:
    """photo | depth | bokeh, each SIDE_BY_SIDE_HEIGHT high at most."""
    W, H = r.photo.size
    h = min(H, SIDE_BY_SIDE_HEIGHT)
    w = max(1, round(W * h / H))
    depth = Image.fromarray((r.depth * 255.0 + 0.5).astype(np.uint8)).convert("RGB")
    panels = [im.resize((w, h), Image.BICUBIC) for im in (r.photo, depth, r.bokeh)]
    sheet = Image.new("RGB", (3 * w, h))
    for i, im in enumerate(panels):
        sheet.paste(im, (i * w, 0))
    return sheet


def write_outputs(r: Rendered, paths: dict[str, Path]) -> None:
    """Each file atomically (temp file in the folder, then os.replace); the bokeh last but one and
    the side-by-side last, so a photo counts as done only when all three are whole."""

    write_depth_png(paths["depth"], r.depth)
    atomic_save_image(paths["bokeh"], r.bokeh)
    atomic_save_image(paths["side_by_side"], side_by_side(r), format="JPEG", quality=90)
