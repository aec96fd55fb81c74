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

Besides :class:`LensParams` this file holds the numerics every renderer shares, so each renderer
file only says what is particular to its paper:

- aperture kernels (disk or N-blade polygon, anti-aliased by area coverage, radius-exact);
- FFT convolution of a cropped region;
- :func:`scatter_by_radius`: a scatter with a per-pixel radius, vectorised as one FFT convolution
  per radius bin (sources are split between the two nearest bins so that the second moment of the
  spread, hence its radius, is exact);
- the EBB!-like lens sampler for the synthetic data and :meth:`LensParams.for_photo`, the defaults
  used on real photos that come without lens parameters.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from common.io import atomic_write_bytes

APERTURES = ("disk", "polygon")


# auto_focus(): focus on this percentile of disparity; blur the farthest surface by this share of
# the width (25 px at 1536: the EBB! lens focused at about 2 m, see ebb_radius_at_infinity).
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
            the background blur of the EBB! lens focused at about 2 m (see :func:`ebb_radius_at_infinity`).
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


def as_lens_list(lens: LensParams | Sequence[LensParams], batch: int) -> list[LensParams]:
    """One LensParams per batch item (a single one is shared by the whole batch)."""
    if isinstance(lens, LensParams):
        return [lens] * batch
    lenses = list(lens)
    if len(lenses) != batch or not all(isinstance(x, LensParams) for x in lenses):
        raise ValueError(f"lens must be a LensParams or a list of {batch} LensParams, got {lens!r}")
    return lenses


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


# ==== EBB!-like lens parameters =====================================================================
# Derivation (thin lens). EBB! was shot with a Canon 7D (APS-C sensor 22.3 mm wide, 5184 px) and a
# 50 mm lens at f/1.8; the released images are 1536 px wide, so one pixel is 22.3 mm / 1536 = 14.5 um
# of sensor. The aperture diameter is A = f / N = 50 / 1.8 = 27.8 mm. A lens focused at distance z_f
# images a point at distance z as a circle of confusion of diameter
#     c(z) = A * f / (z_f - f) * z_f * |1/z_f - 1/z|,
# linear in inverse depth (disparity), which is why BokehMe's eq. 1 holds with one K per image. A point
# at infinity gets c_inf = A * f / (z_f - f). For subjects between 1 m and 4 m (close-ups to
# half-body shots, where EBB!'s pictures are) c_inf is 1.46 mm .. 0.35 mm, i.e. a blur radius of
# 50 px .. 12 px at 1536 px width. Radii scale linearly with the image width.
EBB_SENSOR_WIDTH_MM = 22.3
EBB_FOCAL_MM = 50.0
EBB_F_NUMBER = 1.8
EBB_WIDTH_PX = 1536
EBB_FOCUS_RANGE_M = (1.0, 4.0)


def ebb_radius_at_infinity(focus_distance_m: float, width: int = EBB_WIDTH_PX) -> float:
    """Blur radius (px) of a point at infinity for the EBB! camera focused at ``focus_distance_m``."""
    f = EBB_FOCAL_MM
    aperture_mm = f / EBB_F_NUMBER
    coc_mm = aperture_mm * f / (focus_distance_m * 1000.0 - f)
    pixel_mm = EBB_SENSOR_WIDTH_MM / width
    return 0.5 * coc_mm / pixel_mm


