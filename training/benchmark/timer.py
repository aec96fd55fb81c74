"""``StepTimer``: per-batch step time, loader wait and peak GPU memory of a real training run.

What it measures is described in ``training/benchmark/__init__.py``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["StepTimer"]


class StepTimer(Callback):
    """Per-batch step time, loader wait and peak GPU memory after ``warmup`` batches.

    Counts batches (``on_train_batch_end`` calls), not ``global_step``: under manual optimisation
    with two optimisers a batch is two global steps. Stops the trainer after ``warmup + steps``.
    """

    def __init__(self, warmup: int, steps: int) -> None:
        super().__init__()
        if warmup < 1 or steps < 1:
            # One warm-up batch at least: the first batch has no previous batch end to time from.
            raise ValueError(f"need warmup >= 1 and steps >= 1, got warmup={warmup}, steps={steps}")
        self.warmup = warmup
        self.steps = steps
        self.batches = 0
        self.waits: list[float] = []  # seconds, per measured batch
        self.computes: list[float] = []
        self.periods: list[float] = []
        self.batch_sizes: list[int] = []
        self.peak_memory_bytes: int | None = None
        self.warmup_seconds = 0.0
        self._cuda = False
        self._t_fit_start = 0.0
        self._t_prev_end: float | None = None
        self._t_start = 0.0

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._cuda = pl_module.device.type == "cuda"
        self._t_fit_start = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._t_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._sync()
        now = time.perf_counter()
        self.batches += 1
        if self.batches > self.warmup and self._t_prev_end is not None:
            self.waits.append(self._t_start - self._t_prev_end)
            self.computes.append(now - self._t_start)
            self.periods.append(now - self._t_prev_end)
            self.batch_sizes.append(int(batch["image"].shape[0]))
        if self.batches == self.warmup:
            self.warmup_seconds = now - self._t_fit_start
            if self._cuda:  # the peak of the steady state, not of compilation
                torch.cuda.reset_peak_memory_stats()
        if self.batches == self.warmup + self.steps:
            if self._cuda:
                self.peak_memory_bytes = int(torch.cuda.max_memory_allocated())
            trainer.should_stop = True
        self._t_prev_end = now

    # -- summaries
    @property
    def measured(self) -> int:
        return len(self.periods)

    def images_per_s(self) -> float:
        return sum(self.batch_sizes) / sum(self.periods)

    def median_step_s(self) -> float:
        return statistics.median(self.periods)

    def loader_wait_fraction(self) -> float:
        return sum(self.waits) / sum(self.periods)
