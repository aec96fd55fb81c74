"""Synthetic bokeh pairs: procedural scenes rendered with the ground-truth renderer.

    python -m training.synth --out DIR --train N --val M --size HxW --seed S [--workers W]

writes, for every scene i of each split,

    DIR/<split>/original/<i>.png   all-in-focus photo, 8-bit RGB
    DIR/<split>/bokeh/<i>.png      ground truth, 8-bit RGB
    DIR/<split>/depth/<i>.png      16-bit grayscale, normalised disparity * 65535 (bright = near)
    DIR/<split>/lens/<i>.json      the LensParams used (plus scene metadata under "meta")

and DIR/dataset.json with the generator's arguments. This is the EBB! layout the data loader reads.

A scene is a stack of layers with known radiance, alpha and disparity, including what nearer layers
hide; the ground truth scatters each layer over the EBB! camera's aperture and composites them
(``training/renderers/ground_truth.py``). The files of this package, in the order a pair is made:

- ``textures.py``: palettes, fractal noise and textures (display-space colour);
- ``shapes.py``: silhouettes (blobs, flowers, leafy clumps, people, branches, grass, poles);
- ``highlights.py``: HDR point lights that become bokeh balls;
- ``scene.py``: :func:`build_scene`, the layers of one scene, laid one named step at a time;
- ``pair.py``: :func:`make_pair`, the scene photographed all in focus and through the lens;
- ``dataset.py``: :func:`generate`, the files on disk, atomic and resumable, in parallel;
- ``cli.py``: the command line.

Determinism and resuming: scene i of a split depends only on (seed, split, i). Files are written
atomically and a scene counts as done only when all four files exist, so an interrupted run can be
re-run: it redoes the incomplete scenes and skips the rest.
"""

from .cli import main, parse_data_size
from .dataset import FORMAT_VERSION, KINDS, SUFFIX, generate, scene_complete, scene_paths, write_pair
from .highlights import add_highlights
from .pair import (
    SPLIT_IDS,
    SPLITS,
    Pair,
    all_in_focus,
    canvas_margin,
    draw_lens,
    encode,
    make_pair,
    refocus,
    render_pair,
    scene_rng,
)
from .scene import Canvas, SceneLayer, build_scene, plane
from .shapes import SHAPES, SUPERSAMPLE, curve, make_shape, radial_polygon, rasterize, shading
from .textures import fractal, hsv, palette_map, random_palette, texture

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "SHAPES",
    "SPLITS",
    "SPLIT_IDS",
    "SUFFIX",
    "SUPERSAMPLE",
    "Canvas",
    "Pair",
    "SceneLayer",
    "add_highlights",
    "all_in_focus",
    "build_scene",
    "canvas_margin",
    "curve",
    "draw_lens",
    "encode",
    "fractal",
    "generate",
    "hsv",
    "main",
    "make_pair",
    "make_shape",
    "palette_map",
    "parse_data_size",
    "plane",
    "radial_polygon",
    "random_palette",
    "rasterize",
    "refocus",
    "render_pair",
    "scene_complete",
    "scene_paths",
    "scene_rng",
    "shading",
    "texture",
    "write_pair",
]
