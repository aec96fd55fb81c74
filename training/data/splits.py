"""Which ids train and which validate: id lists, Val200/Val294, and the split of a data set root.

Bokeh-Loss GAN (Lee et al., AIM 2022, ``shared/papers/bokeh-loss-gan.md``) validates on a
hand-pruned hold-out of 200 EBB! images (Val200, §4.1); the literature's Val294 is ids 4400–4693.
Training (:func:`train_val_split`, used by ``BokehDataModule``) and evaluation
(:func:`resolve_split`, used by ``python -m eval``) resolve a split here, from the folder layouts
of ``training.data.layouts``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from training.data.dataset import BokehPairs
from training.data.layouts import (
    FolderLayout,
    detect_layout,
    has_split_folders,
    is_split_folder,
    missing_root_message,
)

__all__ = [
    "SPLITS_DIR",
    "VAL200_SEED",
    "VAL200_POOL",
    "VAL294_IDS",
    "VAL200_HEADER",
    "EVAL_SPLITS",
    "read_id_list",
    "make_val200_ids",
    "write_val200",
    "split_ids",
    "train_val_split",
    "SplitData",
    "resolve_split",
]

SPLITS_DIR = Path(__file__).resolve().parents[1] / "splits"  # training/splits/
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
# The splits evaluation knows by name; any other name is a split folder under the data root.
EVAL_SPLITS = ("val", "val200", "val294")


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


def train_val_split(
    root: str | os.PathLike,
    val_split: str = "auto",
    exclude_list: str | None = None,
    max_train_samples: int | None = None,
    max_val_samples: int | None = None,
) -> tuple[FolderLayout, list[str], FolderLayout, list[str]]:
    """(training layout, training ids, validation layout, validation ids) of a data set root.

    The arguments are ``BokehDataModule``'s, which documents them. "auto" takes the ``val/``
    folder when ``root/train`` and ``root/val`` are split folders (and ``train/`` is not PyNET's),
    else Val200; an id-list split takes its validation ids out of one layout and trains on the rest.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(missing_root_message(root))
    excluded = set(read_id_list(exclude_list)) if exclude_list else set()
    folders = has_split_folders(root)
    mode = val_split
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
    if max_train_samples is not None:
        train_ids = train_ids[:max_train_samples]
    if max_val_samples is not None:
        val_ids = val_ids[:max_val_samples]
    if not train_ids:
        raise ValueError(f"{root}: no training samples (val_split={val_split!r}, exclude_list={exclude_list})")
    if not val_ids:
        raise ValueError(
            f"{root}: no validation samples for val_split={val_split!r} (are the split's ids "
            "in this dataset? a small data set may hold none of Val200/Val294)"
        )
    return tl, train_ids, vl, val_ids


@dataclass
class SplitData:
    """The images of one evaluation split: a layout and the ids to evaluate."""

    name: str
    layout: FolderLayout
    ids: list[str]
    lens_dir: Path | None = None

    def dataset(self) -> BokehPairs:
        # crop_size=None: full image, centre-cropped to multiples of 16 (the generator's need).
        return BokehPairs(self.layout, self.ids, crop_size=None, flip=False, on_bad_file="raise")


def resolve_split(data_dir: str | os.PathLike, split: str) -> SplitData:
    """Find the images of ``split`` under ``data_dir`` (``python -m eval --split``).

    * ``data_dir/<split>/`` is a split folder (``original/``, ``bokeh/``, ``depth/``): all its ids.
      This is the synthetic ``val`` split, or a user-made ``val294/`` folder.
    * ``val``: ``data_dir`` itself may also be one split folder.
    * ``val200`` / ``val294`` on an EBB! root (AIM 2020 ``Training/`` or PyNET ``train/``): the ids
      of ``training/splits/val200.txt`` or 4400–4693; every one must be present.
    """
    root = Path(data_dir)
    if not root.exists():
        raise FileNotFoundError(f"data directory {root} does not exist")
    sub = root / split
    if is_split_folder(sub):
        layout = detect_layout(sub)
        ids = layout.ids()
    elif split == "val" and is_split_folder(root) and not (root / "original_depth").is_dir():
        layout = detect_layout(root)
        ids = layout.ids()
    elif split in ("val200", "val294"):
        try:
            layout = detect_layout(root)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"--split {split}: no {sub} split folder, and {e}") from e
        if layout.kind == "split":
            raise FileNotFoundError(
                f"{root}: no {split}/ split folder and not an EBB! root (Training/ or train/ with "
                f"original_depth/), so the {split} ids cannot be picked"
            )
        present = set(layout.ids())
        wanted = split_ids(split)
        missing = [i for i in wanted if i not in present]
        if missing:
            raise FileNotFoundError(
                f"{layout.original}: {len(missing)} of the {len(wanted)} {split} ids are missing "
                f"(e.g. {', '.join(missing[:5])}); is this the full EBB! training set?"
            )
        ids = list(wanted)
    else:
        raise FileNotFoundError(
            f"{sub} is not a split folder (needs original/ and bokeh/ and depth/); --split is one of "
            f"{', '.join(EVAL_SPLITS)} or the name of a split folder under {root}"
        )
    if not ids:
        raise ValueError(f"{layout.original}: no images (.png/.jpg) to evaluate")
    if not layout.depth.is_dir():
        raise FileNotFoundError(
            f"{layout.depth}: depth maps missing; write them with `python -m training.depth --data {root}`"
        )
    lens_dir = layout.original.parent / "lens"
    return SplitData(split, layout, ids, lens_dir if lens_dir.is_dir() else None)
