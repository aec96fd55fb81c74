"""The paper's training schedule, the issue's speed targets, and the arithmetic between them.

Bokeh-Loss GAN (§4.1) trains 60 + 60 epochs on EBB!'s hand-pruned 4,425 pairs; the issue "Train
fast on one GPU" asks for stage 1 >= 150 images/s and stage 2 >= 50 images/s on one H200, so that
the whole schedule takes under 3 hours.
"""

from __future__ import annotations

import math

__all__ = [
    "EBB_TRAIN_IMAGES",
    "SCHEDULE_EPOCHS",
    "TARGET_IMAGES_PER_S",
    "TARGET_SCHEDULE_S",
    "schedule_seconds",
    "workers_needed",
    "hms",
]

# §4.1: EBB!'s 4,694 training pairs, hand-pruned to 4,425; 60 epochs per stage.
EBB_TRAIN_IMAGES = 4425
SCHEDULE_EPOCHS = (60, 60)
# The targets on one H200, width-8 generator, 1024x1024 crops; the schedule in < 3 h.
TARGET_IMAGES_PER_S = {1: 150.0, 2: 50.0}
TARGET_SCHEDULE_S = 3 * 3600.0


def schedule_seconds(
    stage1_images_per_s: float,
    stage2_images_per_s: float,
    images: int = EBB_TRAIN_IMAGES,
    epochs: tuple[int, int] = SCHEDULE_EPOCHS,
) -> float:
    """Training time of the two-stage schedule: Σ epochs · images / (images/s), validation excluded."""
    if stage1_images_per_s <= 0 or stage2_images_per_s <= 0:
        raise ValueError(f"throughputs must be positive, got {stage1_images_per_s}, {stage2_images_per_s}")
    return epochs[0] * images / stage1_images_per_s + epochs[1] * images / stage2_images_per_s


def workers_needed(target_images_per_s: float, images_per_s_per_worker: float, headroom: float = 1.25) -> int:
    """DataLoader workers for ``target`` images/s, if decoding scales linearly with workers.

    ``headroom`` > 1 because a loader that only just keeps up still stalls the step whenever a
    worker is late (the prefetch queue runs dry); 25 % spare keeps the wait near zero.
    """
    if images_per_s_per_worker <= 0:
        raise ValueError(f"images/s per worker must be positive, got {images_per_s_per_worker}")
    return max(1, math.ceil(headroom * target_images_per_s / images_per_s_per_worker))


def hms(seconds: float) -> str:
    """``1 h 05 min``: a schedule's length as the table prints it."""
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"
