"""What a throughput run trains on: pinned random batches in memory (the GPU step alone), or a
data folder through the real ``training.data.BokehDataModule`` (the step plus its loader).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from training.data import BokehDataModule, detect_layout, has_split_folders

__all__ = ["InMemoryBatches", "InMemoryDataModule", "make_datamodule"]


class InMemoryBatches(Dataset):
    """Pre-collated random batches already in (pinned) memory: the GPU step without any decoding.

    Two batches alternate, so the throughput does not depend on a loader at all; each is pinned
    when CUDA is present, so Lightning's ``non_blocking`` copy is truly asynchronous, as it is for
    a ``pin_memory=True`` DataLoader.
    """

    def __init__(self, batches: int, batch_size: int, crop: int, pin: bool, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.length = batches
        self.pool = []
        for k in range(2):
            image = torch.rand(batch_size, 3, crop, crop, generator=g)
            # A smooth disparity with a near blob, so the depth-weighted losses see a real mask.
            coarse = torch.rand(batch_size, 1, 4, 4, generator=g)
            depth = F.interpolate(coarse, size=(crop, crop), mode="bilinear", align_corners=False)
            target = F.avg_pool2d(image, 5, stride=1, padding=2)  # stand-in bokeh
            batch = {"image": image, "depth": depth, "target": target}
            if pin:
                batch = {n: t.pin_memory() for n, t in batch.items()}
            batch["id"] = [f"mem{k}_{i}" for i in range(batch_size)]
            self.pool.append(batch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.pool[index % 2]


class InMemoryDataModule(L.LightningDataModule):
    def __init__(self, batches: int, batch_size: int, crop: int, seed: int = 0) -> None:
        super().__init__()
        self.dataset = InMemoryBatches(batches, batch_size, crop, pin=torch.cuda.is_available(), seed=seed)

    def train_dataloader(self) -> DataLoader:
        # batch_size=None: the dataset yields whole batches; no workers, nothing to decode.
        return DataLoader(self.dataset, batch_size=None, shuffle=False, num_workers=0)


def _one_id_val_list(root: Path, tmp: Path) -> str:
    """A one-id validation list for a folder without a usable validation split.

    The benchmark never validates, but ``BokehDataModule`` refuses a split with no validation
    ids (a small EBB!-layout folder holds none of Val200/Val294), so one id is set aside.
    """
    ids = detect_layout(root).ids()
    if len(ids) < 2:
        raise ValueError(f"{root}: needs at least 2 samples (one is set aside as the unused validation split)")
    path = tmp / "benchmark_val_ids.txt"
    path.write_text(ids[-1] + "\n")
    return str(path)


def make_datamodule(
    root: str | os.PathLike,
    crop: int,
    batch_size: int,
    num_workers: int,
    tmp: Path,
    seed: int = 0,
    lens: bool = False,
    cache: bool = False,
    max_train_samples: int | None = None,
) -> BokehDataModule:
    """``BokehDataModule`` on ``root`` as training uses it (random crops, flips, pinned memory)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(
            f"--data {root} does not exist; use --data synthetic-in-memory, a synthetic data set "
            "(python -m training.synth) or --make-fake-ebb N DIR for EBB!-size JPEGs"
        )
    val_split = "auto" if has_split_folders(root) else _one_id_val_list(root, tmp)
    return BokehDataModule(
        str(root),
        val_split=val_split,
        crop_size=crop,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
        lens=lens,
        cache=cache,
        max_train_samples=max_train_samples,
    )
