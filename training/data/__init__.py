"""Bokeh pairs (all-in-focus image, depth, bokeh ground truth) for training, evaluation and export.

Bokeh-Loss GAN (Lee et al., AIM 2022, ``shared/papers/bokeh-loss-gan.md``) trains on EBB! with
the generator conditioned on a DPT disparity map (§3.2), random 1024×1024 crops with flips (§4.1)
and validates on a hand-pruned hold-out of 200 images (Val200). One module per concept:

* ``io.py``: reading and writing one file (8-bit RGB photos, 8/16-bit depth maps), the checks a
  training pair's files must pass, :class:`BadSampleError` naming the file.
* ``layouts.py``: where a data set's files live (split folder, AIM 2020 and PyNET EBB!), sample
  ids and their order, per-image lens CSVs. Every reader of a data folder goes through it.
* ``splits.py``: id lists, Val200/Val294, the train/validation split of a root and the split
  ``python -m eval --split`` evaluates.
* ``dataset.py``: :class:`BokehPairs`, one split's (image, depth, target) triples, cropped and flipped.
* ``datamodule.py``: :class:`BokehDataModule`, the loaders the stage YAMLs configure.
* ``cli.py``: ``python -m training.data --check ROOT`` / ``--write-val200 PATH``.

The public names are re-exported here: ``from training.data import BokehPairs`` and the YAMLs'
``class_path: training.data.BokehDataModule`` do not depend on which module holds them.
"""

from training.data.datamodule import BokehDataModule
from training.data.dataset import SIZE_MULTIPLE, BokehPairs, lens_tensor, read_pair, read_pair_depth
from training.data.io import (
    MAX_SAMPLE_MPX,
    BadSampleError,
    array_to_tensor,
    check_depth_size,
    load_rgb,
    read_depth,
    read_image,
    write_depth_png,
)
from training.data.layouts import (
    IMAGE_EXTS,
    FolderLayout,
    detect_layout,
    has_split_folders,
    id_key,
    image_files,
    index_folder,
    is_split_folder,
    missing_root_message,
    read_lens_csv,
    split_folder_layout,
)
from training.data.splits import (
    EVAL_SPLITS,
    SPLITS_DIR,
    VAL200_HEADER,
    VAL200_POOL,
    VAL200_SEED,
    VAL294_IDS,
    SplitData,
    make_val200_ids,
    read_id_list,
    resolve_split,
    split_ids,
    train_val_split,
    write_val200,
)

__all__ = [
    "BadSampleError",
    "BokehDataModule",
    "BokehPairs",
    "EVAL_SPLITS",
    "FolderLayout",
    "IMAGE_EXTS",
    "MAX_SAMPLE_MPX",
    "SIZE_MULTIPLE",
    "SPLITS_DIR",
    "SplitData",
    "VAL200_HEADER",
    "VAL200_POOL",
    "VAL200_SEED",
    "VAL294_IDS",
    "array_to_tensor",
    "check_depth_size",
    "detect_layout",
    "has_split_folders",
    "id_key",
    "image_files",
    "index_folder",
    "is_split_folder",
    "lens_tensor",
    "load_rgb",
    "make_val200_ids",
    "missing_root_message",
    "read_depth",
    "read_id_list",
    "read_image",
    "read_lens_csv",
    "read_pair",
    "read_pair_depth",
    "resolve_split",
    "split_folder_layout",
    "split_ids",
    "train_val_split",
    "write_depth_png",
    "write_val200",
]
