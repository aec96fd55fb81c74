"""Real dataset samples for the export gates and the int8 calibration.

The int8 model is calibrated on photographs and depth maps from the dataset, not on random noise:
activation ranges measured on noise are not the ranges the network sees on real photos, and an
int8 model calibrated on them loses most of its precision where it matters. The parity gates use
the same kind of samples so that "within 60 dB of PyTorch" means "on inputs like the real ones".

A split folder holds ``original/<id>.png|jpg`` (all-in-focus RGB) and ``depth/<id>.png``, a 16-bit
grayscale PNG of normalised disparity * 65535 (1 = near); PyNET's 8-bit half-resolution
``original_depth/`` works too. ``bokeh/`` is not needed. Files are found by the training data's
layout rules (``training.data.layouts``) and decoded by its readers (``training.data.read_image``
/ ``read_depth``, which name a bad file); each
sample is then resized to cover the export size and centre-cropped, to match the model's static
input shape.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.data import FolderLayout, index_folder, read_depth, read_image, split_folder_layout
from training.renderers.lens import LensParams, auto_focus

__all__ = ["Sample", "list_sample_ids", "load_sample", "load_samples", "pick_ids"]


@dataclass
class Sample:
    id: str
    image: np.ndarray  # (1, 3, H, W) float32 RGB in [0, 1]
    depth: np.ndarray  # (1, 1, H, W) float32 disparity in [0, 1], 1 = near
    # (1, 3, 1, 1) float32 (d_f, K, dof) for a lens-conditioned model, K in pixels at this size: the
    # scene's lens/<id>.json (K rescaled with the width) or, without one, auto_focus(depth).
    lens: np.ndarray

    def args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``runner(*sample.args())``: a depth-only model ignores the lens."""
        return self.image, self.depth, self.lens


def _layout(split_dir: Path) -> FolderLayout:
    """The split's photo and depth folders, by the training data's layout rules (``depth/``, else
    PyNET's ``original_depth/``); ``bokeh/`` need not exist."""
    layout = split_folder_layout(split_dir)
    if not layout.depth.is_dir():
        raise FileNotFoundError(f"{split_dir}: no depth/ folder (expected depth/<id>.png next to original/)")
    return layout


def list_sample_ids(split_dir: str | Path) -> list[str]:
    """Ids that have both an image in ``original/`` and a depth map, in numeric order."""
    split_dir = Path(split_dir)
    if not (split_dir / "original").is_dir():
        raise FileNotFoundError(f"{split_dir}: not a dataset split folder (no original/ inside)")
    layout = _layout(split_dir)
    ids = layout.ids()
    if not ids:
        raise FileNotFoundError(f"{layout.original}: no .png/.jpg images")
    depth_ids = index_folder(layout.depth)
    missing = [i for i in ids if i not in depth_ids]
    if missing:
        raise FileNotFoundError(f"{layout.depth}: no depth map for image id(s) {missing[:5]}")
    return ids


def _cover_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) → (C, H, W): scale to cover (H, W) keeping the aspect ratio, crop the centre."""
    h, w = x.shape[-2:]
    H, W = size
    scale = max(H / h, W / w)
    if (h, w) != (round(h * scale), round(w * scale)):
        x = F.interpolate(
            x[None],
            size=(max(H, round(h * scale)), max(W, round(w * scale))),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )[0]
    top, left = (x.shape[-2] - H) // 2, (x.shape[-1] - W) // 2
    return x[:, top : top + H, left : left + W]


def load_sample(split_dir: str | Path, sample_id: str, size: tuple[int, int]) -> Sample:
    """Read one image/depth pair at ``size`` = (H, W)."""
    layout = _layout(Path(split_dir))
    image_path, _, depth_path = layout.files(sample_id)  # two files for one id: a BadSampleError naming them
    if not image_path.is_file():
        raise FileNotFoundError(f"{layout.original}: no image with id {sample_id}")
    image = read_image(image_path)  # (3, h, w)
    depth = read_depth(depth_path, size=tuple(image.shape[-2:]))  # (1, h, w)
    h, w = image.shape[-2:]
    image = _cover_crop(image, size).clamp(0.0, 1.0)
    depth = _cover_crop(depth, size).clamp(0.0, 1.0)
    lens_path = layout.lens_file(sample_id)
    if lens_path.is_file():
        p = LensParams.load(lens_path)
        # K is pixels of radius at the file's resolution; _cover_crop scaled the image by this
        p = replace(p, K=p.K * max(size[0] / h, size[1] / w))
    else:
        p = auto_focus(depth)
    lens = p.network_input()
    return Sample(sample_id, image[None].contiguous().numpy(), depth[None].contiguous().numpy(), lens)


def pick_ids(ids: list[str], n: int, exclude: set[str] = frozenset()) -> list[str]:
    """``n`` ids spread evenly over the sorted list (not just the first ones, which in EBB! tend to
    come from the same scene), skipping ``exclude`` when enough others remain."""
    pool = [i for i in ids if i not in exclude] or list(ids)
    if n >= len(pool):
        return pool
    idx = np.linspace(0, len(pool) - 1, n).round().astype(int)
    return [pool[i] for i in idx]


def load_samples(split_dir: str | Path, size: tuple[int, int], ids: list[str]) -> list[Sample]:
    return [load_sample(split_dir, i, size) for i in ids]
