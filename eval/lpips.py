"""LPIPS v0.1 with AlexNet (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018): the perceptual metric every AIM bokeh table reports, and the one
Bokeh-Loss GAN ranked first on (Lee et al., AIM 2022, Table 1).

    d(x, y) = Σ_l  mean_{h,w}  w_l · ( f̂_l(x) − f̂_l(y) )²          (Zhang et al., Eq. 1)

* Inputs in [0, 1] are mapped to [−1, 1], then through the v0.1 scaling layer
  ``(x − shift) / scale`` with shift (−.030, −.088, −.188) and scale (.458, .448, .450).
* ``f_l`` are AlexNet's activations after relu1 … relu5 (64, 192, 384, 256, 256 channels).
* ``f̂_l = f_l / (‖f_l‖₂ + 1e-10)``: unit length over the channels at each position.
* ``w_l`` are the learned, non-negative 1×1 "lin" weights of the v0.1 calibration; the squared
  difference is weighted per channel, summed over channels, averaged over positions and summed
  over the five layers.

Neither the ``lpips`` package nor torchmetrics' LPIPS runs here: both import torchvision, which
does not import next to the CPU torch build. So ``AlexNetFeatures`` re-declares torchvision's
``alexnet().features`` with the same state-dict keys, and the weights are read from files:

* AlexNet: torchvision's published ``alexnet-owt-7be5be79.pth`` (https://download.pytorch.org/
  models/alexnet-owt-7be5be79.pth), looked up at an explicit path, ``$BOKEH_ALEXNET_WEIGHTS``,
  ``$TORCH_HOME/hub/checkpoints/`` and ``weights/`` in the repo (``common.weights``).
* lin weights: the ``lpips`` wheel's data file ``lpips/weights/v0.1/alex.pth`` (keys
  ``lin{k}.model.1.weight``, shape (1, C, 1, 1)), looked up at an explicit path,
  ``$BOKEH_LPIPS_WEIGHTS``, inside an installed ``lpips`` package (found by path, never imported)
  and ``weights/lpips_v0.1_alex.pth`` in the repo. ``pip download lpips==0.1.4 --no-deps`` and
  unzipping that one file is enough.

When a file is missing or unreadable, ``load_lpips`` returns ``(None, reason)`` naming the file
and where to get it: callers report LPIPS as unavailable, never a made-up number.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from common.hashing import file_sha256
from common.weights import find_weights, repo_weights_file

__all__ = [
    "AlexNetFeatures",
    "LPIPS",
    "load_lpips",
    "find_alexnet_weights",
    "find_lin_weights",
    "ALEXNET_FILE",
    "ALEXNET_URL",
    "LIN_URL",
]


ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
# torchvision names its files <name>-<first 8 hex digits of the file's sha256>.pth and checks it.
ALEXNET_SHA256_PREFIX = "7be5be79"
ALEXNET_ENV = "BOKEH_ALEXNET_WEIGHTS"

LIN_FILE = "lpips_v0.1_alex.pth"  # name under weights/; inside the wheel: lpips/weights/v0.1/alex.pth
LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"
# sha256 of lpips/weights/v0.1/alex.pth in the lpips 0.1.4 wheel (the same in its RECORD file).
LIN_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
LIN_ENV = "BOKEH_LPIPS_WEIGHTS"

CHANNELS = (64, 192, 384, 256, 256)  # relu1 … relu5
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
MIN_SIZE = 32  # two stride-2 max-pools after a stride-4 conv leave nothing of smaller inputs


class AlexNetFeatures(nn.Module):
    """torchvision's ``alexnet().features`` (Krizhevsky 2014 "one weird trick" variant, the
    ``owt`` in the file name), keys ``features.{0,3,6,8,10}.{weight,bias}``. Returns the five
    activations after relu1 … relu5 that LPIPS compares (indices 1, 4, 7, 9, 11)."""

    TAPS = (1, 4, 7, 9, 11)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 0
            nn.ReLU(),  # 1: relu1
            nn.MaxPool2d(kernel_size=3, stride=2),  # 2
            nn.Conv2d(64, 192, kernel_size=5, padding=2),  # 3
            nn.ReLU(),  # 4: relu2
            nn.MaxPool2d(kernel_size=3, stride=2),  # 5
            nn.Conv2d(192, 384, kernel_size=3, padding=1),  # 6
            nn.ReLU(),  # 7: relu3
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # 8
            nn.ReLU(),  # 9: relu4
            nn.Conv2d(256, 256, kernel_size=3, padding=1),  # 10
            nn.ReLU(),  # 11: relu5
            # torchvision's final MaxPool2d (index 12) feeds only the classifier; LPIPS stops at relu5.
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                taps.append(x)
        return taps


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with an AlexNet trunk; ``forward(pred, target)`` → (B,) distances.

    Build it with ``load_lpips()``; a bare ``LPIPS()`` has random weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.net = AlexNetFeatures()
        # lin{k}.model.1.weight in the lpips file (index 0 of its Sequential is a Dropout that is
        # off at evaluation time); stored here as plain bias-free 1×1 convolutions.
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        # Provenance, filled in by load_lpips and recorded in evaluation summaries.
        self.alexnet_path: Path | None = None
        self.lin_path: Path | None = None
        self.alexnet_sha256 = ""
        self.lin_sha256 = ""
        self.requires_grad_(False)
        self.eval()

    @property
    def official(self) -> bool:
        """True when both files are the published ones (AlexNet by torchvision's hash prefix,
        lin weights by the lpips 0.1.4 wheel's sha256), i.e. numbers comparable with papers."""
        return self.alexnet_sha256.startswith(ALEXNET_SHA256_PREFIX) and self.lin_sha256 == LIN_SHA256

    def load_alexnet(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load torchvision AlexNet keys ``features.*`` (``classifier.*`` are ignored).
        Raises ValueError listing missing or mis-shaped keys."""
        self.net.load_state_dict(_pick(state, self.net.state_dict(), lambda name: name))

    def load_lin(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load the lpips v0.1 calibration keys ``lin{k}.model.1.weight`` (shape (1, C, 1, 1))."""
        self.lins.load_state_dict(
            _pick(state, self.lins.state_dict(), lambda name: f"lin{name.split('.')[0]}.model.1.weight")
        )

    @torch.no_grad()
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"expected two images of the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        # The two images go through the network separately (not as one batch) so that identical
        # inputs give bit-identical features and a distance of exactly 0.
        return self.distance(self.features(pred), self.features(target))

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised relu1 … relu5 activations of (B, 3, H, W) images in [0, 1]. Evaluation
        computes the ground truth's once per image and reuses them for every model."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"LPIPS (AlexNet) needs images of at least {MIN_SIZE}×{MIN_SIZE}, got {tuple(x.shape[-2:])}"
            )
        return [_unit_normalise(f) for f in self.net(self._scale(x.to(self.shift.dtype)))]

    @torch.no_grad()
    def distance(self, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
        """(B,) LPIPS between two lists of ``features``: Σ_l mean_hw w_l · (f̂0 − f̂1)²."""
        total = torch.zeros(f0[0].shape[0], dtype=f0[0].dtype, device=f0[0].device)
        for a, b, lin in zip(f0, f1, self.lins):
            total = total + lin((a - b).pow(2)).mean(dim=(1, 2, 3))  # 1×1 lin → (B, 1, h, w) → spatial mean
        return total

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(0.0, 1.0) * 2.0 - 1.0  # [0, 1] → [−1, 1], the range LPIPS was calibrated on
        return (x - self.shift) / self.scale


def _pick(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], file_key) -> dict[str, torch.Tensor]:
    """Map our parameter names to the file's keys, checking presence and shape."""
    out, problems = {}, []
    for name, p in own.items():
        key = file_key(name)
        v = state.get(key)
        if v is None:
            problems.append(f"missing {key}")
        elif tuple(v.shape) != tuple(p.shape):
            problems.append(f"{key} has shape {tuple(v.shape)}, expected {tuple(p.shape)}")
        else:
            out[name] = v
    if problems:
        raise ValueError("; ".join(problems))
    return out


def _unit_normalise(x: torch.Tensor) -> torch.Tensor:
    # As lpips.normalize_tensor: eps is added to the norm, not inside the square root.
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)