def sample_ebb_lens(
    rng: np.random.Generator,
    width: int,
    d_f: float,
    d_inf: float = 0.0,
    *,
    polygon_prob: float = 0.2,
    gamma_range: tuple[float, float] = (2.0, 2.6),
) -> tuple[LensParams, dict]:
    """Random EBB!-like lens parameters for a synthetic scene focused on its subject.

    d_f: normalised disparity of the subject; d_inf: normalised disparity that infinity maps to
    (<= 0 when the depth map is min-max normalised and the farthest surface is not at infinity).
    The focus distance is drawn log-uniformly in 1..4 m, which fixes the blur radius at infinity
    (see the derivation above); K follows from r_inf = K * (d_f - d_inf). The EF 50 mm f/1.8 is
    round wide open, so most apertures are disks; ``polygon_prob`` of them get 5-8 blades so that
    the data also exercises the aperture parameter. Returns (lens, metadata for the JSON file).
    """
    if not d_f > d_inf:
        raise ValueError(f"sample_ebb_lens: need d_f > d_inf, got d_f={d_f}, d_inf={d_inf}")
    lo, hi = EBB_FOCUS_RANGE_M
    z_f = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    r_inf = ebb_radius_at_infinity(z_f, width)
    K = r_inf / (d_f - d_inf)
    gamma = float(rng.uniform(*gamma_range))
    if rng.random() < polygon_prob:
        aperture, blades = "polygon", int(rng.integers(5, 9))
        rotation = float(rng.uniform(0.0, 2.0 * math.pi / blades))
    else:
        aperture, blades, rotation = "disk", 6, 0.0
    lens = LensParams(K=float(K), d_f=float(d_f), gamma=gamma, aperture=aperture, blades=blades, rotation=rotation)
    meta = {"focus_distance_m": z_f, "radius_at_infinity_px": r_inf, "d_inf": float(d_inf)}
    return lens, meta


def max_ebb_radius(width: int, min_subject_fraction: float = 0.45) -> float:
    """Largest blur radius :func:`sample_ebb_lens` can produce for a scene whose nearest point is at
    d = 1 and whose subject has true relative disparity >= ``min_subject_fraction`` (used to size
    the synthetic canvas margin)."""
    r_inf = ebb_radius_at_infinity(EBB_FOCUS_RANGE_M[0], width)
    s = min_subject_fraction
    return r_inf * max(1.0, (1.0 - s) / s)


# ==== aperture kernels ==============================================================================
def aperture_edge_distance(dy: torch.Tensor, dx: torch.Tensor, radius: float, lens: LensParams) -> torch.Tensor:
    """Signed distance-like value, positive inside the aperture of the given radius.

    Disk: radius - rho. Polygon (circumradius = radius, as BokehMe's polygon renderer): the distance
    from the centre to the edge along the ray is radius * cos(pi/N) / cos(phi), phi the angle to the
    nearest edge normal; the value is that minus rho.
    """
    rho = torch.sqrt(dx * dx + dy * dy)
    if lens.aperture == "disk":
        return radius - rho
    n = lens.blades
    # image y points down: use -dy so that rotation 0 puts a vertex straight up
    theta = torch.atan2(-dy, dx) - (math.pi / 2 + lens.rotation)
    sector = 2 * math.pi / n
    # angle relative to the nearest edge normal (edge normals sit half a sector from the vertices)
    phi = torch.remainder(theta, sector) - sector / 2
    edge = radius * math.cos(math.pi / n) / torch.cos(phi)
    return edge - rho


