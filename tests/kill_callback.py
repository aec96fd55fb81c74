"""A callback that hard-kills the training process at a given step (for the resume test).

``os._exit`` skips every cleanup handler, like a SIGKILL or a pre-empted node: only what was on
disk before the kill survives.
"""

import os

from lightning.pytorch.callbacks import Callback


class KillAtStep(Callback):
    def __init__(self, step: int = 3) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os._exit(137)


class RecordStartStep(Callback):
    """Writes the global step at which fitting (re)starts and ends to $BOKEH_STEP_LOG."""

    def on_train_start(self, trainer, pl_module) -> None:
        with open(os.environ["BOKEH_STEP_LOG"], "a") as f:
            f.write(f"start {trainer.global_step}\n")

    def on_train_end(self, trainer, pl_module) -> None:
        with open(os.environ["BOKEH_STEP_LOG"], "a") as f:
            f.write(f"end {trainer.global_step}\n")
