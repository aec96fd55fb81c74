"""A person matte as the depth cue of a photo that has no depth map: ``python -m eval.matte``.

    python -m eval.matte prepare                       # web_demo/matte/selfie_segmentation.tflite
    python -m eval.matte prepare --from mediapipe-0.10.14-cp311-...whl
    python -m eval.matte photo.jpg --out runs/matte     # <id>.matte.png (8-bit, white = person)

    from eval.matte import PersonMatte
    disparity = PersonMatte()(photo)  # (H, W) float32 in [0, 1] at the photo's size, 1 = person

A phone user has a photo and no depth map. The demos (``web_demo/``, ``android_demo/``) and
``python -m eval.render --matte`` then use MediaPipe's selfie segmentation (the "general"
model: 256×256 RGB in [0, 1] → one channel of person probability, Apache-2.0, ~250 KB) as a
two-plane depth: the person is near (disparity 1), everything else far (0), with the model's soft
edge in between. The matte is used as the disparity itself, not min-max normalised: a photo with
no person then has a flat map, which auto-focus (``training.renderers.lens.auto_focus``) keeps
entirely in its sharp band, instead of a map whose noise is stretched to [0, 1].

Where the model comes from. It is not committed. ``prepare`` takes it by path from a package the
set-up installs anyway: the npm package ``@mediapipe/selfie_segmentation`` (pinned in
``web_demo/package.json``, installed by ``web_demo/setup.sh``), or, with ``--from``, a ``mediapipe``
0.10.x wheel (read as a zip; the package is never imported) or a bare ``.tflite``. The output
folder (``web_demo/matte/``, git-ignored) is what the web page loads, what the Android
``copyMatteModel`` task copies, and what :class:`PersonMatte` reads by default.

The rewrite that makes the file builtin-only is in ``eval/matte_rewrite.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common.io import atomic_save_image, atomic_write_bytes
from common.paths import REPO
from eval.matte_rewrite import CUSTOM_OP, RewriteError, rewrite_custom_ops
from export.gates import op_census

__all__ = ["PersonMatte", "MatteError", "prepare", "matte_path", "synthetic_portrait", "main"]

NPM_PACKAGE = "@mediapipe/selfie_segmentation"
NPM_SOURCE = REPO / "web_demo" / "node_modules" / "@mediapipe" / "selfie_segmentation" / "selfie_segmentation.tflite"
WHEEL_MEMBER = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
MATTE_DIR = REPO / "web_demo" / "matte"
MATTE_FILE = "selfie_segmentation.tflite"
INFO_FILE = "matte.json"  # what prepare did: source, sha256 of both files, the rewrite, its parity
LICENCE = "Apache-2.0 (MediaPipe; model card: Selfie Segmentation, Google)"
# Rewrite vs original, outputs in [0, 1]. On the same kernels (both on XNNPACK) the two files give
# bit-identical outputs (measured: 0.0). Across implementations (the rewrite on the reference
# kernels, every op of the net, not only the replaced one) float32 summation order differs:
# measured 5.7e-5 on the portrait probe, hence the looser bound there.
SAME_KERNELS_MAX_ABS = 1e-6
PARITY_MAX_ABS = 1e-3


class MatteError(ValueError):
    """A missing or unusable matte model or photo; the message names the file and the command."""


def matte_path(folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or MATTE_DIR) / MATTE_FILE


def _interpreter(content: bytes, delegates: bool, num_threads: int = 1):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=content, num_threads=num_threads, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    return it


def _run(it, x: np.ndarray) -> np.ndarray:
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[0]["index"]))


def synthetic_portrait(height: int = 576, width: int = 384, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured backdrop with a head-and-shoulders figure in front: (H, W, 3) uint8 photo and its
    (H, W) bool silhouette. The tests' and the README's scene without a depth map: fine texture
    everywhere, so that sharpness can be measured on the person and on the background (gradient
    energy). The face has eyes and a mouth because the selfie model needs them: without them it
    found a portrait-format figure with IoU 0.01, with them 0.98 (the landscape figure 0.81 / 0.96)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    s = min(height, width)
    cx, hy, r = width / 2, 0.36 * height, 0.16 * s  # head centre and half-width
    head = ((xx - cx) / r) ** 2 + ((yy - hy) / (1.3 * r)) ** 2 <= 1.0
    top = 0.60 * height  # shoulder line
    neck = (np.abs(xx - cx) <= 0.07 * s) & (yy >= hy) & (yy <= top + 2)
    body = (yy >= top) & (np.abs(xx - cx) <= 0.22 * s + 0.9 * (yy - top))  # shoulders widening downwards
    person = head | neck | body
    noise = rng.standard_normal((height, width, 3))
    # Backdrop: coloured 24-px tiles (a bookshelf, a tiled wall) plus fine noise.
    tiles = rng.random((height // 24 + 1, width // 24 + 1, 3)).repeat(24, 0).repeat(24, 1)[:height, :width]
    bg = 0.25 + 0.5 * tiles + 0.12 * noise
    fg = np.where((head | neck)[..., None], [0.87, 0.68, 0.56], [0.20, 0.30, 0.55]) + 0.06 * noise
    fg = np.where((head & (yy < hy - 0.78 * r))[..., None], [0.18, 0.12, 0.08], fg)  # hair
    for ex in (-0.4, 0.4):
        eye = (xx - cx - ex * r) ** 2 + (yy - hy + 0.1 * r) ** 2 <= (0.12 * r) ** 2
        fg = np.where(eye[..., None], [0.1, 0.1, 0.1], fg)
    mouth = (np.abs(xx - cx) <= 0.3 * r) & (np.abs(yy - hy - 0.55 * r) <= 0.06 * r)
    fg = np.where(mouth[..., None], [0.6, 0.2, 0.2], fg)
    img = np.where(person[..., None], fg, bg)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), person


def _probes(height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    portrait, _ = synthetic_portrait(height, width)
    return [rng.random((1, height, width, 3), dtype=np.float32), portrait[None].astype(np.float32) / 255.0]


# ----------------------------------------------------------------------------- prepare


def read_source(source: str | os.PathLike | None = None) -> tuple[bytes, str]:
    """(original .tflite bytes, where they came from): the npm package by default, else ``source``
    (a .tflite file, or a mediapipe wheel read as a zip)."""
    if source is None:
        if not NPM_SOURCE.is_file():
            raise MatteError(
                f"{NPM_SOURCE}: not found; run `bash web_demo/setup.sh` (npm ci installs {NPM_PACKAGE}), "
                "or pass --from a mediapipe wheel or the .tflite itself"
            )
        return NPM_SOURCE.read_bytes(), f"npm {NPM_PACKAGE}@{_npm_version()} ({NPM_SOURCE.relative_to(REPO)})"
    path = Path(source)
    if not path.is_file():
        raise MatteError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            try:
                return z.read(WHEEL_MEMBER), f"{path.name}:{WHEEL_MEMBER}"
            except KeyError:
                raise MatteError(f"{path}: no {WHEEL_MEMBER} in it (is it a mediapipe 0.10.x wheel?)") from None
    data = path.read_bytes()
    if data[4:8] != b"TFL3":
        raise MatteError(f"{path}: not a .tflite file (no TFL3 identifier)")
    return data, str(path)


def _npm_version() -> str:
    try:
        return json.loads((NPM_SOURCE.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def prepare(
    source: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None, force: bool = False
) -> Path:
    """Write the builtin-only matte model (and ``matte.json``) to ``out_dir``; return its path.
    Does nothing when it is already there for the same source bytes (``force`` to redo)."""
    original, origin = read_source(source)
    out = matte_path(out_dir)
    info_path = out.parent / INFO_FILE
    sha_in = hashlib.sha256(original).hexdigest()
    if not force and out.is_file() and info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
            if (
                info.get("source_sha256") == sha_in
                and info.get("sha256") == hashlib.sha256(out.read_bytes()).hexdigest()
            ):
                return out
        except ValueError:
            pass
    try:
        rewritten, replaced = rewrite_custom_ops(original)
    except RewriteError as e:
        raise MatteError(f"{origin}: {e}") from None
    census = op_census(rewritten)
    if any(name.startswith("CUSTOM:") for name in census):
        raise MatteError(f"{origin}: custom ops left after the rewrite: {census}")
    ref_it = _interpreter(original, delegates=True)  # XNNPACK implements the custom op
    new_ref = _interpreter(rewritten, delegates=False)  # reference kernels: every op builtin
    new_xnn = _interpreter(rewritten, delegates=True)
    _, h, w, _ = ref_it.get_input_details()[0]["shape"]
    diffs, same = [], []
    for x in _probes(int(h), int(w)):
        want = _run(ref_it, x)
        diffs.append(float(np.max(np.abs(want - _run(new_ref, x)))))
        same.append(float(np.max(np.abs(want - _run(new_xnn, x)))))
    if max(diffs) > PARITY_MAX_ABS or max(same) > SAME_KERNELS_MAX_ABS:
        raise MatteError(
            f"{origin}: the rewritten model differs from the original by {max(diffs):.2e} "
            f"(reference kernels, bound {PARITY_MAX_ABS}) and {max(same):.2e} (both on XNNPACK, "
            f"bound {SAME_KERNELS_MAX_ABS}); not written"
        )
    atomic_write_bytes(out, rewritten)
    info = {
        "file": MATTE_FILE,
        "model": "MediaPipe Selfie Segmentation, general (256x256)",
        "licence": LICENCE,
        "source": origin,
        "source_sha256": sha_in,
        "sha256": hashlib.sha256(rewritten).hexdigest(),
        "size_bytes": len(rewritten),
        "input": {
            "shape": [1, int(h), int(w), 3],
            "dtype": "float32",
            "range": [0, 1],
            "normalisation": "RGB / 255, the photo squashed to the input size",
        },
        "output": {
            "shape": [1, int(h), int(w), 1],
            "dtype": "float32",
            "range": [0, 1],
            "meaning": "person probability; used as disparity (1 = person = near)",
        },
        "rewrite": {
            "custom_op": CUSTOM_OP.decode(),
            "replaced_by": "TRANSPOSE_CONV v3 (with bias)",
            "nodes": replaced,
            "max_abs_diff_vs_original": max(diffs),
            "reference": "original on XNNPACK (its MediaPipe-op path) vs rewrite on the reference kernels",
            "max_abs_diff_same_kernels": max(same),
        },
        "op_census": census,
    }
    atomic_write_bytes(info_path, (json.dumps(info, indent=2) + "\n").encode())
    return out


# ----------------------------------------------------------------------------- running it


@dataclass
class PersonMatte:
    """``PersonMatte()(photo)``: (H, W) float32 person probability at the photo's size, used as
    disparity (1 = person = near). ``path``: the prepared model (default web_demo/matte/)."""

    path: str | os.PathLike | None = None
    num_threads: int = 2

    def __post_init__(self) -> None:
        file = Path(self.path) if self.path else matte_path()
        if not file.is_file():
            raise MatteError(
                f"{file}: no person-matte model; run `python -m eval.matte prepare` "
                "(after `bash web_demo/setup.sh`, which installs it from npm)"
            )
        self._it = _interpreter(file.read_bytes(), delegates=True, num_threads=self.num_threads)
        _, self.height, self.width, _ = (int(v) for v in self._it.get_input_details()[0]["shape"])

    def __call__(self, photo: Image.Image | np.ndarray) -> np.ndarray:
        img = photo if isinstance(photo, Image.Image) else Image.fromarray(np.asarray(photo, np.uint8))
        rgb = np.asarray(img.convert("RGB"), np.float32) / 255.0  # (H, W, 3)
        H, W = rgb.shape[:2]
        # Squashed to the model's square input, as MediaPipe's own graph does (no padding).
        x = resize(rgb, (self.height, self.width))[None]
        m = _run(self._it, np.ascontiguousarray(x, np.float32))[0]  # (h, w, 1)
        return np.clip(resize(m, (H, W))[..., 0], 0.0, 1.0)


def resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, C) float -> (H, W, C): bilinear with antialiasing (torch ``interpolate(...,
    antialias=True)``), the resampling that the web page (photo.js ``resize``) writes out by hand."""

    t = torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1)[None]
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------- command


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prepare"]:
        p = argparse.ArgumentParser(
            prog="python -m eval.matte prepare",
            description="Write the builtin-only person-matte model (module docstring).",
        )
        p.add_argument(
            "--from",
            dest="source",
            type=Path,
            help=f"a mediapipe 0.10.x wheel or a selfie_segmentation .tflite (default: {NPM_SOURCE.relative_to(REPO)})",
        )
        p.add_argument(
            "--out", type=Path, default=MATTE_DIR, help=f"output folder (default {MATTE_DIR.relative_to(REPO)})"
        )
        p.add_argument("--force", action="store_true", help="rewrite even when the output is up to date")
        args = p.parse_args(argv[1:])
        try:
            out = prepare(args.source, args.out, args.force)
        except MatteError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        info = json.loads((out.parent / INFO_FILE).read_text())
        print(
            f"{out} ({info['size_bytes']} bytes, {info['rewrite']['nodes']} {CUSTOM_OP.decode()} -> TRANSPOSE_CONV, "
            f"max |diff| vs original {info['rewrite']['max_abs_diff_vs_original']:.1e}) from {info['source']}"
        )
        return 0
    p = argparse.ArgumentParser(
        prog="python -m eval.matte",
        description="Person matte of photos (white = person = near), or `prepare` the model.",
    )
    p.add_argument("photos", type=Path, nargs="+", metavar="PHOTO")
    p.add_argument("--out", type=Path, required=True, help="output folder: <id>.matte.png per photo")
    p.add_argument("--model", type=Path, help=f"prepared model (default {matte_path().relative_to(REPO)})")
    args = p.parse_args(argv)
    # Here, not at the top: eval.render's inputs import this module for the person matte.
    from eval.render import RenderError, open_photo  # noqa: PLC0415

    try:
        matte = PersonMatte(args.model)
    except MatteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for photo in args.photos:
        try:
            m = matte(open_photo(photo))
        except RenderError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        atomic_save_image(args.out / f"{photo.stem}.matte.png", Image.fromarray((m * 255.0 + 0.5).astype(np.uint8)))
        print(f"{args.out / f'{photo.stem}.matte.png'}: person on {float((m > 0.5).mean()) * 100:.1f} % of the photo")
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