def _lpips_package_file() -> Path | None:
    """``lpips/weights/v0.1/alex.pth`` of an installed lpips package, found without importing it
    (importing it would import torchvision, which fails here)."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "weights" / "v0.1" / "alex.pth"
        if candidate.is_file():
            return candidate
    return None


def find_alexnet_weights(path: str | Path | None = None) -> tuple[Path | None, list[str]]:
    """(found file or None, the candidates tried)."""
    return find_weights(ALEXNET_FILE, path, ALEXNET_ENV)


def find_lin_weights(path: str | Path | None = None) -> tuple[Path | None, list[str]]:
    """(found file or None, the candidates tried)."""
    defaults = [p for p in (_lpips_package_file(),) if p is not None] + [repo_weights_file(LIN_FILE)]
    return find_weights(LIN_FILE, path, LIN_ENV, defaults)


def _read_state(path: Path) -> Mapping[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"expected a state dict, got {type(state).__name__}")
    return state


def load_lpips(
    alexnet_path: str | Path | None = None, lin_path: str | Path | None = None
) -> tuple[LPIPS | None, str | None]:
    """Build LPIPS v0.1 (AlexNet) from local weight files: ``(model, None)`` or ``(None, reason)``.

    The reason names each missing or unreadable file and where to get it.
    """
    reasons = []
    alex, tried_alex = find_alexnet_weights(alexnet_path)
    if alex is None:
        reasons.append(
            f"AlexNet weights {ALEXNET_FILE} not found (tried: {', '.join(tried_alex)}); download "
            f"{ALEXNET_URL} to weights/{ALEXNET_FILE} or $TORCH_HOME/hub/checkpoints/, or set ${ALEXNET_ENV}"
        )
    lin, tried_lin = find_lin_weights(lin_path)
    if lin is None:
        reasons.append(
            f"LPIPS v0.1 lin weights lpips/weights/v0.1/alex.pth not found (tried: {', '.join(tried_lin)}); "
            f"`pip download lpips==0.1.4 --no-deps`, unzip lpips/weights/v0.1/alex.pth to weights/{LIN_FILE} "
            f"(or get {LIN_URL}), or set ${LIN_ENV}"
        )
    if reasons:
        return None, "; ".join(reasons)

    states = {}
    for label, path in (("AlexNet", alex), ("LPIPS lin", lin)):
        try:
            states[label] = _read_state(path)
        except Exception as e:  # truncated download, HTML error page, pickle with code: say which file
            reasons.append(f"{label} weights {path} unreadable ({type(e).__name__}: {e})")
    if reasons:
        return None, "; ".join(reasons)

    model = LPIPS()
    for label, path, load in (("AlexNet", alex, model.load_alexnet), ("LPIPS lin", lin, model.load_lin)):
        try:
            load(states[label])
        except ValueError as e:
            reasons.append(f"{label} weights {path} do not match the expected keys: {e}")
    if reasons:
        return None, "; ".join(reasons)
    model.alexnet_path, model.lin_path = alex, lin
    model.alexnet_sha256, model.lin_sha256 = file_sha256(alex), file_sha256(lin)
    return model, None
