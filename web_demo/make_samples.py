"""Write the few synthetic samples bundled with the web demo (``web_demo/samples/``).

The scenes come from the project's synthetic data generator (``training.synth.make_pair``: layered
procedural scenes with a subject, a backdrop with highlights that become bokeh balls, ground
planes and thin structures), so the page shows the kind of input the generator is trained on.
Each sample is an all-in-focus photo and its depth map in the dataset folder layout
(``original/<id>.png``, ``depth/<id>.png``), plus ``index.json`` listing them for the page (a
static server cannot list a folder). The last sample is a portrait-format head and shoulders
(``eval.matte.synthetic_portrait``, in ``photo/``) with no depth map (``"depth": null``): the page
computes a person matte for it.

Depth is normalised disparity, 1 = near, stored as an **8-bit** grayscale PNG rather than the
dataset's 16-bit: browsers decode PNGs into an 8-bit canvas, so 8 bits is what the page can feed
the model, and the end-to-end test feeds the Python reference exactly the same values.

Usage::

    python -m web_demo.make_samples            # rewrites web_demo/samples/
    python -m web_demo.make_samples --out DIR --size 192x288 --seed 7 --scenes 1,2,3
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from common.io import atomic_save_image, atomic_write_text
from eval.matte import synthetic_portrait
from training.synth import make_pair

DEFAULT_SEED = 7
DEFAULT_SCENES = (1, 2, 3)  # val scenes of that seed: a blob, a person-like figure, a leafy clump
SPLIT = "val"


def _save_png_atomic(img: Image.Image, path: Path) -> None:
    atomic_save_image(path, img, format="PNG", optimize=True)


def make_samples(
    out_dir: str | os.PathLike,
    size: tuple[int, int] = (192, 288),
    seed: int = DEFAULT_SEED,
    scenes: tuple[int, ...] = DEFAULT_SCENES,
) -> list[dict]:
    """Render ``scenes`` of the synthetic generator at ``size`` (H, W) into ``out_dir``; return the index."""
    out = Path(out_dir)
    entries = []
    for sample_id, scene in enumerate(scenes):
        pair = make_pair(seed, SPLIT, scene, size[0], size[1])
        depth8 = np.round(pair.depth.astype(np.float64) / 65535.0 * 255.0).astype(np.uint8)
        _save_png_atomic(Image.fromarray(pair.original, "RGB"), out / "original" / f"{sample_id}.png")
        _save_png_atomic(Image.fromarray(depth8, "L"), out / "depth" / f"{sample_id}.png")
        entries.append(
            {
                "id": str(sample_id),
                "image": f"original/{sample_id}.png",
                "depth": f"depth/{sample_id}.png",
                "source": f"training.synth.make_pair(seed={seed}, split={SPLIT!r}, index={scene})",
            }
        )
    # A portrait-format photo with no depth map: the page falls back to the person matte for it and
    # turns it into the model's landscape frame (eval.matte.synthetic_portrait, a head and shoulders).

    portrait, _ = synthetic_portrait(size[1], size[0], seed=0)
    sample_id = len(entries)
    # photo/, not original/: original/ + depth/ is a dataset split (the exporter's --parity-data reads it).
    _save_png_atomic(Image.fromarray(portrait, "RGB"), out / "photo" / f"{sample_id}.png")
    entries.append(
        {
            "id": str(sample_id),
            "image": f"photo/{sample_id}.png",
            "depth": None,
            "source": f"eval.matte.synthetic_portrait({size[1]}, {size[0]}, seed=0): no depth map, "
            "the page uses the person matte",
        }
    )
    index = {"size": list(size), "depth_bits": 8, "depth_convention": "disparity, 1 = near", "samples": entries}
    atomic_write_text(out / "index.json", json.dumps(index, indent=2) + "\n")
    return entries


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "samples"))
    ap.add_argument("--size", default="192x288", help="HxW")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--scenes", default=",".join(map(str, DEFAULT_SCENES)), help="comma-separated scene indices")
    args = ap.parse_args(argv)
    try:
        h, w = (int(x) for x in args.size.lower().split("x"))
        scenes = tuple(int(s) for s in args.scenes.split(","))
    except ValueError:
        ap.error(f"--size {args.size!r} / --scenes {args.scenes!r}: expected HxW and comma-separated integers")
    make_samples(args.out, (h, w), args.seed, scenes)


if __name__ == "__main__":
    main()
