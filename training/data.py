"""Bokeh pairs (all-in-focus image, depth, bokeh ground truth) for training and validation.

Bokeh-Loss GAN (Lee et al., AIM 2022, ``shared/papers/bokeh-loss-gan.md``) trains on EBB! with
the generator conditioned on a DPT disparity map (§3.2), random 1024×1024 crops with flips (§4.1)
and validates on a hand-pruned hold-out of 200 images (Val200; the literature's Val294 is ids
4400–4693). This module reads three folder layouts into the same batch dict:

(a) a *split folder* ``<split>/{original,bokeh,depth}/<id>.{png,jpg}`` with ``depth/`` a 16-bit
    grayscale PNG (normalised disparity × 65535, bright = near). The synthetic data set writes
    ``ROOT/train/`` and ``ROOT/val/`` split folders; ``python -m training.depth`` adds ``depth/``
    to any folder that has ``original/``.
(b) AIM 2020 EBB!: ``ROOT/Training/{original,bokeh}/<i>.jpg``. It ships no depth, so
    ``ROOT/Training/depth/`` must first be written by ``python -m training.depth --data ROOT``.
(c) PyNET EBB!: ``ROOT/train/{original,original_depth,bokeh}``, depth 8-bit at half resolution
    (bright = near), upsampled bilinearly to the image size. A ``train/depth/`` folder written by
    the depth command is preferred when it exists.

A batch is ``{"image": (B,3,H,W), "depth": (B,1,H,W), "target": (B,3,H,W), "id": list[str]}``,
float32 in [0, 1], depth as normalised disparity with 1 = near. With ``lens=True`` it also holds
``"lens": (B,3,1,1)`` = (d_f, K, dof) for the lens-conditioned generator, from, in this order: the
synthetic data's ``<split>/lens/<id>.json``, a ``lens_csv`` file (``id,d_f,K[,dof]`` rows), or the
documented auto-focus :func:`training.renderers.lens.auto_focus` on the depth map (EBB! has no
lens values). K is in pixels at the file's resolution, which crops keep.

Images are read with their EXIF orientation applied. Bad input (unreadable/truncated file,
non-RGB or 16-bit image, sizes that differ, a depth map not the image's size (half in layout (c)),
missing depth, two files for one id) raises :class:`BadSampleError` naming the file; ``on_bad_file="skip"`` skips it instead and counts.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.context
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

from common.io import atomic_save_image

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
# The generator downsamples 4× by 2 (NAFNet encoder), so H and W must be multiples of 16.
SIZE_MULTIPLE = 16
SPLITS_DIR = Path(__file__).resolve().parent / "splits"
# Val200: the paper's hold-out is hand-pruned and unpublished (§4.1), so ours is a seeded random
# draw of 200 ids from the AIM 2020 training ids 0..4399, disjoint from Val294 (4400..4693).
VAL200_SEED = 2022
VAL200_POOL = range(0, 4400)
VAL294_IDS = [str(i) for i in range(4400, 4694)]
VAL200_HEADER = (
    "# Val200: 200 EBB! ids drawn with random.Random(2022).sample(range(4400), 200), sorted; "
    "disjoint from Val294 (4400-4693). Regenerate: python -m training.data --write-val200 "
    "training/splits/val200.txt"
)


class BadSampleError(Exception):
    """A sample that cannot be used, with the file and the reason.

    Takes one argument too, because a DataLoader re-raises a worker's exception in the main
    process as ``type(exc)(message)``; with a second required argument it would fall back to an
    anonymous RuntimeError.
    """

    def __init__(self, path: str | os.PathLike, reason: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(self.path if reason is None else f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across worker processes
        return (BadSampleError, (self.path, self.reason))


# ----------------------------------------------------------------------------- file helpers


def _png_bit_depth(path: Path) -> int | None:
    """Bits per channel from a PNG's IHDR, None for other formats.

    Pillow silently truncates 16-bit-per-channel RGB PNGs to mode "RGB" 8-bit, so the mode alone
    cannot tell; the header byte can.
    """
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


# The largest image a training pair may hold: EBB!'s are 1.6 Mpx and a 12 Mpx phone photo is the
# biggest plausible input. PIL only refuses above 179 Mpx, so a 292 KB PNG that decodes to 100 Mpx
# (1.2 GB, ~10 s a read) used to be accepted and read again every epoch.
MAX_SAMPLE_MPX = 50


def _open_checked(path: Path) -> Image.Image:
    """Open and fully decode with PIL, turning every failure into a BadSampleError.

    The EXIF orientation is applied, as every viewer and ``eval.render`` do: a phone JPEG stored
    sideways with orientation 6 beside an upright ground truth would otherwise train misaligned.
    """
    if not path.is_file():
        raise BadSampleError(path, "file does not exist")
    try:
        img = Image.open(path)
        w, h = img.size  # from the header, before any decoding
        if w * h > MAX_SAMPLE_MPX * 1e6:
            raise BadSampleError(
                path,
                f"{w}x{h} is {w * h / 1e6:.0f} Mpx, more than the {MAX_SAMPLE_MPX} Mpx "
                "a training pair may have (a decompression bomb, or resize it first)",
            )
        img.load()  # decodes now, so a truncated file fails here and not later in a worker
        ImageOps.exif_transpose(img, in_place=True)  # a no-op without an orientation tag
    except BadSampleError:
        raise
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise BadSampleError(path, f"unreadable or truncated image ({type(e).__name__}: {e})") from e
    return img


def load_rgb(path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    img = _open_checked(path)
    if img.mode != "RGB":
        raise BadSampleError(
            path,
            f"expected an 8-bit RGB image, got PIL mode {img.mode!r} (grayscale, RGBA, "
            "palette, CMYK or 16-bit images are not accepted; convert to 8-bit RGB)",
        )
    bits = _png_bit_depth(path)
    if bits is not None and bits != 8:
        raise BadSampleError(path, f"expected 8 bits per channel, the PNG has {bits} (convert to 8-bit RGB)")
    return img


def _array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)  # a writable copy


def _to_tensor(img: Image.Image) -> torch.Tensor:
    return _array_to_tensor(np.asarray(img, dtype=np.uint8))


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """8-bit RGB file → float32 (3, H, W) in [0, 1]. Raises BadSampleError naming the file."""
    return _to_tensor(load_rgb(path))


def _depth_array(path: Path) -> np.ndarray:
    """Decode a grayscale depth map to float32 (H, W) in [0, 1], keeping its bit depth."""
    img = _open_checked(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16).astype(np.float32) / 65535.0
    if img.mode == "I":  # some Pillow versions open 16-bit grayscale PNGs as 32-bit "I"
        bits = _png_bit_depth(path)
        arr = np.asarray(img, dtype=np.int64)
        if bits == 16 or arr.max() > 255:
            return np.clip(arr, 0, 65535).astype(np.float32) / 65535.0
        return arr.astype(np.float32) / 255.0
    if img.mode == "L":  # PyNET's original_depth: 8-bit
        return np.asarray(img, dtype=np.uint8).astype(np.float32) / 255.0
    if img.mode == "RGB":  # tolerate a grayscale map saved as RGB, but not a coloured one
        arr = np.asarray(img, dtype=np.uint8)
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all():
            return arr[..., 0].astype(np.float32) / 255.0
    raise BadSampleError(path, f"expected a grayscale depth map (8- or 16-bit), got PIL mode {img.mode!r}")


def read_depth(
    path: str | os.PathLike, size: tuple[int, int] | None = None, depth: torch.Tensor | None = None
) -> torch.Tensor:
    """Depth map → float32 (1, H, W) normalised disparity in [0, 1] (1 = near).

    ``size`` = (H, W) of the image it belongs to. A map of a different size with the same aspect
    ratio (PyNET's half-resolution ``original_depth``) is upsampled bilinearly; a different
    aspect ratio means the map belongs to another image and is rejected. ``depth``: the file's
    map already decoded (``read_depth(path)``), so that it is not decoded twice.
    """
    path = Path(path)
    if depth is None:
        if not path.is_file():
            raise BadSampleError(path, "depth map missing; write it with `python -m training.depth --data ROOT`")
        depth = torch.from_numpy(_depth_array(path))[None]  # (1, h, w)
    if size is not None and tuple(depth.shape[-2:]) != tuple(size):
        h, w = depth.shape[-2:]
        H, W = size
        if abs(h / w - H / W) > 0.02 * (H / W):
            raise BadSampleError(path, f"depth map is {w}x{h} (WxH) but the image is {W}x{H}; aspect ratios differ")
        # align_corners=False: pixel centres of the half-res map sit between full-res pixels
        depth = F.interpolate(depth[None], size=(H, W), mode="bilinear", align_corners=False)[0]
        depth = depth.clamp_(0.0, 1.0)
    return depth


def check_depth_size(
    depth_path: Path, depth_hw: tuple[int, int], image_hw: tuple[int, int], half_resolution: bool
) -> None:
    """Refuse a training pair's depth map that is not its image's size; ``half_resolution`` also accepts half.

    ``read_depth`` resamples any map with the image's aspect ratio, which the render command needs
    for a monocular estimate of any size. A training pair is stricter: a half-size map of another
    image with the same aspect used to be upscaled and trained on. Only PyNET's ``original_depth``
    folder is documented as half resolution (rounded either way, hence the 1 px).
    """
    (dh, dw), (h, w) = depth_hw, image_hw
    if (dh, dw) == (h, w) or (half_resolution and abs(dw - w / 2) <= 1 and abs(dh - h / 2) <= 1):
        return
    allowed = f"{w}x{h}" + (f" or half that ({w // 2}x{h // 2})" if half_resolution else "")
    raise BadSampleError(
        depth_path,
        f"depth map is {dw}x{dh} (WxH) but its image is {w}x{h}; a training pair's depth "
        f"must be {allowed}. Re-run `python -m training.depth` for this folder",
    )


def write_depth_png(path: str | os.PathLike, disparity: torch.Tensor | np.ndarray) -> None:
    """Write normalised disparity (H, W) or (1, H, W) in [0, 1] as a 16-bit PNG, atomically."""
    d = disparity.detach().cpu().float().numpy() if isinstance(disparity, torch.Tensor) else np.asarray(disparity)
    d = np.squeeze(d)
    if d.ndim != 2:
        raise ValueError(f"disparity for {path} must be (H, W) or (1, H, W), got shape {disparity.shape}")
    arr = np.round(np.clip(d.astype(np.float64), 0.0, 1.0) * 65535.0).astype(np.uint16)
    atomic_save_image(path, Image.fromarray(arr))  # uint16 array → mode "I;16"


# ----------------------------------------------------------------------------- layouts


def _index_folder(folder: Path) -> dict[str, Path]:
    """stem → file for the image files in ``folder`` (a .png beats a .jpg of the same id)."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        ext = p.suffix.lower()
        if p.is_file() and ext in IMAGE_EXTS and not p.name.startswith("."):
            if p.stem not in out or ext == ".png":
                out[p.stem] = p
    return out


def id_key(i: str) -> tuple[int, int | str]:
    """Sort key of a sample id: EBB! ids are plain integers (2 before 10), any other name after them."""
    return (0, int(i)) if i.isdigit() else (1, i)


@dataclass(frozen=True)
class FolderLayout:
    """Where one split's originals, ground truths and depth maps live.

    ``kind`` is "split" (a), "aim2020" (b) or "pynet" (c) from the module docstring.
    """

    kind: str
    original: Path
    bokeh: Path
    depth: Path

    def ids(self) -> list[str]:
        return sorted(_index_folder(self.original), key=id_key)

    def files(self, sample_id: str) -> tuple[Path, Path, Path]:
        """(original, bokeh, depth) paths of one id; missing files get their expected path.

        Two files for one id (``1.png`` beside ``1.jpg``, or ``1.jpg`` beside ``1.JPG``) are a bad
        sample: which one is current cannot be known, and picking one silently trained on stale files.
        """

        def find(folder: Path, exts: Sequence[str]) -> Path:
            found = [
                p
                for ext in exts
                for e in dict.fromkeys((ext, ext.upper()))
                if (p := folder / f"{sample_id}{e}").is_file()
            ]
            if len({p.resolve() for p in found}) > 1:  # resolve(): a case-insensitive file system lists one file twice
                raise BadSampleError(
                    found[0],
                    "more than one file for id "
                    + repr(sample_id)
                    + ": "
                    + ", ".join(p.name for p in found)
                    + "; keep one",
                )
            return found[0] if found else folder / f"{sample_id}{exts[0]}"

        return find(self.original, IMAGE_EXTS), find(self.bokeh, IMAGE_EXTS), find(self.depth, IMAGE_EXTS)

    def lens_file(self, sample_id: str) -> Path:
        """``<split>/lens/<id>.json``: the lens parameters the synthetic data was rendered with."""
        return self.original.parent / "lens" / f"{sample_id}.json"


def is_split_folder(p: Path) -> bool:
    """A split folder holds original/ and bokeh/ (and depth/): layout (a) of the module docstring."""
    return (p / "original").is_dir() and (p / "bokeh").is_dir()


def detect_layout(root: str | os.PathLike) -> FolderLayout:
    """The layout of a folder holding ONE split: a split folder, an AIM 2020 root or a PyNET root."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(_missing_root_message(root))
    if (root / "Training").is_dir() and is_split_folder(root / "Training"):
        t = root / "Training"
        return FolderLayout("aim2020", t / "original", t / "bokeh", t / "depth")
    if (root / "train" / "original_depth").is_dir() and is_split_folder(root / "train"):
        t = root / "train"
        depth = t / "depth" if (t / "depth").is_dir() else t / "original_depth"
        return FolderLayout("pynet", t / "original", t / "bokeh", depth)
    if (root / "original_depth").is_dir() and is_split_folder(root):  # the PyNET train/ folder itself
        depth = root / "depth" if (root / "depth").is_dir() else root / "original_depth"
        return FolderLayout("pynet", root / "original", root / "bokeh", depth)
    if is_split_folder(root):
        return FolderLayout("split", root / "original", root / "bokeh", root / "depth")
    raise FileNotFoundError(
        f"{root}: no dataset layout found. Expected one of: {root}/original + bokeh + depth "
        f"(a split folder), {root}/train and {root}/val split folders (synthetic data), "
        f"{root}/Training/{{original,bokeh}} (AIM 2020 EBB!), or {root}/train/{{original,original_depth,bokeh}} "
        "(PyNET EBB!)."
    )


def _missing_root_message(root: Path) -> str:
    return (
        f"dataset root {root} does not exist. Make data with `python -m training.synth --out {root}` "
        "(synthetic train/ and val/ split folders), or point root at EBB!: "
        "ROOT/Training/{original,bokeh}/<i>.jpg (AIM 2020, then run `python -m training.depth --data ROOT`) "
        "or ROOT/train/{original,original_depth,bokeh} (PyNET)."
    )


# ----------------------------------------------------------------------------- splits


def read_id_list(path: str | os.PathLike) -> list[str]:
    """Ids from a text file, one a line; blank lines and ``#`` comments ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"id list {path} does not exist")
    ids = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    return ids


def make_val200_ids(seed: int = VAL200_SEED) -> list[str]:
    """The Val200 draw that ``training/splits/val200.txt`` holds."""
    return [str(i) for i in sorted(random.Random(seed).sample(VAL200_POOL, 200))]


def write_val200(path: str | os.PathLike) -> None:
    path = Path(path)
    path.write_text(VAL200_HEADER + "\n" + "\n".join(make_val200_ids()) + "\n")


def split_ids(val_split: str) -> list[str]:
    """Validation ids for "val200", "val294" or a path to an id list."""
    if val_split == "val200":
        return read_id_list(SPLITS_DIR / "val200.txt")
    if val_split == "val294":
        return list(VAL294_IDS)
    if Path(val_split).is_file():
        return read_id_list(val_split)
    raise ValueError(
        f"val_split={val_split!r}: expected 'auto', 'folder', 'val200', 'val294' or an existing id-list file"
    )


# ----------------------------------------------------------------------------- dataset


def _center_box(w: int, h: int, cw: int, ch: int) -> tuple[int, int, int, int]:
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def read_lens_csv(path: str | os.PathLike) -> dict[str, tuple[float, float, float]]:
    """``id,d_f,K[,dof]`` rows (a header line is allowed) → {id: (d_f, K, dof)}; names the file
    and line on error."""
    from training.renderers.lens import LensParams  # noqa: PLC0415 (renderers pull in their numerics)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lens CSV {path} does not exist (rows: id,d_f,K[,dof])")
    out: dict[str, tuple[float, float, float]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        cells = [c.strip() for c in line.split("#", 1)[0].split(",")]
        if cells == [""] or (n == 1 and cells[:3] == ["id", "d_f", "K"]):
            continue
        try:
            if len(cells) not in (3, 4):
                raise ValueError(f"{len(cells)} cells")
            lens = LensParams(K=float(cells[2]), d_f=float(cells[1]), dof=float(cells[3]) if len(cells) == 4 else 0.0)
        except ValueError as e:
            raise ValueError(
                f"{path}:{n}: expected 'id,d_f,K[,dof]' with 0 <= d_f <= 1, K >= 0, 0 <= dof <= 0.5, got {line!r} ({e})"
            ) from None
        out[cells[0]] = (lens.d_f, lens.K, lens.dof)
    return out


def lens_tensor(d_f: float, K: float, dof: float = 0.0) -> torch.Tensor:
    """The generator's lens input for one image: (3, 1, 1) = (d_f, K, dof)."""
    return torch.tensor([d_f, K, dof], dtype=torch.float32).view(3, 1, 1)


class BokehPairs(Dataset):
    """(image, depth, target) triples of one split.

    Training (``crop_size`` set): a random ``crop_size``² crop and, with ``flip``, a random
    horizontal flip, identical for all three tensors (paper §4.1: 1024×1024 crops). Validation
    (``crop_size=None``): the full image, centre-cropped to H, W multiples of 16 because the
    generator's four 2× downsamplings need that; ``center_crop`` instead takes a centred square
    (for quick CPU runs; rounded down to a multiple of 16).

    ``lens``: add the (d_f, K, dof) lens input (module docstring). ``cache``: keep every decoded sample
    in memory (uint8 images, float16 depth; ~13 MB a 1024×1536 pair) so that later epochs only
    crop. Decoding three 1.5-megapixel PNGs takes ~0.1 s, as long as a training step of 256² crops
    on two CPU cores: without the cache the loader would need a core of its own. With DataLoader
    workers each worker holds its own copy, so use it with ``num_workers=0``.
    """

    def __init__(
        self,
        folder_layout: FolderLayout,
        ids: Sequence[str],
        crop_size: int | None = None,
        flip: bool = False,
        on_bad_file: str = "raise",
        center_crop: int | None = None,
        lens: bool = False,
        lens_csv: str | os.PathLike | None = None,
        cache: bool = False,
    ) -> None:
        if on_bad_file not in ("raise", "skip"):
            raise ValueError(f"on_bad_file must be 'raise' or 'skip', got {on_bad_file!r}")
        if crop_size is not None and crop_size <= 0:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        self.layout = folder_layout
        self.ids = [str(i) for i in ids]
        self.crop_size = crop_size
        self.flip = flip
        self.on_bad_file = on_bad_file
        self.center_crop = center_crop
        self.lens = lens
        self.lens_values = read_lens_csv(lens_csv) if lens_csv else {}
        self.cache = cache
        self._decoded: dict[int, tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor | None]] = {}
        # Shared across DataLoader workers (inherited at fork/spawn), so the count is global.
        self._skip_count: Any = multiprocessing.Value("i", 0)
        self._bad: dict[int, str] = {}  # index → reason, per process, so a bad file is decoded once

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is None:
            # Pickled outside worker start-up (deepcopy, hparams): a shared Value can't travel.
            state["_skip_count"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._skip_count is None:
            self._skip_count = multiprocessing.Value("i", 0)

    @property
    def num_skipped(self) -> int:
        """Samples skipped so far (all workers), counting a file once per time it was drawn."""
        return int(self._skip_count.value)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.on_bad_file == "raise":
            return self._load_wrapped(index)
        n = len(self.ids)
        for k in range(n):  # deterministic replacement: the next index that loads
            j = (index + k) % n
            if j in self._bad:
                continue
            try:
                return self._load_wrapped(j)
            except BadSampleError as e:
                self._bad[j] = str(e)
                with self._skip_count.get_lock():
                    self._skip_count.value += 1
                log.warning("skipping bad sample %s", e)
        raise BadSampleError(self.layout.original, f"on_bad_file='skip' but none of the {n} samples loads")

    def _load_wrapped(self, index: int) -> dict[str, Any]:
        try:
            return self._load(index)
        except BadSampleError:
            raise
        except Exception as e:  # never let a worker die with a traceback that names no file
            img_path, _, _ = self.layout.files(self.ids[index])
            raise BadSampleError(
                img_path, f"failed to load sample id {self.ids[index]} ({type(e).__name__}: {e})"
            ) from e

    def _lens(self, sid: str, depth: torch.Tensor) -> torch.Tensor:
        from training.renderers.lens import LensParams, auto_focus  # noqa: PLC0415

        path = self.layout.lens_file(sid)
        if path.is_file():
            p = LensParams.load(path)
        elif sid in self.lens_values:
            return lens_tensor(*self.lens_values[sid])
        else:
            p = auto_focus(depth)
        return torch.from_numpy(p.network_input()[0])

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor | None]:
        """(image uint8 HWC, target uint8 HWC, depth (1, H, W), lens (3, 1, 1) or None) of one id."""
        if index in self._decoded:
            return self._decoded[index]
        sid = self.ids[index]
        img_path, tgt_path, depth_path = self.layout.files(sid)
        img = load_rgb(img_path)
        tgt = load_rgb(tgt_path)
        if img.size != tgt.size:
            raise BadSampleError(
                img_path,
                f"size {img.size[0]}x{img.size[1]} differs from its ground truth {tgt_path} "
                f"({tgt.size[0]}x{tgt.size[1]})",
            )
        w, h = img.size
        depth = read_depth(depth_path)  # its own size first, for the size rule
        check_depth_size(depth_path, tuple(depth.shape[-2:]), (h, w), depth_path.parent.name == "original_depth")
        depth = read_depth(depth_path, (h, w), depth=depth)  # (1, H, W)
        lens = self._lens(sid, depth) if self.lens else None  # from the full map, before any crop
        out = (np.asarray(img, dtype=np.uint8), np.asarray(tgt, dtype=np.uint8), depth, lens)
        if self.cache:
            out = (out[0], out[1], depth.half(), lens)
            self._decoded[index] = out
        return out

    def _load(self, index: int) -> dict[str, Any]:
        sid = self.ids[index]
        img, tgt, depth, lens = self._decode(index)
        img_path = self.layout.files(sid)[0]
        h, w = img.shape[:2]

        if self.crop_size is not None:
            c = self.crop_size
            if w < c or h < c:
                raise BadSampleError(img_path, f"image is {w}x{h}, smaller than the {c}x{c} training crop")
            top = int(torch.randint(0, h - c + 1, (1,)))
            left = int(torch.randint(0, w - c + 1, (1,)))
            box = (left, top, left + c, top + c)
        elif self.center_crop is not None:
            c = self.center_crop - self.center_crop % SIZE_MULTIPLE
            if w < c or h < c:
                raise BadSampleError(img_path, f"image is {w}x{h}, smaller than the {c}x{c} validation crop")
            box = _center_box(w, h, c, c)
        else:
            box = _center_box(w, h, w - w % SIZE_MULTIPLE, h - h % SIZE_MULTIPLE)
        if box[2] - box[0] < SIZE_MULTIPLE or box[3] - box[1] < SIZE_MULTIPLE:
            raise BadSampleError(img_path, f"image is {w}x{h}, too small for the generator (needs >= 16x16)")

        rows, cols = slice(box[1], box[3]), slice(box[0], box[2])
        image = _array_to_tensor(img[rows, cols])
        target = _array_to_tensor(tgt[rows, cols])
        depth = depth[:, rows, cols].float().contiguous()
        if self.flip and bool(torch.rand(()) < 0.5):
            image, depth, target = image.flip(-1), depth.flip(-1), target.flip(-1)
        sample = {"image": image, "depth": depth, "target": target, "id": sid}
        if lens is not None:
            sample["lens"] = lens
        return sample


# ----------------------------------------------------------------------------- data module


class BokehDataModule(L.LightningDataModule):
    """Train/validation loaders for the synthetic data or EBB! (paper §4.1).

    Args:
        root: a dataset root: ``ROOT/{train,val}`` split folders (synthetic), an AIM 2020 or
            PyNET EBB! root, or one split folder.
        val_split: "auto" (the ``val/`` folder when ``root/train`` and ``root/val`` exist, else
            "val200"), "folder" (require ``train/`` and ``val/``), "val200" (the seeded list in
            ``training/splits/val200.txt``), "val294" (ids 4400–4693) or a path to an id list.
            Training uses every other id.
        exclude_list: id list removed from training and validation (the paper's manual pruning
            of EBB! from 4694 to 4425 pairs); see ``training/splits/exclude_example.txt``.
        crop_size: training crop side (1024 in the paper, §4.1).
        val_crop: centre-crop validation images to this square (quick CPU configs); None keeps
            the full image, cropped to multiples of 16.
        on_bad_file: "raise" or "skip" (skips bad samples, counted in ``num_skipped``).
        max_train_samples, max_val_samples: keep the first N ids (sorted), for tiny runs.
        seed: seeds the shuffle order and the DataLoader workers' crop/flip randomness.
        lens: add the (d_f, K, dof) lens input to each sample (the lens-conditioned generator).
        lens_csv: per-image lens values (``id,d_f,K[,dof]``) for data without lens files; ids in
            neither get the documented auto-focus.
        cache: keep decoded samples in memory (see :class:`BokehPairs`; use with num_workers 0).
    """

    def __init__(
        self,
        root: str = "data/synthetic",
        val_split: str = "auto",
        exclude_list: str | None = None,
        crop_size: int = 1024,
        batch_size: int = 2,
        val_batch_size: int = 1,
        num_workers: int = 2,
        flip: bool = True,
        on_bad_file: str = "raise",
        max_train_samples: int | None = None,
        max_val_samples: int | None = None,
        val_crop: int | None = None,
        seed: int = 0,
        lens: bool = False,
        lens_csv: str | None = None,
        cache: bool = False,
    ) -> None:
        super().__init__()
        self.root = root
        self.val_split = val_split
        self.exclude_list = exclude_list
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.flip = flip
        self.on_bad_file = on_bad_file
        self.max_train_samples = max_train_samples
        self.max_val_samples = max_val_samples
        self.val_crop = val_crop
        self.seed = seed
        self.lens = lens
        self.lens_csv = lens_csv
        self.cache = cache
        self.train_set: BokehPairs | None = None
        self.val_set: BokehPairs | None = None

    # -- split resolution
    def _layouts_and_ids(self) -> tuple[FolderLayout, list[str], FolderLayout, list[str]]:
        root = Path(self.root)
        if not root.exists():
            raise FileNotFoundError(_missing_root_message(root))
        excluded = set(read_id_list(self.exclude_list)) if self.exclude_list else set()
        folders = is_split_folder(root / "train") and is_split_folder(root / "val")
        mode = self.val_split
        if mode == "auto":
            mode = "folder" if folders and not (root / "train" / "original_depth").is_dir() else "val200"
        if mode == "folder":
            if not folders:
                raise FileNotFoundError(f"val_split='folder' needs {root}/train and {root}/val split folders")
            tl, vl = detect_layout(root / "train"), detect_layout(root / "val")
            train_ids = [i for i in tl.ids() if i not in excluded]
            val_ids = [i for i in vl.ids() if i not in excluded]
        else:
            if folders:
                raise ValueError(
                    f"{root} holds train/ and val/ split folders; use val_split='auto' or 'folder', "
                    f"or point root at one split folder to split it by {mode!r}"
                )
            tl = vl = detect_layout(root)
            wanted = set(split_ids(mode))
            all_ids = tl.ids()
            val_ids = [i for i in all_ids if i in wanted and i not in excluded]
            train_ids = [i for i in all_ids if i not in wanted and i not in excluded]
        if self.max_train_samples is not None:
            train_ids = train_ids[: self.max_train_samples]
        if self.max_val_samples is not None:
            val_ids = val_ids[: self.max_val_samples]
        if not train_ids:
            raise ValueError(
                f"{root}: no training samples (val_split={self.val_split!r}, exclude_list={self.exclude_list})"
            )
        if not val_ids:
            raise ValueError(
                f"{root}: no validation samples for val_split={self.val_split!r} (are the split's ids "
                "in this dataset? a small data set may hold none of Val200/Val294)"
            )
        return tl, train_ids, vl, val_ids

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        tl, train_ids, vl, val_ids = self._layouts_and_ids()
        lens = {"lens": self.lens, "lens_csv": self.lens_csv, "cache": self.cache}
        self.train_set = BokehPairs(tl, train_ids, self.crop_size, self.flip, self.on_bad_file, **lens)
        self.val_set = BokehPairs(vl, val_ids, None, False, self.on_bad_file, center_crop=self.val_crop, **lens)

    # -- loaders
    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        assert self.train_set is not None
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        assert self.val_set is not None
        # Full images differ in size (EBB!: 1536 or 1600 wide), so they cannot share a batch.
        return DataLoader(
            self.val_set,
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def num_skipped(self) -> dict[str, int]:
        """Bad samples skipped so far with ``on_bad_file="skip"``, per split (log at epoch end)."""
        return {
            "train": self.train_set.num_skipped if self.train_set else 0,
            "val": self.val_set.num_skipped if self.val_set else 0,
        }

    def teardown(self, stage: str | None = None) -> None:
        skipped = self.num_skipped()
        if any(skipped.values()):
            log.warning("bad samples skipped: %s", skipped)


def _main(argv: Sequence[str] | None = None) -> int:
    """0 = every sample loads; 1 = ``--check`` found bad samples (a gate for scripts); 2 = usage or
    a data set that cannot be opened at all."""
    p = argparse.ArgumentParser(description="Dataset utilities.")
    p.add_argument("--write-val200", metavar="PATH", help="(re)write the seeded Val200 id list")
    p.add_argument(
        "--check",
        metavar="ROOT",
        help="load every sample of ROOT once and report bad files; exit status 1 if any is bad",
    )
    p.add_argument(
        "--crop-size",
        type=int,
        default=1024,
        help="the training crop the check loads with (default 1024, the paper's): a smaller image is bad",
    )
    a = p.parse_args(argv)
    if not (a.write_val200 or a.check):
        p.print_help(sys.stderr)
        return 2
    if a.write_val200:
        write_val200(a.write_val200)
    if not a.check:
        return 0
    from tqdm import tqdm

    try:
        dm = BokehDataModule(a.check, crop_size=a.crop_size, num_workers=0)
        dm.setup()
    except (FileNotFoundError, ValueError, BadSampleError) as e:
        print(f"--check {a.check}: {e}", file=sys.stderr)
        return 2
    bad = 0
    for ds in (dm.train_set, dm.val_set):
        if ds is None:
            continue
        for i in tqdm(range(len(ds)), desc=str(ds.layout.original)):
            try:
                ds[i]
            except BadSampleError as e:
                bad += 1
                tqdm.write(str(e))
    print(f"{bad} bad samples")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(_main())
