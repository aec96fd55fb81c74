"""VGG19 perceptual loss of the refinement stage (Lee et al., AIM 2022, §3.5, eq. 5: 0.1 × L_VGG).

torchvision does not import next to the project's CPU torch build, so the VGG19 ``features``
stack (Simonyan & Zisserman 2015, configuration "E") is defined here with torchvision's module
indices, so that its state-dict keys are those of torchvision's published ImageNet checkpoint
``vgg19-dcbb9e9d.pth`` (``features.0.weight`` … ``features.34.bias``; the ``classifier.*`` keys
of that file are ignored). 16 convolutions, 20,024,384 parameters.

Layers. The paper does not say which layers; we use the last ReLU of each of the five blocks,
``relu1_2, relu2_2, relu3_4, relu4_4, relu5_4`` (the deepest, most semantic feature of each scale,
as in Johnson et al.'s and ESRGAN-style perceptual losses), equally weighted (1/5 each, so the
loss is the mean of the five per-layer L1 distances). Inputs in [0, 1] are normalised with the
ImageNet mean/std the checkpoint was trained with.

The network is frozen (``requires_grad_(False)``, always in eval mode) and its weights are **not
stored in checkpoints** of a module that holds this loss: they are 80 MB of constants that are
re-read from the file, so a Lightning checkpoint stays the size of the generator + critics.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from common.weights import find_weights, weight_candidates

__all__ = [
    "VGG19_FILENAME",
    "VGG19_URL",
    "VGG19_LAYER_INDEX",
    "VGG19Features",
    "VGGPerceptualLoss",
    "find_vgg19_weights",
    "vgg19_search_paths",
]

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILENAME}"
VGG19_ENV = "BOKEH_VGG19_WEIGHTS"

# torchvision's cfg "E": numbers are conv output channels, "M" a 2×2 max-pool.
_CFG_E: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip


def _layer_names() -> dict[str, int]:
    """Index in ``features`` of every ReLU, named ``relu<block>_<conv>`` (relu1_1 = 1, …)."""
    names: dict[str, int] = {}
    idx, block, conv = 0, 1, 0
    for v in _CFG_E:
        if v == "M":
            idx += 1
            block, conv = block + 1, 0
        else:
            conv += 1
            names[f"relu{block}_{conv}"] = idx + 1  # conv at idx, its ReLU at idx + 1
            idx += 2
    return names


VGG19_LAYER_INDEX: dict[str, int] = _layer_names()  # relu1_2 → 3, relu2_2 → 8, … relu5_4 → 35


def vgg19_search_paths(path: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where ``find_vgg19_weights`` looks, in order.

    An explicit ``path`` is the only place searched: a user who names a file must get that file
    (or an error), not silently some other copy from a cache.
    """
    return weight_candidates(VGG19_FILENAME, path, VGG19_ENV)


def find_vgg19_weights(path: str | os.PathLike[str] | None = None) -> Path | None:
    """First existing file of ``vgg19_search_paths(path)``, or None.

    Order: explicit ``path``; ``$BOKEH_VGG19_WEIGHTS``; ``$TORCH_HOME/hub/checkpoints/
    vgg19-dcbb9e9d.pth`` (torchvision's own cache); ``<repo>/weights/vgg19-dcbb9e9d.pth``
    (``common.weights``).
    """
    return find_weights(VGG19_FILENAME, path, VGG19_ENV)[0]


def _missing_weights_error(path: str | os.PathLike[str] | None) -> FileNotFoundError:
    searched = "\n".join(f"  - {p}" for p in vgg19_search_paths(path))
    return FileNotFoundError(
        f"VGG19 weights '{VGG19_FILENAME}' not found (needed by the VGG perceptual loss, paper "
        f"eq. 5). Searched:\n{searched}\nDownload {VGG19_URL} and put it in one of these places "
        f"(or set {VGG19_ENV}), or set the VGG loss weight to 0."
    )


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features`` with identical state-dict keys (``features.<i>.*``)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in _CFG_E:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(ch, int(v), kernel_size=3, padding=1), nn.ReLU()]
                ch = int(v)
        self.features = nn.Sequential(*layers)

    def load_torchvision_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load a torchvision ``vgg19`` state dict (e.g. ``vgg19-dcbb9e9d.pth``) from ``path``."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # unreadable, truncated, not a torch file
            raise ValueError(f"cannot read VGG19 weights from {path}: {e}") from e
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a VGG19 state dict, got {type(state).__name__}")
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        try:
            self.load_state_dict(features, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{path} is not a torchvision vgg19 checkpoint ({VGG19_FILENAME}): {e}") from e

    def forward(self, x: torch.Tensor, layers: tuple[str, ...] = ("relu5_4",)) -> dict[str, torch.Tensor]:
        """Features of ImageNet-normalised ``x`` at the named ReLUs; stops after the deepest one."""
        wanted = {VGG19_LAYER_INDEX[name]: name for name in layers}
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
                if len(out) == len(wanted):
                    break
        return out


class VGGPerceptualLoss(nn.Module):
    """``L_VGG = Σ_l w_l · mean|φ_l(Î) − φ_l(I_gt)|`` over VGG19 ReLU features φ_l (eq. 5).

    Args:
        weights_path: torchvision ``vgg19-dcbb9e9d.pth``; None searches the places listed by
            ``vgg19_search_paths``. Raises FileNotFoundError naming the file if none exists.
        layers: ReLU outputs compared (names ``relu<block>_<conv>``).
        layer_weights: one weight per layer.
    """

    def __init__(
        self,
        weights_path: str | None = None,
        layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
        layer_weights: tuple[float, ...] = (0.2, 0.2, 0.2, 0.2, 0.2),
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYER_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}; known: {list(VGG19_LAYER_INDEX)}")
        if len(layer_weights) != len(layers):
            raise ValueError(f"{len(layers)} layers but {len(layer_weights)} layer_weights")
        self.layers = tuple(layers)
        self.layer_weights = tuple(float(w) for w in layer_weights)
        found = find_vgg19_weights(weights_path)
        if found is None:
            raise _missing_weights_error(weights_path)
        self.weights_file = found
        self.vgg = VGG19Features()
        self.vgg.load_torchvision_checkpoint(found)
        self.vgg.requires_grad_(False)
        self.vgg.eval()
        # ImageNet statistics of the checkpoint's training data; not saved (constants).
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        # Keep the frozen VGG out of checkpoints (see module docstring), and do not report its
        # keys as missing when such a checkpoint is loaded back with strict=True.
        self._register_state_dict_hook(_drop_vgg_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_vgg_keys)

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # frozen feature extractor: eval whatever the LightningModule's mode
        return self

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = (output - self.mean) / self.std
        with torch.no_grad():
            target_feats = self.vgg((target - self.mean) / self.std, self.layers)
        feats = self.vgg(x, self.layers)
        loss = output.new_zeros((), dtype=torch.float32)
        for name, w in zip(self.layers, self.layer_weights):
            # Distances in float32: under bf16 autocast the features are bf16.
            loss = loss + w * (feats[name].float() - target_feats[name].float()).abs().mean()
        return loss


def _drop_vgg_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "vgg.")]:
        del state_dict[key]


def _ignore_missing_vgg_keys(module: nn.Module, incompatible_keys) -> None:
    # incompatible_keys.missing_keys holds full names, e.g. "vgg_loss.vgg.features.0.weight".
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if ".vgg.features." not in k and not k.startswith("vgg.features.")]
