"""``BokehPairs``: the (image, depth, target) triples of one split, cropped and flipped for training.

Bokeh-Loss GAN (Lee et al., AIM 2022, ``shared/papers/bokeh-loss-gan.md``) trains on EBB! with
the generator conditioned on a DPT disparity map (§3.2), with random 1024×1024 crops and flips
(§4.1). Any of the folder layouts of ``training.data.layouts`` reads into the same batch dict:

A batch is ``{"image": (B,3,H,W), "depth": (B,1,H,W), "target": (B,3,H,W), "id": list[str]}``,
float32 in [0, 1], depth as normalised disparity with 1 = near. With ``lens=True`` it also holds
``"lens": (B,3,1,1)`` = (d_f, K, dof) for the lens-conditioned generator, from, in this order: the
synthetic data's ``<split>/lens/<id>.json``, a ``lens_csv`` file (``id,d_f,K[,dof]`` rows), or the
documented auto-focus :func:`training.renderers.lens.auto_focus` on the depth map (EBB! has no
lens values). K is in pixels at the file's resolution, which crops keep.

Images are read with their EXIF orientation applied. Bad input (unreadable/truncated file,
non-RGB or 16-bit image, sizes that differ, a depth map not the image's size (half in layout (c)),
missing depth, two files for one id) raises :class:`BadSampleError` naming the file;
``on_bad_file="skip"`` skips it instead and counts.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from training.data.io import BadSampleError, array_to_tensor, check_depth_size, load_rgb, read_depth
from training.data.layouts import FolderLayout, read_lens_csv
from training.renderers.lens import LensParams, auto_focus

__all__ = ["SIZE_MULTIPLE", "BokehPairs", "lens_tensor", "read_pair", "read_pair_depth"]

log = logging.getLogger(__name__)

# The generator downsamples 4× by 2 (NAFNet encoder), so H and W must be multiples of 16.
SIZE_MULTIPLE = 16


def _center_box(w: int, h: int, cw: int, ch: int) -> tuple[int, int, int, int]:
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def lens_tensor(d_f: float, K: float, dof: float = 0.0) -> torch.Tensor:
    """The generator's lens input for one image: (3, 1, 1) = (d_f, K, dof)."""
    return torch.tensor([d_f, K, dof], dtype=torch.float32).view(3, 1, 1)


def read_pair(img_path: Path, tgt_path: Path) -> tuple[Image.Image, Image.Image]:
    """A training pair's photo and ground truth, both 8-bit RGB and of one size."""
    img = load_rgb(img_path)
    tgt = load_rgb(tgt_path)
    if img.size != tgt.size:
        raise BadSampleError(
            img_path,
            f"size {img.size[0]}x{img.size[1]} differs from its ground truth {tgt_path} ({tgt.size[0]}x{tgt.size[1]})",
        )
    return img, tgt


def read_pair_depth(depth_path: Path, image_hw: tuple[int, int]) -> torch.Tensor:
    """A training pair's depth map (1, H, W) at its image's size ``image_hw``.

    The map must be the image's size, or half of it in PyNET's ``original_depth/`` (upsampled).
    """
    depth = read_depth(depth_path)  # its own size first, for the size rule
    check_depth_size(depth_path, tuple(depth.shape[-2:]), image_hw, depth_path.parent.name == "original_depth")
    return read_depth(depth_path, image_hw, depth=depth)


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
        img, tgt = read_pair(img_path, tgt_path)
        w, h = img.size
        depth = read_pair_depth(depth_path, (h, w))  # (1, H, W)
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
        image = array_to_tensor(img[rows, cols])
        target = array_to_tensor(tgt[rows, cols])
        depth = depth[:, rows, cols].float().contiguous()
        if self.flip and bool(torch.rand(()) < 0.5):
            image, depth, target = image.flip(-1), depth.flip(-1), target.flip(-1)
        sample = {"image": image, "depth": depth, "target": target, "id": sid}
        if lens is not None:
            sample["lens"] = lens
        return sample
