"""Callbacks that the training tests add to a `python -m training fit` run in a subprocess.

``os._exit`` skips every cleanup handler, like a SIGKILL or a pre-empted node: only what was on
disk before the kill survives.
"""

import os
import time

from lightning.pytorch.callbacks import Callback

try:
    from training.checkpoint_io import AtomicCheckpointIO as _BaseIO
except ImportError:  # a tree from before it (to show what the DDP tests catch there)
    from lightning.pytorch.plugins.io import TorchCheckpointIO as _BaseIO


class KillAtStep(Callback):
    """Hard-kills the process at ``step``; with ``only_rank``, only that DDP rank (a ``kill -9`` of it)."""

    def __init__(self, step: int = 3, only_rank: int | None = None) -> None:
        self.step = step
        self.only_rank = only_rank

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and self.only_rank in (None, trainer.global_rank):
            os._exit(137)


class RecordStartStep(Callback):
    """Writes the global step at which fitting (re)starts and ends to $BOKEH_STEP_LOG (rank 0 only)."""

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            with open(os.environ["BOKEH_STEP_LOG"], "a") as f:
                f.write(f"start {trainer.global_step}\n")

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            with open(os.environ["BOKEH_STEP_LOG"], "a") as f:
                f.write(f"end {trainer.global_step}\n")


class RecordStartGenerator(Callback):
    """Keeps a copy of the generator's weights as fitting starts, before the first step: what a
    stage-2 run begins from (read back in the same process, from ``trainer.callbacks``)."""

    def __init__(self) -> None:
        self.weights: dict | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.weights = {k: v.detach().clone() for k, v in pl_module.generator.state_dict().items()}


class RecordPids(Callback):
    """Appends "<global rank> <pid>" to $BOKEH_PIDS when fitting starts, on every rank."""

    def on_train_start(self, trainer, pl_module) -> None:
        with open(os.environ["BOKEH_PIDS"], "a") as f:
            f.write(f"{trainer.global_rank} {os.getpid()}\n")


class RecordRandom(Callback):
    """Appends "<global rank> <first torch.rand() of training>" to $BOKEH_RANDOM on every rank: the
    stream the crops, flips and gradient-penalty mixes come from."""

    def on_train_start(self, trainer, pl_module) -> None:
        import torch

        state = torch.get_rng_state()
        value = torch.rand(()).item()
        torch.set_rng_state(state)  # observe without changing what the run draws
        with open(os.environ["BOKEH_RANDOM"], "a") as f:
            f.write(f"{trainer.global_rank} {value!r}\n")


class RecordProgress(Callback):
    """Rewrites $BOKEH_PROGRESS with "<pid> <global_step>" after every batch (rank 0), for a test that
    must send a signal once a run is under way."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero:
            path = os.environ["BOKEH_PROGRESS"]
            with open(path + ".tmp", "w") as f:
                f.write(f"{os.getpid()} {trainer.global_step}\n")
            os.replace(path + ".tmp", path)


class StallRank(Callback):
    """Rank ``rank`` stops taking part at ``step`` (sleeps), so the other ranks block in their next
    collective: the state a DDP run is in when one rank hangs."""

    def __init__(self, step: int = 2, rank: int = 1) -> None:
        self.step = step
        self.rank = rank

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and trainer.global_rank == self.rank:
            while True:
                time.sleep(1)


class ContentSeededGP(Callback):
    """The gradient penalty's per-image mix ε from the image itself instead of the RNG.

    One process with batch 4 draws four ε from one stream; two DDP ranks with batch 2 each draw two
    from their own. With ε a function of the image, both runs mix each image alike, so their
    weights can be compared (tests/test_ddp.py).
    """

    def setup(self, trainer, pl_module, stage) -> None:
        # Patched where it is called: training.module imports the function at its top.
        import training.module as module

        original = module.gradient_penalty

        def content_seeded(discriminator, real, fake, condition, weight=1.0, eps=None):
            eps = (real.detach().double().flatten(1).sum(1) * 7.31).frac().float()
            return original(discriminator, real, fake, condition, weight=weight, eps=eps)

        module.gradient_penalty = content_seeded


class LoggingCheckpointIO(_BaseIO):
    """The default CheckpointIO, appending "<pid> <LOCAL_RANK> <file name> <global_step>" to
    $BOKEH_SAVE_LOG per save."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        super().save_checkpoint(checkpoint, path, storage_options)
        with open(os.environ["BOKEH_SAVE_LOG"], "a") as f:
            f.write(
                f"{os.getpid()} {os.environ.get('LOCAL_RANK', '0')} {os.path.basename(path)} "
                f"{checkpoint['global_step']}\n"
            )
