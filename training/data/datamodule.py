"""``BokehDataModule``: the training and validation loaders Lightning's CLI builds from a stage YAML
(``data:`` section, ``class_path: training.data.BokehDataModule``).

Which ids train and which validate is decided in ``training.data.splits``; each split is a
``training.data.BokehPairs``.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from training.data.dataset import BokehPairs
from training.data.splits import train_val_split

__all__ = ["BokehDataModule"]

log = logging.getLogger(__name__)


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

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        tl, train_ids, vl, val_ids = train_val_split(
            self.root, self.val_split, self.exclude_list, self.max_train_samples, self.max_val_samples
        )
        lens = {"lens": self.lens, "lens_csv": self.lens_csv, "cache": self.cache}
        self.train_set = BokehPairs(tl, train_ids, self.crop_size, self.flip, self.on_bad_file, **lens)
        self.val_set = BokehPairs(vl, val_ids, None, False, self.on_bad_file, center_crop=self.val_crop, **lens)

    # -- loaders
    def _loader(self, dataset: Dataset, batch_size: int, **kwargs: Any) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        assert self.train_set is not None
        generator = torch.Generator().manual_seed(self.seed)
        return self._loader(self.train_set, self.batch_size, shuffle=True, drop_last=True, generator=generator)

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        assert self.val_set is not None
        # Full images differ in size (EBB!: 1536 or 1600 wide), so they cannot share a batch.
        return self._loader(self.val_set, self.val_batch_size, shuffle=False)

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
