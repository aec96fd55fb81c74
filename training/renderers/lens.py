"""The thin-lens model shared by every renderer in this package.

A renderer takes an all-in-focus image, a disparity map in [0, 1] (1 = near) and the lens
parameters of BokehMe (Peng et al., CVPR 2022, §3 and Fig. 3): blur strength ``K``, focal
disparity ``d_f``, ``gamma`` and the aperture shape. The blur radius of a pixel is

    r = K * |d - d_f|                                              (BokehMe eq. 1)

and its signed version S = K * (d - d_f) is BokehMe's signed defocus map (eq. 6): S > 0 in front
of the focal plane, S < 0 behind it.

Our one extension, ``dof`` (0 by default, which is eq. 1 exactly): a depth-of-field band of
half-width ``dof`` in disparity around d_f that stays sharp, r = K * max(|d - d_f| - dof, 0). A
monocular depth map of a person spans a range of disparities (nose to shoulders, and the map's own
noise), so with dof = 0 and any real blur strength part of the subject is always defocused; phone
portrait modes keep a focus range for this reason. The band is applied by :func:`defocus_distance`,
which every renderer (and the ground truth of the synthetic data) goes through.

This file is the lens model itself: :class:`LensParams`, eq. 1 with the band
(:func:`blur_radius`, :func:`signed_defocus`) and the project's one auto-focus (:func:`auto_focus`,
:meth:`LensParams.for_photo`) for real photos that come without lens parameters. The numerics every
renderer shares live beside it, so each renderer file only says what is particular to its paper:

- ``aperture.py``: aperture kernels (disk or N-blade polygon, anti-aliased, radius-exact);
- ``convolve.py``: FFT convolution of a cropped region;
- ``binned_scatter.py``: :func:`scatter_by_radius`, a scatter with a per-pixel radius, vectorised
  as one FFT convolution per radius bin;
- ``batch.py``: the renderers' shared ``render`` (input checks, one lens per image);
- ``ebb_camera.py``: the EBB! camera's lens sampler for the synthetic data.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from common.io import atomic_write_bytes

APERTURES = ("disk", "polygon")


# auto_focus(): focus on this percentile of disparity; blur the farthest surface by this share of
# the width (25 px at 1536: the EBB! lens focused at about 2 m, see ebb_camera.ebb_radius_at_infinity).
AUTO_FOCUS_QUANTILE = 0.9
AUTO_BLUR_FRACTION = 0.0163
AUTO_DOF = 0.1  # the sharp band of auto_focus, in disparity (see the module docstring)
AUTO_FAR_QUANTILE = 0.02  # "the farthest surface", ignoring a few far outliers
AUTO_MIN_SPREAD = 0.1  # floor of d_f - d_far - dof: a flat map keeps a finite, modest K
QUANTILE_MAX_SAMPLES = 1_000_000  # torch.quantile's input-size limit: larger maps are sampled with a stride
# The demos port auto_focus (web_demo/autofocus.js, android_demo/.../AutoFocus.kt): tests check
# their constants against these.
# The focal disparity of the exported lens models' default lens (default_lens), where a photo's
# subject typically lies in a min-max normalised monocular depth map.
DEFAULT_FOCUS_DISPARITY = 0.8


@dataclass(frozen=True)
class LensParams:
    """Lens parameters of one image (BokehMe §3, "controlling parameters").

    K: blur strength, pixels of blur *radius* per unit of disparity difference (eq. 1).
    d_f: focal (refocused) disparity in [0, 1]; pixels with d == d_f stay sharp.
    gamma: the image is linearised with ``image ** gamma`` before blurring and re-encoded with
        ``** (1 / gamma)`` after, so that bright pixels dominate their neighbours as light does.
    aperture: "disk" or "polygon".
    blades: number of aperture blades (polygon sides); used when ``aperture == "polygon"``.
    rotation: polygon rotation in radians; 0 puts one vertex straight up.
    dof: half-width of the sharp band around d_f, in disparity (module docstring); 0 = eq. 1.
    """

    K: float
    d_f: float
    gamma: float = 2.2
    aperture: str = "disk"
    blades: int = 6
    rotation: float = 0.0
    dof: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("K", "d_f", "gamma", "rotation", "dof"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{name} must be a finite number, got {value!r}")
        if not problems:
            if self.K < 0:
                problems.append(f"K (blur radius in pixels per unit disparity) must be >= 0, got {self.K}")
            if not 0.0 <= self.d_f <= 1.0:
                problems.append(f"d_f (focal disparity) must lie in [0, 1], got {self.d_f}")
            if not 0.1 <= self.gamma <= 10.0:
                problems.append(f"gamma must lie in [0.1, 10], got {self.gamma}")
            if not 0.0 <= self.dof <= 0.5:
                problems.append(f"dof (sharp band half-width in disparity) must lie in [0, 0.5], got {self.dof}")
        if self.aperture not in APERTURES:
            problems.append(f"aperture must be one of {APERTURES}, got {self.aperture!r}")
        if isinstance(self.blades, bool) or not isinstance(self.blades, int) or self.blades < 3:
            problems.append(f"blades must be an integer >= 3, got {self.blades!r}")
        if problems:
            raise ValueError("invalid LensParams: " + "; ".join(problems))

    def network_input(self) -> np.ndarray:
        """The lens-conditioned generator's ``lens`` input: float32 (1, 3, 1, 1) = (d_f, K, dof)."""
        return np.array([self.d_f, self.K, self.dof], np.float32).reshape(1, 3, 1, 1)

    # ---- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "lens parameters") -> LensParams:
        """Build from a dict; keys other than the fields (e.g. ``"meta"``) are ignored."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in ("K", "d_f") if n not in data]
        if missing:
            raise ValueError(f"{source}: missing required key(s) {missing}")
        kwargs = {n: data[n] for n in names if n in data}
        if isinstance(kwargs.get("blades"), float) and float(kwargs["blades"]).is_integer():
            kwargs["blades"] = int(kwargs["blades"])
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def from_json(cls, text: str | dict) -> LensParams:
        if isinstance(text, dict):
            return cls.from_dict(text)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"lens parameters are not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        """Write atomically (``common.io``)."""
        data = self.to_dict()
        if meta:
            data["meta"] = meta
        atomic_write_bytes(Path(path), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    @classmethod
    def load(cls, path: str | os.PathLike) -> LensParams:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise FileNotFoundError(f"cannot read lens parameters {path}: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))

    # ---- defaults for real photos ----------------------------------------------------------------
    @classmethod
    def for_photo(
        cls,
        disparity: torch.Tensor | np.ndarray,
        *,
        focus_quantile: float = AUTO_FOCUS_QUANTILE,
        max_blur_fraction: float = AUTO_BLUR_FRACTION,
        gamma: float = 2.2,
        aperture: str = "disk",
        blades: int = 6,
        rotation: float = 0.0,
        dof: float = AUTO_DOF,
    ) -> LensParams:
        """Sensible lens parameters for a photo that comes without them (EBB!, a phone picture).

        d_f: the ``focus_quantile`` of the disparity. EBB! photos focus on the subject, which is
            usually the nearest large region, so a high quantile lands on it while ignoring a few
            near outliers. (EBB400 of BokehMe takes the median disparity inside a hand-drawn box
            around the subject; without the box a high quantile is the closest automatic guess.)
        K: chosen so that the farthest surface (2nd percentile of disparity) gets a blur radius of
            ``max_blur_fraction * width`` pixels. The default 0.0163 is 25 px at 1536 px width:
            the background blur of the EBB! lens focused at about 2 m (see ``ebb_camera.ebb_radius_at_infinity``).
        dof: the sharp band around d_f (module docstring), so that the whole subject stays sharp.
        """
        d = torch.as_tensor(disparity, dtype=torch.float32).detach().cpu()
        if d.ndim < 2 or d.numel() == 0:
            raise ValueError(f"for_photo: disparity must be an (…, H, W) map, got shape {tuple(d.shape)}")
        if not torch.isfinite(d).all():
            raise ValueError("for_photo: disparity contains NaN or inf")
        width = d.shape[-1]
        flat = d.flatten()
        if flat.numel() > QUANTILE_MAX_SAMPLES:  # a strided sample is as good
            flat = flat[:: flat.numel() // QUANTILE_MAX_SAMPLES + 1]
        d_f = float(torch.quantile(flat, focus_quantile).clamp(0.0, 1.0))
        d_far = float(torch.quantile(flat, AUTO_FAR_QUANTILE).clamp(0.0, 1.0))
        # a flat (or nearly flat) map has no background to blur: keep K finite and modest
        K = max_blur_fraction * width / max(d_f - d_far - dof, AUTO_MIN_SPREAD)
        return cls(K=float(K), d_f=d_f, gamma=gamma, aperture=aperture, blades=blades, rotation=rotation, dof=dof)


def auto_focus(disparity: torch.Tensor | np.ndarray) -> LensParams:
    """THE auto-focus of this project: the lens used on a photo that comes without lens values.

    Evaluation, training on EBB! (``BokehPairs`` with ``lens=True``), ``python -m eval`` on real
    photos and the exported models' documented default all use it, so a result never depends on
    which tool made it. It is :meth:`LensParams.for_photo` with its defaults: focus on the 90th
    percentile of disparity, a background blur radius of 1.63 % of the width.
    """
    return LensParams.for_photo(disparity)


def default_lens(size: tuple[int, int]) -> tuple[float, float, float]:
    """(d_f, K, dof) that an exported lens model documents as its default (manifest
    ``inputs[2].default``) for an app that neither runs :func:`auto_focus` nor has a tap:
    auto_focus's rule on a typical portrait depth map, subject at d = 0.8 and the farthest
    surface at 0. ``size`` = (H, W) of the model's input; K scales with the width (it is in pixels)."""
    d_f = DEFAULT_FOCUS_DISPARITY
    return d_f, AUTO_BLUR_FRACTION * size[1] / (d_f - AUTO_DOF), AUTO_DOF


def defocus_distance(disparity: torch.Tensor, lens: LensParams) -> torch.Tensor:
    """d - d_f with the sharp band taken out: sign(x) * max(|x| - dof, 0) for x = d - d_f.
    Written with two ReLUs, the form the exported network uses (no SIGN op on phone GPUs)."""
    x = disparity - lens.d_f
    if not lens.dof:
        return x
    return (x - lens.dof).clamp_min(0.0) - (-x - lens.dof).clamp_min(0.0)


def blur_radius(disparity: torch.Tensor, lens: LensParams) -> torch.Tensor:
    """Blur radius in pixels, r = K * |d - d_f| (BokehMe eq. 1), less the ``dof`` band."""
    return lens.K * defocus_distance(disparity, lens).abs()


def signed_defocus(disparity: torch.Tensor, lens: LensParams) -> torch.Tensor:
    """Signed defocus S = K * (d - d_f) (BokehMe eq. 6), less the ``dof`` band; > 0 in front of
    the focal plane."""
    return lens.K * defocus_distance(disparity, lens)
