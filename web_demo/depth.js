// The depth of a photo. A photo is all a user needs: its depth comes from, in this order (shown in
// the model panel as "depth source"):
//   1. a depth map the user gives (grayscale, bright = near), or a sample's;
//   2. a depth .tflite the user drops (MiDaS v2.1 small, Depth Anything V2 small; DEPTH_MODEL
//      below is the contract, the same as android_demo's model_spec.json "depth_model");
//   3. a person matte, MediaPipe selfie segmentation (python -m eval.matte prepare): person = near.
// The matte model is ./matte/selfie_segmentation.tflite (relative to this file, in web_demo/),
// written at set-up time.

import {loadAndCompile, Tensor} from '@litertjs/core';
import {setFact} from './panel.js';
import {minMax, resize} from './photo.js';
import {photoRgba} from './pixels.js';
import {state} from './state.js';

const MATTE_URL = new URL('./matte/selfie_segmentation.tflite', import.meta.url);
const MATTE_COMMAND = 'bash web_demo/setup.sh (or: python -m eval.matte prepare)';
// A user's depth .tflite (android_demo/app/src/main/assets/model_spec.json "depth_model", which
// tests/test_web_modules.py checks this against): one float32 RGB input [1, h, w, 3] (or
// [1, 3, h, w]), the photo squashed to h×w and normalised with ImageNet's mean and std as MiDaS
// v2.1 and Depth Anything V2 are; one float32 output of h'×w' relative disparity (bigger =
// nearer), min-max normalised per photo to [0, 1] and resized to the photo.
export const DEPTH_MODEL = {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]};

/** A grayscale depth map (bright = near) at the photo's size: values / 255, resized if smaller. */
function depthFromFile(bitmap, name, H, W) {
  const {width: w, height: h} = bitmap;
  // training.data.read_depth's rule: the same aspect ratio (2 %), else it is not this photo's map.
  if (Math.abs(h / w - H / W) > 0.02 * (H / W)) {
    throw new Error(`${name}: depth map is ${w}×${h} but the photo is ${W}×${H}; aspect ratios differ ` +
                    '(the map must be of the photo as displayed)');
  }
  const rgba = photoRgba(bitmap);
  const gray = new Float32Array(w * h);
  for (let p = 0; p < w * h; p++) gray[p] = rgba[p * 4] / 255;  // red channel of a gray PNG, as the app
  return resize(gray, h, w, 1, H, W);
}

async function compileBytes(bytes, what, command) {
  try {
    return await loadAndCompile(bytes, {accelerator: 'wasm'});
  } catch (e) {
    throw new Error(`${what}: LiteRT.js cannot load it (${e?.message ?? e})${command ? `; ${command}` : ''}`);
  }
}

/** The person matte (MediaPipe selfie segmentation), H×W person probability used as disparity. */
async function personMatte(rgbaFloat, H, W) {
  if (!state.matteModel) {
    const r = await fetch(MATTE_URL);
    if (!r.ok) {
      throw new Error(`${MATTE_URL.pathname}: HTTP ${r.status}: no person-matte model to stand in for the missing ` +
                      `depth map. Set it up with ${MATTE_COMMAND}, or drop a depth map.`);
    }
    // Always on WASM: 256×256 is small, and it keeps WebGPU free for the bokeh model.
    state.matteModel = await compileBytes(new Uint8Array(await r.arrayBuffer()), MATTE_URL.pathname, MATTE_COMMAND);
  }
  const [inp] = state.matteModel.getInputDetails();
  const [, h, w] = Array.from(inp.shape);  // [1, 256, 256, 3]
  // Squashed to the square input (as MediaPipe does), with eval.matte's resampling.
  const x = resize(rgbaFloat, H, W, 3, h, w);
  const out = await runSingle(state.matteModel, x, inp.shape);
  return resize(out, h, w, 1, H, W).map((v) => Math.min(Math.max(v, 0), 1));
}

/** A user's depth .tflite: the DEPTH_MODEL contract (see its comment). */
async function depthFromModel(rgbaFloat, H, W) {
  const dm = state.userDepthModel;
  if (!dm.model) dm.model = await compileBytes(dm.bytes, dm.name, '');
  const ins = dm.model.getInputDetails(), outs = dm.model.getOutputDetails();
  if (ins.length !== 1 || outs.length !== 1) {
    throw new Error(`${dm.name}: ${ins.length} inputs and ${outs.length} outputs; a depth model has one of each`);
  }
  const shape = Array.from(ins[0].shape);
  const nchw = shape.length === 4 && shape[1] === 3 && shape[3] !== 3;
  if (shape.length !== 4 || shape[0] !== 1 || (!nchw && shape[3] !== 3) || ins[0].dtype !== 'float32') {
    throw new Error(`${dm.name}: input is ${ins[0].dtype}${JSON.stringify(shape)}; expected float32 [1, h, w, 3] or [1, 3, h, w]`);
  }
  const [h, w] = nchw ? [shape[2], shape[3]] : [shape[1], shape[2]];
  const x = resize(rgbaFloat, H, W, 3, h, w);
  const data = new Float32Array(h * w * 3);
  for (let p = 0; p < h * w; p++) {
    for (let c = 0; c < 3; c++) {
      const v = (x[p * 3 + c] - DEPTH_MODEL.mean[c]) / DEPTH_MODEL.std[c];
      data[nchw ? c * h * w + p : p * 3 + c] = v;
    }
  }
  const oshape = Array.from(outs[0].shape).filter((d) => d !== 1);
  if (oshape.length !== 2 || outs[0].dtype !== 'float32') {
    throw new Error(`${dm.name}: output is ${outs[0].dtype}${JSON.stringify(Array.from(outs[0].shape))}; ` +
                    'expected float32 with one h×w map ([1, h, w] or [1, h, w, 1])');
  }
  const out = await runSingle(dm.model, data, shape);
  return resize(minMax(out), oshape[0], oshape[1], 1, H, W);
}

async function runSingle(model, data, shape) {
  const input = new Tensor(data, Array.from(shape));
  let outputs;
  try {
    outputs = await model.run([input]);
  } finally {
    input.delete();
  }
  const out = outputs[0];
  for (const t of outputs.slice(1)) t.delete();
  const host = out.accelerator === 'wasm' ? out : await out.moveTo('wasm');
  try {
    return Float32Array.from(host.toTypedArray());
  } finally {
    host.delete();
  }
}

/** The depth of the current photo (cached): depth file > depth model > person matte. */
export async function depthForPhoto(rgbaFloat) {
  if (state.depth) return state.depth;
  const p = state.photo;
  const t0 = performance.now();
  let values, source, detail;
  if (p.depthFile) {
    values = depthFromFile(p.depthFile.bitmap, p.depthFile.name, p.height, p.width);
    source = 'depth map';
    detail = `${p.depthFile.name} (${p.depthFile.bitmap.width}×${p.depthFile.bitmap.height})`;
  } else if (state.userDepthModel) {
    values = await depthFromModel(rgbaFloat, p.height, p.width);
    source = 'depth model';
    detail = state.userDepthModel.name;
  } else {
    values = await personMatte(rgbaFloat, p.height, p.width);
    source = 'person matte';
    let on = 0;
    for (const v of values) on += v > 0.5;
    detail = `MediaPipe selfie segmentation; person on ${(100 * on / values.length).toFixed(1)} % of the photo` +
             (on === 0 ? ' (no person found: nothing to blur; drop a depth map)' : '');
  }
  state.depth = {values, source, detail, ms: performance.now() - t0, fresh: true};
  setFact('depth source', `${source}: ${detail}`);
  return state.depth;
}
