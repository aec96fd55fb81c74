"""The numbers of the project's one auto-focus (training.renderers.lens.auto_focus), which the web
and Android demos port: their tests compare the ports' constants with these."""

from __future__ import annotations

import inspect


def python_auto_focus_constants() -> dict[str, float]:
    from training.renderers import lens

    sig = inspect.signature(lens.LensParams.for_photo).parameters
    # auto_focus() is for_photo() with its defaults, and those defaults are the named constants.
    assert (sig["focus_quantile"].default, sig["max_blur_fraction"].default, sig["dof"].default) == (
        lens.AUTO_FOCUS_QUANTILE,
        lens.AUTO_BLUR_FRACTION,
        lens.AUTO_DOF,
    )
    assert "return LensParams.for_photo(disparity)" in inspect.getsource(lens.auto_focus)
    return {
        "focus_quantile": lens.AUTO_FOCUS_QUANTILE,
        "far_quantile": lens.AUTO_FAR_QUANTILE,
        "blur_fraction": lens.AUTO_BLUR_FRACTION,
        "dof": lens.AUTO_DOF,
        "min_spread": lens.AUTO_MIN_SPREAD,
        "max_samples": lens.QUANTILE_MAX_SAMPLES,
    }
