"""One run per run folder: what a fresh fit, a resume and ``--overwrite`` do to ``runs/<name>/``.

The stage configs write to a fixed folder (``runs/stage1/``: ``config.yaml``, ``metrics.csv``,
``samples/``, ``checkpoints/{best,last}.ckpt``, ``checkpoints/model.safetensors``), so that stage 2,
export and the README can name ``runs/stage1/checkpoints/best.ckpt``. That folder holds one run's
history:

* **A fresh fit** (no ``--ckpt_path``) into a folder that already holds a run (a checkpoint or a
  ``metrics.csv`` with rows) stops before training with one line that says how to go on. Before,
  it overwrote ``best.ckpt`` with a worse one, wrote ``last-v1.ckpt`` beside the old ``last.ckpt``
  (so the README's resume command resumed the old run) and deleted ``metrics.csv``.
* **A resume** (``--ckpt_path``) continues the run in place: ``metrics.csv`` keeps its rows and the
  resumed run appends to them (``AppendingCSVLogger``). Rows the killed run logged after its last
  checkpoint are dropped: the resumed run trains those steps again and logs them anew.
* **``--overwrite true``** deletes the previous run's outputs in that folder (the checkpoints
  folder, ``metrics.csv``, ``hparams.yaml``, ``config.yaml``, ``samples/``, TensorBoard event files)
  and starts a fresh run. Only the listed outputs: anything else in the folder is left alone.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from common.io import atomic_write

__all__ = ["AppendingCSVLogger", "RunFolderError", "clear_run", "existing_run", "run_dirs"]

METRICS = "metrics.csv"


class RunFolderError(RuntimeError):
    """A fresh fit would write into a folder that holds another run."""


def run_dirs(trainer: Any) -> tuple[Path, list[Path]]:
    """The run folder and the checkpoint folders a trainer will write, resolved as Lightning does.

    ``ModelCheckpoint`` without a ``dirpath`` writes to ``<logger save_dir>/<name>/<version>/checkpoints``
    (``<default_root_dir>/checkpoints`` without a logger). Reads no collective and creates nothing.
    """

    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None:
        run = Path(trainer.default_root_dir)
    elif getattr(logger, "log_dir", None):
        run = Path(logger.log_dir)
    else:
        run = Path(logger.save_dir or trainer.default_root_dir)
    ckpt_dirs = []
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint):
            d = Path(cb.dirpath) if cb.dirpath else run / "checkpoints"
            if d not in ckpt_dirs:
                ckpt_dirs.append(d)
    return run, ckpt_dirs


def _metrics_rows(path: Path) -> int:
    try:
        with open(path, newline="") as f:
            return sum(1 for _ in csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return 1 if path.is_file() and path.stat().st_size else 0


def existing_run(run: Path, ckpt_dirs: Iterable[Path]) -> list[Path]:
    """The files that show a run already used this folder: checkpoints and a metrics.csv with rows."""
    found = [p for d in ckpt_dirs if d.is_dir() for p in sorted(d.glob("*.ckpt"))]
    metrics = run / METRICS
    if metrics.is_file() and _metrics_rows(metrics):
        found.append(metrics)
    return found


def refuse_message(run: Path, found: list[Path]) -> str:
    lasts = [p for p in found if p.name.startswith("last") and p.suffix == ".ckpt"]
    resume = f"resume it with --ckpt_path {lasts[0]}, " if lasts else ""
    names = ", ".join(str(p.relative_to(run)) if p.is_relative_to(run) else str(p) for p in found[:4])
    more = f" and {len(found) - 4} more" if len(found) > 4 else ""
    return (
        f"{run} already holds a run ({names}{more}): {resume}train into another folder with "
        f"--trainer.logger.init_args.name NAME, or pass --overwrite true to delete that run and start again"
    )


def clear_run(run: Path, ckpt_dirs: Iterable[Path]) -> list[Path]:
    """Delete a previous run's outputs (the module docstring lists them); returns what was removed."""
    removed = []
    for d in ckpt_dirs:
        if d.is_dir():
            shutil.rmtree(d)
            removed.append(d)
    for name in (METRICS, "hparams.yaml", "config.yaml", "samples"):
        p = run / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
        else:
            continue
        removed.append(p)
    for p in run.glob("events.out.tfevents.*"):
        p.unlink()
        removed.append(p)
    return removed


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, keeping an existing metrics.csv and rewriting it atomically.

    Lightning's writer deletes ``metrics.csv`` when it starts, appends in place, and rewrites the
    file in place when a new column appears, which a kill can leave half written. This one reads the
    old rows once and writes the whole file through ``atomic_write`` on every save (a file of a few
    thousand rows: cheap next to a training step).

    Old rows at or after the first step this run logs are dropped: a resumed run logs on the same
    schedule from its checkpoint on, so those rows are the killed run's record of steps that are now
    trained again. (A validation that ran just after the checkpoint was saved is not run again by
    Lightning, and its row, at the checkpoint's last step, stays.)
    """

    def __init__(self, log_dir: str) -> None:
        self._rows: list[dict[str, Any]] = []
        self._first_new_step: int | None = None
        super().__init__(log_dir)
        path = Path(self.metrics_file_path)
        if path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self._rows = list(reader)
                self.metrics_keys = list(reader.fieldnames or [])

    def _check_log_dir_exists(self) -> None:
        pass  # keep metrics.csv: the run-folder check decided this folder is ours (a resume)

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        super().log_metrics(metrics_dict, step)
        if self._first_new_step is None:
            self._first_new_step = int(self.metrics[-1]["step"])
            self._rows = [r for r in self._rows if not _step_at_least(r.get("step"), self._first_new_step)]

    def save(self) -> None:
        if not self.metrics:
            return
        self._record_new_keys()
        self._rows.extend(self.metrics)
        self.metrics = []
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.metrics_keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self._rows)
        data = buf.getvalue().encode()
        atomic_write(self.metrics_file_path, lambda f: f.write(data))


def _step_at_least(value: Any, step: int) -> bool:
    try:
        return int(float(value)) >= step
    except (TypeError, ValueError):
        return False


class AppendingCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` survives a resume (the module docstring says how).

    The same arguments and files as Lightning's ``CSVLogger``.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:  # type: ignore[override]
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
