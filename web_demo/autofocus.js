// The project's one auto-focus, ported from Python: mirrors
//   training.renderers.lens.auto_focus(disparity)  (= LensParams.for_photo(disparity) with its defaults)
// so that the page feeds a lens model the lens that evaluation, training on EBB! and
// `python -m eval` would use on the same depth map. Keep the two in step: tests/test_web_modules.py
// runs this module under node on several maps (one over 1,000,000 values, so the strided sample is
// exercised) and tests/test_web_page.py checks the page's own choice against the Python function.
//
// For a disparity map d (H×W, [0, 1], 1 = near), flattened row-major:
//   flat  = d, or d[:: n // 1_000_000 + 1] when it has more than 1,000,000 values
//   d_f   = quantile(flat, 0.9)  clamped to [0, 1]
//   d_far = quantile(flat, 0.02) clamped to [0, 1]
//   dof   = 0.1
//   K     = 0.0163 * W / max(d_f - d_far - dof, 0.1)
// The quantile is torch.quantile's default ('linear'), computed in float32 as torch does on a
// float32 tensor (Math.fround after each step), so d_f and d_far are bit-identical to PyTorch's;
// K is then computed in double precision, as Python does with the two floats.
//
// No DOM or LiteRT.js here: node imports this file too.

export const AUTO_FOCUS_QUANTILE = 0.9;  // lens.py AUTO_FOCUS_QUANTILE: focus on this quantile of disparity
export const AUTO_FAR_QUANTILE = 0.02;   // for_photo: the farthest surface, 2nd percentile of disparity
export const AUTO_BLUR_FRACTION = 0.0163; // lens.py AUTO_BLUR_FRACTION: far blur radius, share of the width
export const AUTO_DOF = 0.1;             // lens.py AUTO_DOF: half-width of the sharp band
export const AUTO_MIN_SPREAD = 0.1;      // for_photo: max(d_f - d_far - dof, 0.1) keeps K finite on a flat map
export const AUTO_MAX_SAMPLES = 1_000_000; // for_photo: larger maps are sampled with a stride

const f32 = Math.fround;

/**
 * torch.quantile(values, q) (interpolation 'linear') of an ascending-sorted array: position
 * q * (n - 1), interpolated between the values at its floor and ceil with torch's lerp, in float32.
 */
export function quantileSorted(sorted, q) {
  const n = sorted.length;
  if (n === 0) throw new Error('quantile of an empty array');
  const rank = f32(f32(q) * (n - 1));
  const below = Math.floor(rank);
  const above = Math.ceil(rank);
  const w = f32(rank - below);
  const a = f32(sorted[below]);
  const b = f32(sorted[above]);
  // at::lerp: start + w * (end - start) for w < 0.5, end - (end - start) * (1 - w) otherwise
  return w < 0.5 ? f32(a + f32(w * f32(b - a))) : f32(b - f32(f32(b - a) * f32(1 - w)));
}

/**
 * The lens (d_f, K, dof) of auto_focus for a disparity map of `width` columns, given row-major
 * (the page's depth tensor: [1, H, W, 1] and [1, 1, H, W] hold it in the same order).
 * Returns [d_f, K, dof] as double-precision numbers (the caller packs them into float32).
 */
export function autoFocus(disparity, width) {
  const n = disparity.length;
  if (!Number.isInteger(width) || width < 1 || n === 0 || n % width !== 0) {
    throw new Error(`autoFocus: ${n} values do not form a map of width ${width}`);
  }
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(disparity[i])) throw new Error('autoFocus: disparity contains NaN or inf');
  }
  const step = n > AUTO_MAX_SAMPLES ? Math.floor(n / AUTO_MAX_SAMPLES) + 1 : 1;
  const flat = new Float32Array(Math.ceil(n / step));  // float32, as torch.as_tensor(..., float32)
  for (let i = 0, j = 0; i < n; i += step, j++) flat[j] = disparity[i];
  flat.sort();  // a typed array sorts numerically
  const clamp01 = (x) => Math.min(Math.max(x, 0), 1);
  const dF = clamp01(quantileSorted(flat, AUTO_FOCUS_QUANTILE));
  const dFar = clamp01(quantileSorted(flat, AUTO_FAR_QUANTILE));
  const k = AUTO_BLUR_FRACTION * width / Math.max(dF - dFar - AUTO_DOF, AUTO_MIN_SPREAD);
  return [dF, k, AUTO_DOF];
}