def _subsample_offsets(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5


_KERNEL_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()


def _cached(key: tuple, build: Callable[[], torch.Tensor], limit: int = 256) -> torch.Tensor:
    hit = _KERNEL_CACHE.get(key)
    if hit is not None:
        _KERNEL_CACHE.move_to_end(key)
        return hit
    value = build()
    _KERNEL_CACHE[key] = value
    if len(_KERNEL_CACHE) > limit:
        _KERNEL_CACHE.popitem(last=False)
    return value


def aperture_kernel(radius: float, lens: LensParams, supersample: int = 8) -> torch.Tensor:
    """Energy-normalised aperture kernel of the given radius: (2R+1, 2R+1) float64, sums to 1.

    Each tap is the area of the pixel square covered by the disk/polygon, estimated on a
    ``supersample``² grid, so the kernel is anti-aliased and its size is exact (its area is
    pi r² for a disk within the subsample error). A radius below the subsample spacing gives a delta.
    """
    radius = float(radius)
    key = (
        "aa",
        round(radius, 6),
        lens.aperture,
        lens.blades if lens.aperture == "polygon" else 0,
        round(lens.rotation, 6) if lens.aperture == "polygon" else 0.0,
        supersample,
    )

    def build() -> torch.Tensor:
        R = int(math.ceil(radius + 0.5))
        if radius <= 0.0:
            k = torch.zeros(1, 1, dtype=torch.float64)
            k[0, 0] = 1.0
            return k
        taps = torch.arange(-R, R + 1, dtype=torch.float64)
        sub = _subsample_offsets(supersample)
        ys = (taps[:, None] + sub[None, :]).reshape(-1)
        yy, xx = torch.meshgrid(ys, ys, indexing="ij")
        inside = (aperture_edge_distance(yy, xx, radius, lens) >= 0).to(torch.float64)
        n = 2 * R + 1
        cover = inside.reshape(n, supersample, n, supersample).mean(dim=(1, 3))
        total = cover.sum()
        if total <= 0:
            k = torch.zeros(n, n, dtype=torch.float64)
            k[R, R] = 1.0
            return k
        return cover / total

    return _cached(key, build)


# ==== FFT convolution and the binned scatter =========================================================
def fft_size(n: int) -> int:
    """Smallest 5-smooth integer >= n (FFTs of such sizes are fast; primes like 17 are not)."""
    m = max(int(n), 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def fft_convolve_full(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Full linear convolution of x (C, h, w) with a centred kernel (kh, kw), both odd sizes.

    Returns (C, h + kh - 1, w + kw - 1): output row i corresponds to input row i - kh // 2.
    """
    C, h, w = x.shape
    kh, kw = kernel.shape
    k = kernel.to(device=x.device, dtype=x.dtype)
    if kh == 1 and kw == 1:
        return x * k[0, 0]
    if kh * kw <= 49:
        # small kernels (radius <= 3): a direct convolution is cheaper than two FFTs of the crop;
        # conv2d correlates, so flip the kernel (polygons with an odd number of blades are not symmetric)
        weight = k.flip(0, 1).view(1, 1, kh, kw).expand(C, 1, kh, kw)
        return torch.nn.functional.conv2d(x[None], weight, padding=(kh - 1, kw - 1), groups=C)[0]
    fh, fw = fft_size(h + kh - 1), fft_size(w + kw - 1)
    X = torch.fft.rfft2(x, s=(fh, fw))
    Kf = torch.fft.rfft2(k, s=(fh, fw))
    y = torch.fft.irfft2(X * Kf, s=(fh, fw))
    return y[:, : h + kh - 1, : w + kw - 1]


def radius_bins(r_max: float, min_step: float = 0.5, rel_step: float = 0.125, max_step: float = 2.0) -> list[float]:
    """Bin radii 0, 0.5, 1, ... with steps growing as r/8 (capped at 2 px) up to >= r_max.

    Sources are split between the two neighbouring bins so that the mean squared spread is exact, so
    the rendered radius is exact; the step only sets how soft the edge of a large blur disk is.
    """
    bins = [0.0]
    while bins[-1] < r_max:
        step = min(max(min_step, rel_step * bins[-1]), max_step)
        bins.append(round(bins[-1] + step, 6))
    if len(bins) == 1:
        bins.append(min_step)
    return bins


def signed_bins(S_min: float, S_max: float, **steps: float) -> list[float]:
    """Sorted bin centres covering [S_min, S_max], symmetric radius bins on both sides of 0."""
    neg = radius_bins(max(-S_min, 0.0), **steps)
    pos = radius_bins(max(S_max, 0.0), **steps)
    return [-b for b in reversed(neg[1:])] + pos


class BinSplit:
    """Split of a per-pixel value v (a radius or a signed defocus) between sorted bin centres.

    A value between neighbouring centres a < b (never of opposite signs: 0 is a centre) goes to b
    with weight t = (v² - a²) / (b² - a²) and to a with 1 - t. Read as blur radii this keeps the mean
    squared spread of the mixture of the two kernels equal to that of a kernel of radius |v|, so
    the rendered size is exact. Values beyond the outer centres go to the outer centre.
    """

    def __init__(self, v: torch.Tensor, centres: Sequence[float]) -> None:
        if len(centres) < 2 or any(b <= a for a, b in zip(centres, centres[1:])):
            raise ValueError(f"BinSplit: need >= 2 increasing centres, got {list(centres)}")
        if centres[0] < 0 < centres[-1] and 0.0 not in centres:
            raise ValueError("BinSplit: centres spanning both signs must include 0")
        self.centres = [float(c) for c in centres]
        c = torch.tensor(self.centres, dtype=v.dtype, device=v.device)
        v = v.clamp(self.centres[0], self.centres[-1])
        idx = torch.bucketize(v, c, right=True).clamp(1, len(self.centres) - 1)  # v in [c[idx-1], c[idx])
        lo, hi = c[idx - 1], c[idx]
        self.idx = idx
        self.t = ((v * v - lo * lo) / (hi * hi - lo * lo)).clamp(0.0, 1.0)

    def present(self) -> list[int]:
        """Indices of the centres that receive some share."""
        counts = torch.bincount(self.idx.flatten(), minlength=len(self.centres))
        u = torch.nonzero(counts).flatten().tolist()  # cheaper than torch.unique on a CPU
        return sorted(set(u) | {j - 1 for j in u})

    def box(self, j: int, support: torch.Tensor | None = None) -> tuple[int, int, int, int] | None:
        """Bounding box of the pixels with a share in centre j (optionally within a support mask)."""
        sel = (self.idx == j) | (self.idx == j + 1)
        if support is not None:
            sel = sel & support
        return bbox_of(sel)

    def share(self, j: int, box: tuple[int, int, int, int]) -> torch.Tensor:
        """Weights of centre j on the box crop."""
        y0, y1, x0, x1 = box
        idx = self.idx[..., y0:y1, x0:x1]
        t = self.t[..., y0:y1, x0:x1]
        zero = torch.zeros_like(t)
        return torch.where(idx == j + 1, 1.0 - t, zero) + torch.where(idx == j, t, zero)


def bin_weights(r: torch.Tensor, bins: Sequence[float]) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (bin index, full-size weight map) for every bin with a share (see :class:`BinSplit`)."""
    split = BinSplit(r, bins)
    full = (0, r.shape[-2], 0, r.shape[-1])
    for j in split.present():
        yield j, split.share(j, full)


def bbox_of(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the non-zero entries of an (…, H, W) mask, or None if all zero."""
    m = (mask.reshape(-1, *mask.shape[-2:]) != 0).any(dim=0)
    rows = torch.nonzero(m.any(dim=1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(m.any(dim=0)).flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _place(full: torch.Tensor, ty0: int, tx0: int, H: int, W: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Clip an array whose [0, 0] sits at image (ty0, tx0) to the (H, W) image."""
    cy0, cx0 = max(ty0, 0), max(tx0, 0)
    cy1, cx1 = min(ty0 + full.shape[-2], H), min(tx0 + full.shape[-1], W)
    return full[:, cy0 - ty0 : cy1 - ty0, cx0 - tx0 : cx1 - tx0], (cy0, cy1, cx0, cx1)


def lowres_factor(radius: float, lowres_min_radius: float | None) -> int:
    """Power-of-two downscale for a blur of this radius, keeping >= lowres_min_radius px at low res."""
    if not lowres_min_radius or radius < 2 * lowres_min_radius:
        return 1
    return 2 ** int(math.floor(math.log2(radius / lowres_min_radius)))


def convolve_crop(
    crop: torch.Tensor,
    origin: tuple[int, int],
    extent: tuple[int, int],
    radius: float,
    kernel_for: Callable[[float], torch.Tensor],
    lowres_min_radius: float | None = None,
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Convolve a crop (C, h, w) whose top-left pixel sits at ``origin`` of an image of size
    ``extent`` with kernel_for(radius); everything outside the crop counts as zero.

    Returns the result clipped to the image and the region (y0, y1, x0, x1) it covers.

    A large blur has no detail finer than a few pixels, so when ``lowres_min_radius`` is set and the
    radius is at least twice it, the crop is average-pooled by a power of two f (keeping the radius
    >= lowres_min_radius at low resolution), convolved with kernel_for(radius / f) and bilinearly
    upsampled: f² fewer pixels, at the price of an edge softened by about f px. ``kernel_for`` must
    return normalised kernels (or ones whose sum does not depend on the radius) for that to keep
    the energy.
    """
    y0, x0 = origin
    H, W = extent
    f = lowres_factor(radius, lowres_min_radius)
    if f == 1:
        kernel = kernel_for(radius)
        full = fft_convolve_full(crop, kernel)
        # full row i <-> image row y0 - kh // 2 + i
        return _place(full, y0 - kernel.shape[0] // 2, x0 - kernel.shape[1] // 2, H, W)
    h, w = crop.shape[-2:]
    crop = torch.nn.functional.pad(crop, (0, -w % f, 0, -h % f))
    low = torch.nn.functional.avg_pool2d(crop[None], f)[0]
    kernel = kernel_for(radius / f)
    full_low = fft_convolve_full(low, kernel)
    full = torch.nn.functional.interpolate(full_low[None], scale_factor=f, mode="bilinear", align_corners=False)[0]
    return _place(full, y0 - (kernel.shape[0] // 2) * f, x0 - (kernel.shape[1] // 2) * f, H, W)


def scatter_by_radius(
    values: torch.Tensor,
    radius: torch.Tensor,
    kernel_for: Callable[[float], torch.Tensor],
    bins: Sequence[float],
    constant_tol: float = 0.05,
    lowres_min_radius: float | None = None,
) -> torch.Tensor:
    """Scatter every pixel of ``values`` (C, H, W) over a kernel of its own ``radius`` (1, H, W).

    out(p) = sum_s values(s) * k_{r(s)}(p - s), computed as a sum over radius bins of an FFT
    convolution of the bin's share of the sources (only over the bounding box of that share). The
    output keeps the input's extent: light scattered past the border is lost, so callers that need
    energy near the border pad first. When the radius is the same (within ``constant_tol``) for all
    sources, a single convolution with the exact kernel replaces the bins.
    """
    out = torch.zeros_like(values)
    extent = values.shape[-2:]
    support = values.abs().amax(dim=0, keepdim=True) > 0
    box = bbox_of(support)
    if box is None:
        return out
    r_used = radius[support]
    r_lo, r_hi = float(r_used.min()), float(r_used.max())
    if r_hi - r_lo <= constant_tol:
        # one radius (a fronto-parallel layer): one convolution with the exact kernel, no bins
        y0, y1, x0, x1 = box
        res, (y0, y1, x0, x1) = convolve_crop(
            values[:, y0:y1, x0:x1], (y0, x0), extent, 0.5 * (r_lo + r_hi), kernel_for, lowres_min_radius
        )
        out[:, y0:y1, x0:x1] += res
        return out
    split = BinSplit(radius, bins)
    for j in split.present():
        jbox = split.box(j, support)
        if jbox is None:
            continue
        y0, y1, x0, x1 = jbox
        crop = values[:, y0:y1, x0:x1] * split.share(j, jbox)
        res, (y0, y1, x0, x1) = convolve_crop(crop, (y0, x0), extent, bins[j], kernel_for, lowres_min_radius)
        out[:, y0:y1, x0:x1] += res
    return out


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
