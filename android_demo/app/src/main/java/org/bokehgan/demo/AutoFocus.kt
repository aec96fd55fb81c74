package org.bokehgan.demo

import kotlin.math.ceil
import kotlin.math.floor

/**
 * The project's one auto-focus, ported from Python: mirrors
 * `training.renderers.lens.auto_focus(disparity)` (= `LensParams.for_photo(disparity)` with its
 * defaults), so that the app feeds a lens model the lens that evaluation, training on EBB! and the
 * web demo (`web_demo/autofocus.js`) use on the same depth map.
 *
 * For a disparity map d (H×W, [0, 1], 1 = near), flattened row-major:
 * - flat = d, or every (n / 1_000_000 + 1)-th value when it has more than 1,000,000 values;
 * - d_f = quantile(flat, 0.9), d_far = quantile(flat, 0.02), both clamped to [0, 1];
 * - dof = 0.1;
 * - K = 0.0163 * W / max(d_f - d_far - dof, 0.1).
 *
 * The quantile is torch.quantile's default ('linear') in float32, as PyTorch computes it on a
 * float32 tensor: position q * (n - 1), interpolated between its floor and ceil with torch's lerp.
 * K is computed in double precision, as Python does with the two floats.
 *
 * `tests/test_android_sources.py` checks these constants against training/renderers/lens.py (the
 * app is not built in CI); the web port is checked numerically against Python by tests/test_web_modules.py.
 */
object AutoFocus {
    /** lens.py AUTO_FOCUS_QUANTILE: focus on this quantile of disparity. */
    const val FOCUS_QUANTILE = 0.9f
    /** for_photo: the farthest surface is the 2nd percentile of disparity. */
    const val FAR_QUANTILE = 0.02f
    /** lens.py AUTO_BLUR_FRACTION: blur radius of the farthest surface, as a share of the width. */
    const val BLUR_FRACTION = 0.0163
    /** lens.py AUTO_DOF: half-width of the sharp band around d_f. */
    const val DOF = 0.1
    /** for_photo: max(d_f - d_far - dof, 0.1) keeps K finite on a (nearly) flat map. */
    const val MIN_SPREAD = 0.1
    /** for_photo: larger maps are sampled with a stride. */
    const val MAX_SAMPLES = 1_000_000

    /** torch.quantile(values, q), interpolation 'linear', of an ascending-sorted array, in float32. */
    fun quantileSorted(sorted: FloatArray, q: Float): Float {
        require(sorted.isNotEmpty()) { "quantile of an empty array" }
        val rank = q * (sorted.size - 1)  // float32, as torch: q is a float32 tensor
        val below = floor(rank).toInt()
        val above = ceil(rank).toInt()
        val w = rank - below
        val a = sorted[below]
        val b = sorted[above]
        // at::lerp: start + w * (end - start) for w < 0.5, end - (end - start) * (1 - w) otherwise
        return if (w < 0.5f) a + w * (b - a) else b - (b - a) * (1f - w)
    }

    /**
     * (d_f, K, dof) for a row-major disparity map [width] columns wide: the depth tensor exactly as
     * the model is fed it (model size, after crop and resize).
     */
    fun lens(disparity: FloatArray, width: Int): FloatArray {
        val n = disparity.size
        require(width >= 1 && n > 0 && n % width == 0) { "auto-focus: $n values do not form a map of width $width" }
        require(disparity.all { it.isFinite() }) { "auto-focus: disparity contains NaN or inf" }
        val step = if (n > MAX_SAMPLES) n / MAX_SAMPLES + 1 else 1
        val flat = FloatArray((n + step - 1) / step) { disparity[it * step] }
        flat.sort()
        val dF = quantileSorted(flat, FOCUS_QUANTILE).coerceIn(0f, 1f)
        val dFar = quantileSorted(flat, FAR_QUANTILE).coerceIn(0f, 1f)
        val k = BLUR_FRACTION * width / maxOf(dF.toDouble() - dFar - DOF, MIN_SPREAD)
        return floatArrayOf(dF, k.toFloat(), DOF.toFloat())
    }
}
