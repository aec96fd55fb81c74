"""Training entry point: the Lightning CLI over ``BokehGAN`` and ``BokehDataModule``.

    python -m training fit --config training/configs/stage1.yaml
    python -m training fit --config training/configs/stage2.yaml
    python -m training fit --config training/configs/stage1.yaml --print_config
    python -m training fit --config training/configs/stage1.yaml --ckpt_path runs/stage1/checkpoints/last.ckpt

Every Lightning trainer flag works as usual (``--trainer.precision bf16-mixed``,
``--trainer.devices 8 --trainer.strategy ddp``, ``--trainer.num_nodes 2``; docs/gpu_training.md);
several ``--config`` files compose, later ones overriding earlier ones
(``--config training/configs/quick.yaml``).

What this adds to Lightning's CLI:

* **One run per run folder** (``training.run_folder``): a fresh fit into a folder that holds a run
  stops with one line; ``--ckpt_path`` resumes it in place (``metrics.csv`` appended);
  ``--overwrite true`` deletes it and starts again.
* **``--ckpt_path`` resumes; it does not reconfigure.** Lightning's CLI replaces every ``model.*``
  value of the YAML and the command line with the checkpoint's; here the config stays as given and a
  model setting that differs from the checkpoint's is an error naming it
  (``training.resume.check_resumed_hparams``).
* **Atomic checkpoints**: ``trainer.plugins`` defaults to ``training.checkpoint_io.AtomicCheckpointIO``
  (add plugins with ``--trainer.plugins+=...`` to keep it).
* **DDP for stage 2**: ``--trainer.strategy ddp`` (or ``ddp_spawn``) becomes its
  ``find_unused_parameters=True`` variant when the critics train (manual optimisation: each backward
  reaches only the generator or only the critics).
* Bad input (a run folder in use, a mismatched, unreadable or untrusted checkpoint, a bad training
  sample, a missing file) ends the command with one ``error:`` line and exit status 2, not a traceback.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path
from typing import Any


def _die_with_parent() -> None:
    """A rank that a launcher started (LOCAL_RANK set) ends when its parent ends.

    Lightning's launcher starts ranks 1.. as children of rank 0. After a ``kill -9`` of rank 0, rank 1
    of a gloo run only ended when its next collective found the connection reset (29 s on the loaded
    2-core build machine, with a "Connection reset by peer" traceback); NCCL does not see a dead peer
    that way and waits for its watchdog's timeout, holding the GPU. With this, rank 1 was gone 0.5 s
    after the kill. Linux only; elsewhere a no-op. Called before the heavy imports, so that the
    parent cannot die unnoticed while they load.
    """
    if "LOCAL_RANK" not in os.environ or not sys.platform.startswith("linux"):
        return

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died between the two lines: the signal will not come
        os._exit(1)


if __name__ == "__main__":
    _die_with_parent()

# The heavy imports come after _die_with_parent (its docstring says why): E402 is expected here.
import yaml  # noqa: E402
from lightning.pytorch.cli import LightningCLI  # noqa: E402

from training.checkpoint import CheckpointLoadError  # noqa: E402
from training.checkpoint_io import CheckpointFileError, check_checkpoint_file  # noqa: E402
from training.data import BadSampleError, BokehDataModule  # noqa: E402
from training.module import BokehGAN  # noqa: E402
from training.resume import ResumeMismatchError  # noqa: E402
from training.run_folder import RunFolderError, clear_run, existing_run, refuse_message, run_dirs  # noqa: E402

ATOMIC_IO = {"class_path": "training.checkpoint_io.AtomicCheckpointIO"}
# Strategy names whose DDP wrapper must look for unused parameters when the critics train.
_FIND_UNUSED = {"ddp": "ddp_find_unused_parameters_true", "ddp_spawn": "ddp_spawn_find_unused_parameters_true"}


class BokehCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="Start a fresh run even if the run folder holds one: delete that run's checkpoints, "
            "metrics.csv, samples and config first (training/run_folder.py). Never saved in config.yaml.",
        )
        parser.set_defaults({"trainer.plugins": [ATOMIC_IO]})

    def _parse_ckpt_path(self) -> None:
        # Lightning's CLI loads --ckpt_path here and overwrites the config's model.* values with the
        # checkpoint's hyperparameters, silently; it also reads the file with a bare
        # torch.load, so a truncated last.ckpt ended in an EOFError. For fit both are left to the
        # fit: AtomicCheckpointIO names an unreadable file, and BokehGAN.on_load_checkpoint refuses a
        # checkpoint whose model settings differ from the config's. validate/test/predict keep
        # Lightning's behaviour (evaluate the checkpoint as it was trained), after the file check.

        subcommand = self.config.get("subcommand")
        if subcommand == "fit":
            return
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and Path(ckpt_path).is_file():
            check_checkpoint_file(ckpt_path)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        if self.subcommand != "fit":
            return
        cfg = self.config[self.subcommand]
        strategy = cfg.trainer.get("strategy")
        if isinstance(strategy, str) and strategy in _FIND_UNUSED and (cfg.model.get("adv_weight") or 0) > 0:
            # Stage 2 steps the critics and the generator with separate backward passes; in each, the
            # other network's parameters get no gradient, and DDP without find_unused_parameters
            # then waits for them and fails at the next step ("Expected to have finished reduction").
            cfg.trainer.strategy = _FIND_UNUSED[strategy]

    def before_fit(self) -> None:
        cfg = self.config[self.subcommand]
        overwrite = bool(cfg.get("overwrite"))
        # Never saved as true: a config.yaml that says overwrite would delete its own run when reused.
        cfg.overwrite = False
        if cfg.get("ckpt_path") is None and _is_rank_zero():
            _claim_run_folder(self.trainer, overwrite)
        # Keep the resolved config inside every checkpoint, so that an exported model can say
        # exactly how it was trained (the YAML next to the checkpoints is written by
        # SaveConfigCallback too).
        parser = self._parser(self.subcommand)
        resolved = yaml.safe_load(parser.dump(cfg, skip_none=False, skip_check=True))
        resolved.pop("config", None)
        self.model.training_config = resolved


def _is_rank_zero() -> bool:
    """Rank 0 of the whole job, read from the environment before the process group exists.

    torchrun sets RANK on every rank; Lightning's own launcher starts ranks 1.. of a node with
    LOCAL_RANK set and takes NODE_RANK from the user; SLURM sets SLURM_PROCID (also in an
    interactive allocation where Lightning launches, hence LOCAL_RANK first, as Lightning does).
    Only rank 0 looks at and clears the run folder.
    """
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"]) == 0
    if int(env.get("LOCAL_RANK", 0)) != 0:
        return False
    if "SLURM_PROCID" in env:
        return int(env["SLURM_PROCID"]) == 0
    return int(env.get("NODE_RANK", 0)) == 0


def _claim_run_folder(trainer: Any, overwrite: bool) -> None:
    run, ckpt_dirs = run_dirs(trainer)
    found = existing_run(run, ckpt_dirs)
    if not found:
        return
    if not overwrite:
        raise RunFolderError(refuse_message(run, found))
    removed = clear_run(run, ckpt_dirs)
    print(f"--overwrite: deleted the previous run in {run} ({', '.join(p.name for p in removed)})", file=sys.stderr)


def main(args: list[str] | None = None) -> BokehCLI:
    return BokehCLI(
        BokehGAN,
        BokehDataModule,
        # Re-running or resuming a stage rewrites its config.yaml instead of refusing to start (the
        # run-folder check above decides whether a fresh run may use the folder at all).
        save_config_kwargs={"overwrite": True},
        args=args,
    )


def _run_command() -> int:
    # The user's own files and folders: each message names the file and what to do, and a traceback
    # would only bury it. FileNotFoundError: a missing checkpoint, data root or weights file (the
    # VGG19 loader says where to put it). Anything else is a bug and keeps its traceback.
    user_errors = (
        RunFolderError,
        ResumeMismatchError,
        CheckpointFileError,
        CheckpointLoadError,
        BadSampleError,
        FileNotFoundError,
    )
    try:
        main()  # LightningCLI reads sys.argv itself; passing it as args too makes it warn on every run
    except user_errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_run_command())
