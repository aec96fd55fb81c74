"""Training entry point: the Lightning CLI over ``BokehGAN`` and ``BokehDataModule``.

    python -m training fit --config training/configs/stage1.yaml
    python -m training fit --config training/configs/stage2.yaml
    python -m training fit --config training/configs/stage1.yaml --print_config
    python -m training fit --config training/configs/stage1.yaml --ckpt_path runs/stage1/checkpoints/last.ckpt

Every Lightning trainer flag works as usual (``--trainer.precision bf16-mixed``,
``--trainer.devices 8 --trainer.strategy ddp``, ``--trainer.num_nodes 2``); several ``--config``
files compose, later ones overriding earlier ones (``--config training/configs/quick.yaml``).
"""

from __future__ import annotations

import yaml
from lightning.pytorch.cli import LightningCLI

from training.data import BokehDataModule
from training.module import BokehGAN


class BokehCLI(LightningCLI):
    def before_fit(self) -> None:
        # Keep the resolved config inside every checkpoint, so that an exported model can say
        # exactly how it was trained (the YAML next to the checkpoints is written by
        # SaveConfigCallback too).
        parser = self._parser(self.subcommand)
        resolved = yaml.safe_load(parser.dump(self.config[self.subcommand], skip_none=False, skip_check=True))
        resolved.pop("config", None)
        self.model.training_config = resolved


def main(args: list[str] | None = None) -> BokehCLI:
    return BokehCLI(
        BokehGAN,
        BokehDataModule,
        # Re-running or resuming a stage rewrites its config.yaml instead of refusing to start.
        save_config_kwargs={"overwrite": True},
        args=args,
    )


if __name__ == "__main__":
    main()  # LightningCLI reads sys.argv itself; passing it as args too makes it warn on every run
