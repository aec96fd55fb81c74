// The photo <-> model-input geometry and the full-resolution blend of `python -m eval.render`,
// ported so that the page renders a photo the way the command does (eval/render/, package
// docstring steps 2-5):
//
//   modelFrame   a photo whose orientation differs from the model's is turned by 90° (np.rot90,
//                k = 1) and turned back after; it is scaled uniformly to fit and reflection-padded,
//                never cropped (eval.render.model_frame);
//   resize       bilinear with antialiasing, as torch.nn.functional.interpolate(mode='bilinear',
//                align_corners=False, antialias=True) computes it (the filter PIL calls BILINEAR);
//   tapDisparity tap to focus: the median disparity in a square of FOCUS_WINDOW of the short side
//                (eval.render._tap_disparity, with Python's round-half-to-even);
//   sharpKeep    the photo's own pixels where the lens's blur radius at the photo's resolution is
//                under SHARP_RADIUS px, a smoothstep to the model's upsampled output above
//                (eval.render.sharp_keep): in-focus pixels keep their full-resolution detail.
//
// Arrays are row-major Float32Array, channels last (H×W×C). No DOM: node imports this file, and
// tests/test_web_modules.py checks each function against the Python one it mirrors.

export const SHARP_RADIUS = [0.5, 1.5];  // eval/render/frame.py SHARP_RADIUS (px at the photo's resolution)
export const FOCUS_WINDOW = 0.02;        // eval/render/frame.py FOCUS_WINDOW (share of the short side)

/** Python's round(): half to even (round(2.5) == 2), which Math.round is not. */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Where a photo of H×W goes in a model input of mh×mw: {turn, scale, ch, cw, top, left}
 * (eval.render.model_frame for a fixed-size model). scale = model pixels per photo pixel.
 */
export function modelFrame(H, W, mh, mw) {
  const turn = (H > W && mw > mh) || (W > H && mh > mw);
  const [h, w] = turn ? [W, H] : [H, W];
  const scale = Math.min(mh / h, mw / w);
  const ch = Math.min(mh, Math.max(1, roundHalfEven(h * scale)));
  const cw = Math.min(mw, Math.max(1, roundHalfEven(w * scale)));
  return {turn, scale, ch, cw, top: Math.floor((mh - ch) / 2), left: Math.floor((mw - cw) / 2)};
}

/**
 * np.rot90(a, k, axes=(0, 1)) of an h×w×c array, k = 1 (counter-clockwise) or -1 (clockwise).
 * Returns {data, h, w} of the turned array (w×h).
 */
export function rot90(src, h, w, c, k) {
  const out = new Float32Array(h * w * c);
  // k = 1: out[i][j] = src[j][w-1-i];  k = -1: out[i][j] = src[h-1-j][i]   (out is w×h)
  for (let i = 0; i < w; i++) {
    for (let j = 0; j < h; j++) {
      const s = k === 1 ? (j * w + (w - 1 - i)) * c : ((h - 1 - j) * w + i) * c;
      const d = (i * h + j) * c;
      for (let q = 0; q < c; q++) out[d + q] = src[s + q];
    }
  }
  return {data: out, h: w, w: h};
}

/** Per output index: the first input index and the normalised weights (torch's antialiased bilinear). */
function aaWeights(inSize, outSize) {
  const scale = inSize / outSize;
  const support = scale >= 1 ? scale : 1.0;  // bilinear: half-width 1, stretched when shrinking
  const invscale = scale >= 1 ? 1 / scale : 1.0;
  const table = [];
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const w = new Float64Array(xsize);
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      w[j] = Math.max(0, 1 - Math.abs((j + xmin - center + 0.5) * invscale));
      total += w[j];
    }
    for (let j = 0; j < xsize; j++) w[j] = total > 0 ? w[j] / total : 0;
    table.push({xmin, w});
  }
  return table;
}

/** h×w×c -> H×W×c, bilinear with antialiasing (torch interpolate antialias=True): rows, then columns. */
export function resize(src, h, w, c, H, W) {
  if (h === H && w === W) return Float32Array.from(src);
  const cols = aaWeights(w, W);
  const tmp = new Float32Array(h * W * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < W; x++) {
      const {xmin, w: wt} = cols[x];
      for (let q = 0; q < c; q++) {
        let acc = 0;
        for (let j = 0; j < wt.length; j++) acc += wt[j] * src[(y * w + xmin + j) * c + q];
        tmp[(y * W + x) * c + q] = acc;
      }
    }
  }
  const rows = aaWeights(h, H);
  const out = new Float32Array(H * W * c);
  for (let y = 0; y < H; y++) {
    const {xmin: ymin, w: wt} = rows[y];
    for (let x = 0; x < W; x++) {
      for (let q = 0; q < c; q++) {
        let acc = 0;
        for (let j = 0; j < wt.length; j++) acc += wt[j] * tmp[((ymin + j) * W + x) * c + q];
        out[(y * W + x) * c + q] = acc;
      }
    }
  }
  return out;
}

