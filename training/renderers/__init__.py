"""Classical bokeh renderers of the related papers and the synthetic-data ground truth.

All share one interface, ``render(image, disparity, lens) -> bokeh``: image (B, 3, H, W) in [0, 1],
disparity (B, 1, H, W) in [0, 1] (1 = near), lens a :class:`LensParams` or one per batch item; the
output is (B, 3, H, W) in [0, 1] on the inputs' device.

- ``scatter``: BokehMe's classical scattering renderer (Peng et al., CVPR 2022, §3.1).
- ``layered``: D2F's weighted layered rendering with soft disk kernels (Luo et al., §3.2).
- ``blend``: DBSI's blend of Gaussian-smoothed copies (Dutta, AIM 2019, §3.2), weights from the lens.
- ``ground_truth`` (kept apart from the baselines): the occlusion-aware layered scatter that renders
  the synthetic training pairs (``python -m training.synth``).
"""

from __future__ import annotations

from .blend import BlendRenderer
from .ebb_camera import sample_ebb_lens
from .ground_truth import GroundTruthRenderer, Layer
from .layered import LayeredRenderer
from .lens import LensParams, blur_radius
from .scatter import ScatterRenderer

# the classical baselines, one per related paper, in the order the comparison table lists them
RENDERERS: dict[str, type] = {
    "scatter": ScatterRenderer,
    "layered": LayeredRenderer,
    "blend": BlendRenderer,
}


def get_renderer(name: str, **kwargs):
    """A renderer instance by name: one of RENDERERS or "ground_truth"."""
    if name == GroundTruthRenderer.name:
        return GroundTruthRenderer(**kwargs)
    try:
        cls = RENDERERS[name]
    except KeyError:
        raise ValueError(
            f"unknown renderer {name!r}; choose one of {sorted([*RENDERERS, GroundTruthRenderer.name])}"
        ) from None
    return cls(**kwargs)


__all__ = [
    "RENDERERS",
    "get_renderer",
    "LensParams",
    "blur_radius",
    "sample_ebb_lens",
    "ScatterRenderer",
    "LayeredRenderer",
    "BlendRenderer",
    "GroundTruthRenderer",
    "Layer",
]
