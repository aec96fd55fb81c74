// Pixels in and out of the model (no page state): the photo's RGBA bytes and floats, the photo drawn
// into the model's frame, floats packed into and unpacked from a tensor by the manifest's layout
// and range, and a depth map as a gray picture.

import {spatial} from './manifest.js';

/** The photo's RGBA bytes at its own size (as displayed: EXIF orientation applied on decode). */
export function photoRgba(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

export function rgbaToFloat(rgba, n) {
  const out = new Float32Array(n * 3);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = rgba[p * 4 + c] / 255;
  return out;
}

/**
 * The photo in the model's frame (photo.js modelFrame): turned by 90° if its orientation differs,
 * drawn at ch×cw with the browser's high-quality (antialiased) scaling. Returns H×W×3 floats of
 * the content only, in [0, 1].
 */
export function photoInFrame(bitmap, f) {
  const canvas = new OffscreenCanvas(f.cw, f.ch);
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.imageSmoothingQuality = 'high';
  if (f.turn) {
    // np.rot90(k=1), counter-clockwise: the photo's top edge becomes the frame's left edge.
    ctx.translate(0, f.ch);
    ctx.rotate(-Math.PI / 2);
    ctx.drawImage(bitmap, 0, 0, f.ch, f.cw);
  } else {
    ctx.drawImage(bitmap, 0, 0, f.cw, f.ch);
  }
  return rgbaToFloat(ctx.getImageData(0, 0, f.cw, f.ch).data, f.cw * f.ch);
}

/** Floats in [0, 1], H×W×C channels-last -> the tensor's layout and range. */
export function toTensorData(values, t, channels) {
  const {h, w} = spatial(t);
  const [lo, hi] = t.range;
  const out = new Float32Array(h * w * channels);
  const nchw = t.layout === 'NCHW';
  for (let p = 0; p < h * w; p++) {
    for (let c = 0; c < channels; c++) {
      out[nchw ? c * h * w + p : p * channels + c] = lo + (hi - lo) * values[p * channels + c];
    }
  }
  return out;
}

/** The output tensor (its layout and range) -> floats in [0, 1], H×W×3, cut to the content. */
export function fromOutput(data, t, f) {
  const {h, w, c: channels} = spatial(t);
  const [lo, hi] = t.range;
  const nchw = t.layout === 'NCHW';
  const out = new Float32Array(f.ch * f.cw * 3);
  for (let y = 0; y < f.ch; y++) {
    for (let x = 0; x < f.cw; x++) {
      const p = (y + f.top) * w + (x + f.left);
      for (let c = 0; c < 3; c++) {
        const v = data[nchw ? c * h * w + p : p * channels + c];
        out[(y * f.cw + x) * 3 + c] = (Math.min(Math.max(v, lo), hi) - lo) / (hi - lo);
      }
    }
  }
  return out;
}

export function grayRgba(values) {
  const rgba = new Uint8ClampedArray(values.length * 4);
  for (let p = 0; p < values.length; p++) {
    const g = Math.floor(Math.min(Math.max(values[p], 0), 1) * 255 + 0.5);
    rgba[p * 4] = rgba[p * 4 + 1] = rgba[p * 4 + 2] = g;
    rgba[p * 4 + 3] = 255;
  }
  return rgba;
}
