"""Lightning callbacks that ``training.module.BokehGAN`` adds to every fit (``configure_callbacks``)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.trainer.connectors.signal_connector import _get_sigkill_signal
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

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
        save_generator_safetensors(
            ckpt_path.with_name(SAFETENSORS_NAME),
            ckpt.generator,
            ckpt.arch,
            ckpt.config,
            source={"checkpoint": ckpt_path.name, "checkpoint_sha256": ckpt.sha256},
        )
        self._mirrored = seen

    # ModelCheckpoint saves in one of these two, depending on save_on_train_epoch_end.
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(trainer)


class GracefulStop(Checkpoint):
    """SIGTERM (a scheduler's pre-emption, ``timeout``, ``kill``) stops a fit within seconds, on all ranks.

    Lightning's own SIGTERM handler is replaced while the fit runs: it calls ``dist.broadcast``
    inside the signal handler, which under DDP can pair with a different collective on another rank
    and hang, and it ends the run with exit status 0 and no checkpoint. And a Python signal handler
    only runs when the main thread is between two bytecodes: a rank blocked in a collective never
    runs it, which is how a hung DDP run "ignored" SIGTERM. Here:

    * the signal is read by a monitor thread from ``signal.set_wakeup_fd``, which the interpreter's C
      handler writes at once, whatever the main thread is doing; it sets a flag and forwards SIGTERM
      to the ranks this process launched;
    * at the next training-batch end, or at the end of a validation run, every rank agrees on the
      flag with one all-reduce, the run saves ``last.ckpt`` (atomically, like every save: the
      previous one stays intact until the new one is whole) and exits with status 143 (128 + 15);
    * if that has not happened ``grace_s`` seconds after the signal (a rank stuck in a collective, a
      very long validation), the monitor ends the process: the last checkpoint on disk is intact,
      only the steps since it are lost. A second SIGTERM ends it at once.

    ``grace_s`` defaults to $BOKEH_SIGTERM_GRACE_S or 30 s (SLURM's and Kubernetes' default wait
    between SIGTERM and SIGKILL). A ``Checkpoint`` subclass so that Lightning runs it after the
    ``ModelCheckpoint``s: at the end of a validation run ``best.ckpt`` is updated before the run stops.
    """

    EXIT_CODE = 128 + signal.SIGTERM

    def __init__(self, grace_s: float | None = None) -> None:
        self.grace_s = float(os.environ.get("BOKEH_SIGTERM_GRACE_S", 30.0)) if grace_s is None else grace_s
        self._requested = False
        self._trainer: L.Trainer | None = None
        self._previous: Any = None
        self._previous_wakeup = -1
        self._pipe: tuple[int, int] | None = None
        self._installed = False
        self._lock = threading.Lock()
        self._signals = 0
        self._done = threading.Event()  # set when the fit has ended: the grace timer stands down

    # -- the signal
    def _handler(self, signum: int, frame: Any) -> None:
        # Runs in the main thread, late or never (see the class docstring); the monitor thread does
        # the work. Without a wakeup fd (not installed from the main thread) it is all there is.
        if self._pipe is None:
            self._on_sigterm()

    def _monitor(self, read_fd: int) -> None:
        try:
            while data := os.read(read_fd, 64):  # b"" once the write end is closed: the fit is over
                for _ in range(data.count(bytes([signal.SIGTERM]))):
                    self._on_sigterm()
        except OSError:
            pass
        finally:
            os.close(read_fd)

    def _on_sigterm(self) -> None:
        with self._lock:
            self._signals += 1
            first = self._signals == 1
        if not first:  # a second SIGTERM: no more waiting
            self._hard_exit("a second SIGTERM")
        self._requested = True
        self._forward(signal.SIGTERM)
        threading.Thread(target=self._grace_timer, name="sigterm-grace", daemon=True).start()

    def _forward(self, signum: int) -> None:
        launcher = getattr(self._trainer.strategy, "launcher", None) if self._trainer else None
        if isinstance(launcher, _SubprocessScriptLauncher):  # rank 0 of Lightning's own launch: its children
            launcher.kill(signum)

    def _grace_timer(self) -> None:
        if not self._done.wait(self.grace_s):
            self._hard_exit(f"no clean stop within {self.grace_s:g} s")

    def _hard_exit(self, why: str) -> None:
        rank = self._trainer.global_rank if self._trainer else 0
        sys.stderr.write(f"[rank {rank}] SIGTERM: {why}; exiting now (the last checkpoint on disk is intact)\n")
        sys.stderr.flush()
        self._forward(_get_sigkill_signal())
        os._exit(self.EXIT_CODE)

    def _install(self, trainer: L.Trainer) -> None:
        # Lightning registers its handler just before the sanity check and training start, so these
        # hooks are the first chance to replace it. Signals can only be set from the main thread.
        if self._installed or threading.current_thread() is not threading.main_thread():
            return
        self._trainer = trainer
        self._requested = False
        self._signals = 0
        self._done.clear()
        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._handler)  # a Python handler: the C handler then writes the fd
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            self._previous_wakeup = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread of the main interpreter
            os.close(r)
            os.close(w)
        else:
            self._pipe = (r, w)
            threading.Thread(target=self._monitor, args=(r,), name="sigterm-monitor", daemon=True).start()
        self._installed = True

    def _uninstall(self) -> None:
        self._done.set()  # the fit is over (stopped or finished): a Python session that ran it lives on
        if not self._installed or threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
        if self._pipe is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            os.close(self._pipe[1])  # the monitor reads EOF, closes the read end and ends
            self._pipe = None
        self._installed = False

    # -- hooks
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._maybe_stop(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._maybe_stop(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._uninstall()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._uninstall()

    def _maybe_stop(self, trainer: L.Trainer) -> None:
        stop = self._requested
        if trainer.world_size > 1:
            # Every rank reaches this point at the same batch, so the all-reduce pairs up; "any rank".
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        last = _last_checkpoint_path(trainer)
        if last is not None:
            trainer.save_checkpoint(last, weights_only=False)  # every rank calls it; rank 0 writes, then a barrier
        rank_zero_info(
            f"SIGTERM: stopped at step {trainer.global_step}"
            + (f"; saved {last} (resume with --ckpt_path {last})" if last else "")
        )
        raise SIGTERMException(self.EXIT_CODE)


def _last_checkpoint_path(trainer: L.Trainer) -> Path | None:
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.save_last and cb.dirpath:
            return Path(cb.dirpath) / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}"
    return None
