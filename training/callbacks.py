"""Lightning callbacks that ``training.module.BokehGAN`` adds to every fit (``configure_callbacks``)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint

from training.checkpoint import SAFETENSORS_NAME, load_generator, save_generator_safetensors


class GeneratorSafetensors(Checkpoint):
    """Keeps ``model.safetensors`` beside the best checkpoint: the generator alone, with its
    architecture and training config, loadable without unpickling (``load_generator`` accepts it).

    It mirrors the file the best ``ModelCheckpoint`` wrote (the first one with a ``monitor``, else
    the first one) each time that file changes, by reading it back, so the two always hold the same
    weights. A ``Checkpoint`` subclass because Lightning runs checkpoint callbacks last, in list
    order: appended after the trainer's ``ModelCheckpoint``s, its hooks see the file they just wrote.
    """

    def __init__(self) -> None:
        self._mirrored: tuple[str, int, int] | None = None  # (path, mtime_ns, size) last written from

    @staticmethod
    def _best_callback(trainer: L.Trainer) -> ModelCheckpoint | None:
        found = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
        return next((c for c in found if c.monitor), found[0] if found else None)

    def _sync(self, trainer: L.Trainer) -> None:
        best = self._best_callback(trainer)
        if best is None or not best.best_model_path or not trainer.is_global_zero:
            return
        ckpt_path = Path(best.best_model_path)
        try:
            st = os.stat(ckpt_path)
        except OSError:  # not written yet, or on a remote filesystem
            return
        seen = (str(ckpt_path), st.st_mtime_ns, st.st_size)
        if seen == self._mirrored:
            return
        ckpt = load_generator(ckpt_path)
        save_generator_safetensors(ckpt_path.with_name(SAFETENSORS_NAME), ckpt.generator, ckpt.arch, ckpt.config,
                                   source={"checkpoint": ckpt_path.name, "checkpoint_sha256": ckpt.sha256})
        self._mirrored = seen

    # ModelCheckpoint saves in one of these two, depending on save_on_train_epoch_end.
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(trainer)
