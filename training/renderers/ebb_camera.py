"""The EBB! camera, as a lens sampler for the synthetic scenes (``python -m training.synth``).

EBB! (Ignatov et al., CVPRW 2020) was shot with one camera and one lens; the synthetic pairs draw
their lens from the same optics, so that their blur radii are those of real EBB! photos. What is
here is thin-lens optics only; :class:`LensParams` (``lens.py``) is what a renderer reads.
"""

from __future__ import annotations

import math

import numpy as np

from .lens import LensParams

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