/** np.pad(mode='reflect') of an h×w×c array into H×W×c with the content at (top, left). */
export function reflectPad(src, h, w, c, H, W, top, left) {
  if (h === H && w === W) return src;
  const reflect = (p, n) => {
    if (n === 1) return 0;
    const period = 2 * (n - 1);
    p = ((p % period) + period) % period;
    return p < n ? p : period - p;
  };
  const out = new Float32Array(H * W * c);
  for (let y = 0; y < H; y++) {
    const sy = reflect(y - top, h);
    for (let x = 0; x < W; x++) {
      const sx = reflect(x - left, w);
      for (let q = 0; q < c; q++) out[(y * W + x) * c + q] = src[(sy * w + sx) * c + q];
    }
  }
  return out;
}

/** d_f for a tap at (x, y), fractions of the width and height: eval.render._tap_disparity. */
export function tapDisparity(depth, H, W, x, y) {
  if (!(x >= 0 && x <= 1 && y >= 0 && y <= 1)) throw new Error(`tap ${x},${y}: not fractions in [0, 1]`);
  const half = Math.max(1, roundHalfEven(FOCUS_WINDOW * Math.min(H, W) / 2));
  const cy = Math.min(roundHalfEven(y * (H - 1)), H - 1);
  const cx = Math.min(roundHalfEven(x * (W - 1)), W - 1);
  const vals = [];
  for (let i = Math.max(cy - half, 0); i < Math.min(cy + half + 1, H); i++) {
    for (let j = Math.max(cx - half, 0); j < Math.min(cx + half + 1, W); j++) vals.push(depth[i * W + j]);
  }
  vals.sort((a, b) => a - b);
  const n = vals.length;
  return n % 2 ? vals[(n - 1) / 2] : (vals[n / 2 - 1] + vals[n / 2]) / 2;  // np.median
}

/**
 * Weight of the photo itself per pixel (eval.render.sharp_keep): the blur radius
 * K * max(|d - d_f| - dof, 0), in pixels of the model's input, divided by `scale` (model pixels
 * per photo pixel), through a smoothstep from 1 below SHARP_RADIUS[0] to 0 above SHARP_RADIUS[1].
 */
export function sharpKeep(depth, [dF, k, dof], scale) {
  const [lo, hi] = SHARP_RADIUS;
  const f32 = Math.fround;
  const out = new Float32Array(depth.length);
  for (let i = 0; i < depth.length; i++) {
    // float32 steps, as blur_radius computes on a float32 tensor
    const r = f32(f32(k) * Math.max(f32(Math.abs(f32(depth[i] - f32(dF))) - f32(dof)), 0)) / scale;
    const t = Math.min(Math.max((hi - r) / (hi - lo), 0), 1);
    out[i] = t * t * (3 - 2 * t);
  }
  return out;
}

/**
 * The result's RGBA bytes: keep * photo + (1 - keep) * model, with photo as RGBA bytes and model
 * as H×W×3 floats in [0, 1]; rounded as eval.render does ((v * 255 + 0.5) truncated).
 */
export function blend(photoRgba, model, keep) {
  const n = keep.length;
  const out = new Uint8ClampedArray(n * 4);
  for (let p = 0; p < n; p++) {
    const a = keep[p];
    for (let q = 0; q < 3; q++) {
      const m = Math.min(Math.max(model[p * 3 + q], 0), 1);
      const v = a * (photoRgba[p * 4 + q] / 255) + (1 - a) * m;
      out[p * 4 + q] = Math.floor(v * 255 + 0.5);
    }
    out[p * 4 + 3] = 255;
  }
  return out;
}

/** Per-image min-max to [0, 1] (training.depth.normalise_disparity); a flat map becomes zeros. */
export function minMax(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) throw new Error('depth model output contains NaN or inf');
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const span = Math.max(hi - lo, 1e-12);
  return Float32Array.from(values, (v) => Math.min(Math.max((v - lo) / span, 0), 1));
}
