"""Training-throughput benchmark for one GPU (issue "Train fast on one GPU").

The paper trained 60 + 60 epochs on 8 V100s (Bokeh-Loss GAN §4.1). This script measures how fast
one machine runs the *real* training steps of ``training.module.BokehGAN``, through a Lightning
``Trainer`` exactly as ``python -m training fit`` does (same module, same stage YAML loss weights,
same optimisers), and turns the throughput into the time of the full schedule:

    # the GPU measurement (targets: stage 1 >= 150 img/s, stage 2 >= 50 img/s on one H200)
    python -m training.benchmark --stage both --crop 1024 --batch-size 16 --precision bf16-mixed \\
        --compile --channels-last --fused-adam --steps 30 --warmup 10 --data synthetic-in-memory
    # the same on a real data folder, to see the data-loader wait
    python -m training.benchmark --stage both ... --data data/synthetic --num-workers 12
    # the CPU smoke size (seconds; --arch tiny shrinks the networks further, for tests)
    python -m training.benchmark --stage both --crop 64 --batch-size 2 --width 4 --steps 3 --warmup 1
    # the data loader alone, on EBB!-size JPEGs (the real EBB! is not downloadable here)
    python -m training.benchmark --make-fake-ebb 64 /tmp/fake_ebb
    python -m training.benchmark --loader-only --data /tmp/fake_ebb --crop 1024 --batch-size 16 --num-workers 2,4,8

What is measured, per training batch after ``--warmup`` batches (warm-up covers torch.compile,
cuDNN autotuning and the DataLoader workers' start):

* **step time**: wall time from the end of one batch to the end of the next, with
  ``torch.cuda.synchronize()`` at each batch end, so it is the GPU's time and includes everything
  the schedule pays per batch. Images/s = images / total step time.
* **loader wait**: host time from the end of one batch (``on_train_batch_end``) to the start of
  the next (``on_train_batch_start``): blocked on the DataLoader, plus Lightning's batch hand-over.
  The host-to-device copy of a pinned batch is asynchronous and lands in the step time. The
  synchronisation at every batch end makes this an upper bound: without it the GPU would still
  be busy with queued work while the host waits.
* **peak GPU memory**: ``torch.cuda.max_memory_allocated`` over the measured batches.

Stage 2 runs with manual optimisation, where Lightning counts a generator and a critic step as two
global steps per batch: everything here counts batches. The speed levers (``--compile``,
``--channels-last``, ``--fused-adam``) are ``BokehGAN`` options, so the training CLI uses the same
code (``--model.compile true`` ...); bf16 autocast is the trainer's ``--precision bf16-mixed``.
``docs/gpu_training.md`` has the recommended full-schedule commands.

One module per part: ``schedule.py`` (the paper's schedule, the targets, the arithmetic),
``timer.py`` (``StepTimer``), ``inputs.py`` (in-memory batches or a data folder), ``stages.py``
(``run_stage`` and its table), ``loader.py`` (the data loader alone), ``fake_ebb.py``
(``--make-fake-ebb``) and ``cli.py`` (the command line).
"""

from training.benchmark.cli import build_parser, main
from training.benchmark.fake_ebb import EBB_SIZE, make_fake_ebb
from training.benchmark.inputs import InMemoryBatches, InMemoryDataModule, make_datamodule
from training.benchmark.loader import LoaderResult, decode_breakdown, describe_files, loader_table, run_loader
from training.benchmark.schedule import (
    EBB_TRAIN_IMAGES,
    SCHEDULE_EPOCHS,
    TARGET_IMAGES_PER_S,
    TARGET_SCHEDULE_S,
    schedule_seconds,
    workers_needed,
)
from training.benchmark.stages import (
    ARCHS,
    CONFIG_DIR,
    StageResult,
    applied_levers,
    resolve_vgg,
    run_stage,
    stage_model_kwargs,
    stage_table,
)
from training.benchmark.timer import StepTimer

__all__ = [
    "ARCHS",
    "CONFIG_DIR",
    "EBB_SIZE",
    "EBB_TRAIN_IMAGES",
    "InMemoryBatches",
    "InMemoryDataModule",
    "LoaderResult",
    "SCHEDULE_EPOCHS",
    "StageResult",
    "StepTimer",
    "TARGET_IMAGES_PER_S",
    "TARGET_SCHEDULE_S",
    "applied_levers",
    "build_parser",
    "decode_breakdown",
    "describe_files",
    "loader_table",
    "main",
    "make_datamodule",
    "make_fake_ebb",
    "resolve_vgg",
    "run_loader",
    "run_stage",
    "schedule_seconds",
    "stage_model_kwargs",
    "stage_table",
    "workers_needed",
]
