"""The interface every renderer of this package shares: ``render(image, disparity, lens)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .lens import LensParams


def as_lens_list(lens: LensParams | Sequence[LensParams], batch: int) -> list[LensParams]:
    """One LensParams per batch item (a single one is shared by the whole batch)."""
    if isinstance(lens, LensParams):
        return [lens] * batch
    lenses = list(lens)
    if len(lenses) != batch or not all(isinstance(x, LensParams) for x in lenses):
        raise ValueError(f"lens must be a LensParams or a list of {batch} LensParams, got {lens!r}")
    return lenses


def check_inputs(image: torch.Tensor, disparity: torch.Tensor, who: str) -> None:
    """Shape, dtype and range checks shared by every renderer's ``render``."""
    if not isinstance(image, torch.Tensor) or not isinstance(disparity, torch.Tensor):
        raise TypeError(f"{who}: image and disparity must be torch tensors")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"{who}: image must be (B, 3, H, W), got {tuple(image.shape)}")
    if (
        disparity.ndim != 4
        or disparity.shape[1] != 1
        or disparity.shape[0] != image.shape[0]
        or disparity.shape[2:] != image.shape[2:]
    ):
        raise ValueError(
            f"{who}: disparity must be (B, 1, H, W) matching the image "
            f"{tuple(image.shape)}, got {tuple(disparity.shape)}"
        )
    if disparity.device != image.device:
        raise ValueError(f"{who}: image is on {image.device} but disparity on {disparity.device}")
    if not image.is_floating_point() or not disparity.is_floating_point():
        raise TypeError(f"{who}: image and disparity must be floating point (got {image.dtype}, {disparity.dtype})")
    if not bool(torch.isfinite(disparity).all()):
        raise ValueError(f"{who}: disparity contains NaN or inf")


class BatchRenderer:
    """The renderers' shared interface: ``render`` checks the inputs, expands the lens parameters
    to one per image and renders each image with the subclass's ``_render_one``."""

    @torch.no_grad()
    def render(
        self, image: torch.Tensor, disparity: torch.Tensor, lens: LensParams | Sequence[LensParams]
    ) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1]; device follows the inputs."""
        check_inputs(image, disparity, f"{type(self).__name__}.render")
        lenses = as_lens_list(lens, image.shape[0])
        return torch.stack([self._render_one(image[b], disparity[b], lenses[b]) for b in range(image.shape[0])])

    def _render_one(self, image: torch.Tensor, disparity: torch.Tensor, lens: LensParams) -> torch.Tensor:
        raise NotImplementedError
