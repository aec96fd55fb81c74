// Bokeh demo page: runs tflite_models/<model>/bokeh_<precision>.tflite with LiteRT.js.
//
// Everything the model needs to know about its tensors (names, shapes, layout, value range) comes
// from the exporter's manifest.json, as for the Android app, so the page never hard-codes a size.
// Paths are relative to this file, which the static server serves as /web_demo/index.html from
// the repository root:
//   ../tflite_models/<model>/manifest.json and bokeh_<precision>.tflite   (the exported model)
//   ./node_modules/@litertjs/core/wasm/                                     (LiteRT.js runtime)
//   ./matte/selfie_segmentation.tflite                                      (person matte, set-up time)
//   ./samples/index.json, ./samples/{original,depth}/<id>.png               (bundled samples)
//
// A photo is all a user needs. Its depth comes from, in this order (shown as "depth source"):
//   1. a depth map the user gives (grayscale, bright = near), or a sample's;
//   2. a depth .tflite the user drops (MiDaS v2.1 small, Depth Anything V2 small; DEPTH_MODEL
//      below is the contract, the same as android_demo's model_spec.json "depth_model");
//   3. a person matte, MediaPipe selfie segmentation (python -m eval.matte prepare): person = near.
// The photo is rendered as `python -m eval.render` does (photo.js): turned into the model's
// orientation and back, scaled to fit and reflection-padded (never cropped), and the result is
// the photo's own size, in-focus pixels from the photo itself, blurred ones from the model's
// output upsampled. A lens-conditioned export's `lens` = (d_f, K, dof) is the project's
// auto-focus (autofocus.js, a port of training.renderers.lens.auto_focus) on the depth at the
// model's scale; a tap on the picture sets d_f (median depth around the tap, as --focus X,Y) and
// the aperture slider sets K (as --strength); both re-render.
//
// For tests and scripts the page publishes its state on window:
//   window.__bokeh.ready       Promise, resolves once the model is compiled
//   window.__bokeh.runSample   (id) => Promise<result>
//   window.__bokehResult       last result: raw float output, the exact inputs fed to the model,
//                              lens and lensSource, depthSource, photo size (see render())
//   window.__bokehSeq          number of finished renders; __bokehBusy: a render is running
//   window.__bokehError        message of the last failure

import {getDefaultEnvironment, loadAndCompile, loadLiteRt, supportsFeature, Tensor} from '@litertjs/core';
import {autoFocus} from './autofocus.js';
import {blend, minMax, modelFrame, reflectPad, resize, rot90, sharpKeep, tapDisparity} from './photo.js';

const WASM_DIR = new URL('./node_modules/@litertjs/core/wasm/', import.meta.url).href;
const MODELS_URL = new URL('../tflite_models/', import.meta.url);
const SAMPLES_URL = new URL('./samples/', import.meta.url);
const MATTE_URL = new URL('./matte/selfie_segmentation.tflite', import.meta.url);
const EXPECTED_INPUTS = ['image', 'depth'];
const EXPECTED_OUTPUT = 'bokeh';
const LENS_INPUT = 'lens';            // optional third input of a lens-conditioned export
const LENS_VALUES = ['d_f', 'K', 'dof'];
const LENS_AUTO = 'auto-focus';            // lens source: autoFocus() on the depth map fed
const LENS_DEFAULT = 'manifest default';   // lens source: manifest inputs[lens].default (no photo yet)
const LENS_TAP = 'tap-to-focus';           // d_f from a tap
const LENS_SLIDER = 'aperture slider';     // K from the slider
// A shipped model may have no fp32 file: without ?precision= the page takes fp16 when the
// manifest has it (the phone-sized default), else the first variant the manifest lists.
const PREFERRED_PRECISION = 'fp16';
const EXPORT_COMMAND = 'python -m export --checkpoint CKPT --size HxW --out tflite_models/<name>';
const MATTE_COMMAND = 'bash web_demo/setup.sh (or: python -m eval.matte prepare)';
// A user's depth .tflite (android_demo/app/src/main/assets/model_spec.json "depth_model", which
// tests/test_web.py checks this against): one float32 RGB input [1, h, w, 3] (or [1, 3, h, w]),
// the photo squashed to h×w and normalised with ImageNet's mean and std as MiDaS v2.1 and Depth
// Anything V2 are; one float32 output of h'×w' relative disparity (bigger = nearer), min-max
// normalised per photo to [0, 1] and resized to the photo.
export const DEPTH_MODEL = {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]};
const STRENGTH_MAX_FACTOR = 3;  // the aperture slider runs from 0 to this many times the manifest's default K
const BENCH_WARMUP = 2;
const BENCH_RUNS = 10;

const params = new URLSearchParams(location.search);
const modelName = params.get('model');
const $ = (id) => document.getElementById(id);

const state = {
  manifest: null,
  spec: null,          // {image, depth, lens (null for a depth-only model), output, variant, height, width}
  precision: null,     // ?precision= or the manifest's default (defaultPrecision)
  modelUrl: null,
  compiled: new Map(), // accelerator -> CompiledModel
  matteModel: null,    // CompiledModel of the person matte (wasm), loaded on first use
  threads: false,
  photo: null,         // {bitmap, width, height, label, name, depthFile, depthModel}
  depth: null,         // {values: Float32Array H×W at the photo's size, source, detail, ms} (cached per photo)
  focus: null,         // {x, y}: the last tap, fractions of the width and height
  strength: null,      // K from the slider, or null for auto-focus's
  last: null,          // the last result
  userDepthModel: null, // {bytes, name, model}
};

function setStatus(text, isError = false) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', isError);
  if (isError) window.__bokehError = text;
}

// ---------------------------------------------------------------- manifest

/** Height and width of a [1, H, W, C] (NHWC) or [1, C, H, W] (NCHW) tensor description. */
function spatial(t) {
  if (!Array.isArray(t.shape) || t.shape.length !== 4) {
    throw new Error(`tensor "${t.name}": shape ${JSON.stringify(t.shape)} is not rank 4`);
  }
  if (t.layout === 'NHWC') return {h: t.shape[1], w: t.shape[2], c: t.shape[3]};
  if (t.layout === 'NCHW') return {h: t.shape[2], w: t.shape[3], c: t.shape[1]};
  throw new Error(`tensor "${t.name}": layout "${t.layout}" is neither NHWC nor NCHW`);
}

/** ?precision= if given, else fp16 if the manifest has it, else its first variant. */
function defaultPrecision(m, requested) {
  if (requested) return requested;
  const listed = Object.keys(m.variants ?? {});
  return listed.includes(PREFERRED_PRECISION) ? PREFERRED_PRECISION : listed[0];
}

/** The optional `lens` input: 3 float32 values (d_f, K, dof) and a usable default. */
function readLens(t, fail) {
  const label = `input "${LENS_INPUT}"`;
  if (t.dtype !== 'float32') fail(`${label} has dtype ${t.dtype}; the page feeds float32`);
  if (!Array.isArray(t.shape) || t.shape.reduce((a, b) => a * b, 1) !== LENS_VALUES.length) {
    fail(`${label}: shape ${JSON.stringify(t.shape)} does not hold ${LENS_VALUES.length} values`);
  }
  if (JSON.stringify(t.values) !== JSON.stringify(LENS_VALUES)) {
    fail(`${label}: values ${JSON.stringify(t.values)}, the page feeds ${JSON.stringify(LENS_VALUES)}`);
  }
  const d = t.default;
  const ok = Array.isArray(d) && d.length === 3 && d.every(Number.isFinite) &&
      d[0] >= 0 && d[0] <= 1 && d[1] >= 0 && d[2] >= 0 && d[2] <= 0.5;
  if (!ok) fail(`${label}: default ${JSON.stringify(d)} is not [d_f in [0, 1], K >= 0, dof in [0, 0.5]]`);
  return t;
}

/** Check the manifest against what this page can feed; return the tensor specs it will use. */
function readManifest(m, where) {
  const fail = (msg) => { throw new Error(`${where}: ${msg}`); };
  if (m.format_version !== 1) fail(`format_version ${m.format_version}, this page reads 1`);
  const byName = (list, name) => (list ?? []).find((t) => t.name === name);
  const [image, depth] = EXPECTED_INPUTS.map((n) => byName(m.inputs, n) ?? fail(`no input named "${n}"`));
  // Any other input would be left unfed and the model would fail inside LiteRT.js: say so here.
  const extra = (m.inputs ?? []).map((t) => t.name).filter((n) => ![...EXPECTED_INPUTS, LENS_INPUT].includes(n));
  if (extra.length) fail(`unknown input(s) ${extra.join(', ')}; the page feeds image, depth and an optional lens`);
  const lensSpec = byName(m.inputs, LENS_INPUT);
  const lens = lensSpec ? readLens(lensSpec, fail) : null;
  const output = byName(m.outputs, EXPECTED_OUTPUT) ?? fail(`no output named "${EXPECTED_OUTPUT}"`);
  for (const t of [image, depth, output]) {
    if (t.dtype !== 'float32') fail(`tensor "${t.name}" has dtype ${t.dtype}; the page feeds float32`);
    if (!Array.isArray(t.range) || t.range.length !== 2) fail(`tensor "${t.name}" has no [lo, hi] range`);
  }
  const si = spatial(image), sd = spatial(depth), so = spatial(output);
  if (si.c !== 3 || sd.c !== 1 || so.c !== 3) fail('expected 3 image, 1 depth and 3 output channels');
  if (si.h !== sd.h || si.w !== sd.w || si.h !== so.h || si.w !== so.w) {
    fail('image, depth and output sizes differ');
  }
  const precision = state.precision;
  const listed = Object.keys(m.variants ?? {});
  const variant = m.variants?.[precision] ?? fail(
      `no "${precision}" variant (has ${listed.join(', ') || 'none'}): open the page with ` +
      (listed.length ? `&precision=${listed.includes(PREFERRED_PRECISION) ? PREFERRED_PRECISION : listed[0]}` : '') +
      ` or export that precision (${EXPORT_COMMAND} --precisions ${precision})`);
  return {image, depth, lens, output, variant, height: si.h, width: si.w};
}

/** The model's inputs in feeding order; the lens only for a lens-conditioned export. */
function inputSpecs(spec) {
  return spec.lens ? [spec.image, spec.depth, spec.lens] : [spec.image, spec.depth];
}

/** The compiled model's own signature must agree with the manifest (name, shape, dtype). */
function checkSignature(model, spec) {
  const inputs = model.getInputDetails();
  const details = [...inputs, ...model.getOutputDetails()];
  const wanted = inputSpecs(spec);
  if (inputs.length !== wanted.length) {
    throw new Error(`the .tflite has inputs ${inputs.map((x) => x.name).join(', ')}, ` +
                    `manifest.json lists ${wanted.map((t) => t.name).join(', ')}`);
  }
  for (const t of [...wanted, spec.output]) {
    const d = details.find((x) => x.name === t.name);
    if (!d) {
      throw new Error(`the .tflite has no signature tensor "${t.name}" (has ${details.map((x) => x.name).join(', ')})`);
    }
    const shape = Array.from(d.shape);
    if (JSON.stringify(shape) !== JSON.stringify(t.shape) || d.dtype !== t.dtype) {
      throw new Error(`tensor "${t.name}": .tflite says ${d.dtype}${JSON.stringify(shape)}, ` +
                      `manifest says ${t.dtype}${JSON.stringify(t.shape)}`);
    }
  }
}

// ---------------------------------------------------------------- runtime

async function pickAccelerator(requested) {
  const hasGpu = !!getDefaultEnvironment().webGpuDevice;
  if (requested === 'webgpu' && !hasGpu) {
    console.warn('WebGPU requested but this browser offers no WebGPU device; using wasm');
    return 'wasm';
  }
  if (requested === 'auto') return hasGpu ? 'webgpu' : 'wasm';
  return requested;
}

async function compiledFor(accelerator) {
  if (!state.compiled.has(accelerator)) {
    const model = await loadAndCompile(state.modelBytes, {accelerator});
    checkSignature(model, state.spec);
    state.compiled.set(accelerator, model);
  }
  return state.compiled.get(accelerator);
}

async function init() {
  if (!modelName) {
    throw new Error('No model chosen. Open this page as index.html?model=<name> (the URL python web_demo/serve.py ' +
                    'prints), where <name> is a folder in tflite_models/ holding manifest.json.');
  }
  const base = new URL(`${encodeURIComponent(modelName)}/`, MODELS_URL);
  const manifestUrl = new URL('manifest.json', base);
  const resp = await fetch(manifestUrl);
  if (!resp.ok) {
    throw new Error(`${manifestUrl.pathname}: HTTP ${resp.status}: no exported model "${modelName}". ` +
                    `Make it with: ${EXPORT_COMMAND.replace('<name>', modelName)}`);
  }
  state.manifest = await resp.json();
  state.precision = defaultPrecision(state.manifest, params.get('precision'));
  state.spec = readManifest(state.manifest, manifestUrl.pathname);
  state.modelUrl = new URL(state.spec.variant.file, base).href;
  // Fetched here rather than by LiteRT.js, so that a missing file is a message naming the command.
  const file = await fetch(state.modelUrl);
  if (!file.ok) {
    throw new Error(`${new URL(state.modelUrl).pathname}: HTTP ${file.status}: the manifest lists it but the ` +
                    `file is missing; re-export: ${EXPORT_COMMAND.replace('<name>', modelName)}`);
  }
  state.modelBytes = new Uint8Array(await file.arrayBuffer());

  // Multi-threaded XNNPACK needs SharedArrayBuffer, i.e. a cross-origin-isolated page
  // (web_demo/serve.py sends the COOP/COEP headers); elsewhere the single-threaded build runs.
  state.threads = params.get('threads') !== '0' && self.crossOriginIsolated &&
      await supportsFeature('relaxedSimd') && await supportsFeature('threads');
  setStatus('Loading LiteRT.js…');
  await loadLiteRt(WASM_DIR, {threads: state.threads});

  const requested = params.get('accelerator') ?? 'auto';
  $('accelerator').value = requested;
  const accelerator = await pickAccelerator(requested);
  setStatus(`Compiling ${state.spec.variant.file} for ${accelerator}…`);
  await compiledFor(accelerator);
  showFacts(accelerator);
  setupStrength();
  setStatus('Ready: pick a sample or drop a photo (a depth map is optional).');
}

function showFacts(accelerator) {
  const m = state.manifest, s = state.spec;
  const facts = {
    model: m.name,
    precision: `${state.precision} (${(s.variant.size_bytes / 1024).toFixed(0)} KiB)`,
    input: `${s.height}×${s.width} ${s.image.layout}`,
    lens: s.lens ? `${lensText(s.lens.default)} (${LENS_DEFAULT}, until a depth map is loaded)`
                 : 'none (depth-only model)',
    accelerator: accelerator + (accelerator === 'wasm' ? (state.threads ? ', threads' : ', 1 thread') : ''),
    converter: m.converter ?? '?',
    'GPU run': gpuRunText(s.variant.gpu_run),
    'depth source': 'none yet',
  };
  $('model-facts').replaceChildren(...Object.entries(facts).flatMap(([k, v]) => {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v; dd.dataset.fact = k;
    return [dt, dd];
  }));
}

function setFact(key, text) {
  const dd = document.querySelector(`#model-facts dd[data-fact="${key}"]`);
  if (dd) dd.textContent = text;
}

/** What the exporter's GPU-run gate measured (manifest variants[p].gpu_run, export/gpu_run.py). */
function gpuRunText(run) {
  if (!run) return 'not recorded (older export)';
  if (run.status !== 'passed') return `not run at export: ${run.reason}`;
  return `fully on LiteRT's GPU accelerator (${run.device}, ${run.backend}), ` +
         `${run.psnr_db_vs_cpu.toFixed(1)} dB vs CPU`;
}

/** "d_f 0.80 · K 35.8 px · dof 0.10": the lens values as fed, for the page and its latency panel. */
function lensText([dF, k, dof]) {
  return `d_f ${dF.toFixed(2)} · K ${k.toFixed(1)} px · dof ${dof.toFixed(2)}`;
}

// ---------------------------------------------------------------- aperture slider

/** The slider runs over [0, STRENGTH_MAX_FACTOR × the manifest's default K]; disabled without a lens input. */
function setupStrength() {
  const slider = $('strength');
  if (!state.spec.lens) {
    slider.disabled = true;
    $('strength-value').textContent = 'this model reads no lens';
    return;
  }
  const kMax = Math.max(1, Math.ceil(STRENGTH_MAX_FACTOR * state.spec.lens.default[1]));
  slider.max = String(kMax);
  slider.step = String(kMax >= 50 ? 0.5 : 0.1);
  slider.value = String(state.spec.lens.default[1]);
  slider.disabled = false;
  $('strength-value').textContent = 'auto';
}

function showStrength(k, fromSlider) {
  if (!state.spec.lens) return;
  if (!fromSlider) $('strength').value = String(k);
  $('strength-value').textContent = `K ${k.toFixed(1)} px${fromSlider ? '' : ' (auto)'}`;
}

// ---------------------------------------------------------------- pixels

/** The photo's RGBA bytes at its own size (as displayed: EXIF orientation applied on decode). */
function photoRgba(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

function rgbaToFloat(rgba, n) {
  const out = new Float32Array(n * 3);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = rgba[p * 4 + c] / 255;
  return out;
}

/**
 * The photo in the model's frame (photo.js modelFrame): turned by 90° if its orientation differs,
 * drawn at ch×cw with the browser's high-quality (antialiased) scaling. Returns H×W×3 floats of
 * the content only, in [0, 1].
 */
function photoInFrame(bitmap, f) {
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
function toTensorData(values, t, channels) {
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
function fromOutput(data, t, f) {
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

function paint(canvas, rgba, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
}

/** Show the photo as large as the panel allows, at most 70 % of the window high, aspect kept. */
function fitDisplay(width, height) {
  const room = $('compare').parentElement.clientWidth || width;
  const w = Math.max(1, Math.min(room, 0.7 * innerHeight * width / height));
  $('before').style.width = `${w}px`;
  $('before').style.height = `${w * height / width}px`;
}

function grayRgba(values) {
  const rgba = new Uint8ClampedArray(values.length * 4);
  for (let p = 0; p < values.length; p++) {
    const g = Math.floor(Math.min(Math.max(values[p], 0), 1) * 255 + 0.5);
    rgba[p * 4] = rgba[p * 4 + 1] = rgba[p * 4 + 2] = g;
    rgba[p * 4 + 3] = 255;
  }
  return rgba;
}

// ---------------------------------------------------------------- depth sources

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
async function depthForPhoto(rgbaFloat) {
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

// ---------------------------------------------------------------- inference

/** The lens for this render: auto-focus at the model's scale, d_f from a tap, K from the slider. */
function lensFor(depthContent, cw, fullDepth) {
  const s = state.spec;
  const auto = autoFocus(depthContent, cw);
  let [dF, k, dof] = auto;
  const sources = [];
  if (state.focus) {
    dF = tapDisparity(fullDepth, state.photo.height, state.photo.width, state.focus.x, state.focus.y);
    sources.push(LENS_TAP);
  }
  if (state.strength !== null && s.lens) {
    k = state.strength;
    sources.push(LENS_SLIDER);
  }
  // A depth-only model reads no lens; the blend still uses auto-focus's, as eval.render does.
  return {values: Float32Array.from([dF, k, dof]), source: sources.length ? sources.join(' + ') : LENS_AUTO,
          autoK: auto[1]};
}

async function infer(model, imageData, depthData, lens) {
  const s = state.spec;
  const feeds = {[s.image.name]: new Tensor(imageData, s.image.shape),
                 [s.depth.name]: new Tensor(depthData, s.depth.shape)};
  if (s.lens) feeds[s.lens.name] = new Tensor(lens, s.lens.shape);
  let outputs;
  try {
    outputs = await model.run(feeds);
  } finally {
    for (const t of Object.values(feeds)) t.delete();
  }
  const out = outputs[s.output.name];
  for (const [name, t] of Object.entries(outputs)) if (name !== s.output.name) t.delete();
  // Reading back to the CPU is part of inference: on WebGPU it is what waits for the GPU.
  const host = out.accelerator === 'wasm' ? out : await out.moveTo('wasm');
  try {
    return host.toTypedArray();
  } finally {
    host.delete();
  }
}

/** The model's inputs for the current photo: {f, imageData, depthData, depthContent}. */
function modelInputs(depth) {
  const s = state.spec, p = state.photo;
  const f = modelFrame(p.height, p.width, s.height, s.width);
  const image = photoInFrame(p.bitmap, f);
  let d = depth.values, dh = p.height, dw = p.width;
  if (f.turn) ({data: d, h: dh, w: dw} = rot90(d, dh, dw, 1, 1));
  const depthContent = resize(d, dh, dw, 1, f.ch, f.cw).map((v) => Math.min(Math.max(v, 0), 1));
  const imageData = toTensorData(reflectPad(image, f.ch, f.cw, 3, s.height, s.width, f.top, f.left), s.image, 3);
  const depthData = toTensorData(reflectPad(depthContent, f.ch, f.cw, 1, s.height, s.width, f.top, f.left), s.depth, 1);
  return {f, imageData, depthData, depthContent};
}

async function render() {
  if (!state.photo) return null;
  const s = state.spec, p = state.photo;
  const accelerator = await pickAccelerator($('accelerator').value);
  const model = await compiledFor(accelerator);

  const t0 = performance.now();
  const rgba = p.rgba ??= photoRgba(p.bitmap);
  const rgbaFloat = p.rgbaFloat ??= rgbaToFloat(rgba, p.width * p.height);
  const depth = await depthForPhoto(rgbaFloat);
  const tDepth = performance.now();
  const {f, imageData, depthData, depthContent} = modelInputs(depth);
  const lens = lensFor(depthContent, f.cw, depth.values);
  const t1 = performance.now();
  const output = await infer(model, imageData, depthData, lens.values);
  const t2 = performance.now();
  // Back to the photo: cut the padding, turn back, upsample, and keep the photo where it is sharp.
  let out = fromOutput(output, s.output, f), oh = f.ch, ow = f.cw;
  if (f.turn) ({data: out, h: oh, w: ow} = rot90(out, oh, ow, 3, -1));
  const up = resize(out, oh, ow, 3, p.height, p.width);
  const keep = sharpKeep(depth.values, lens.values, f.scale);
  const finalRgba = blend(rgba, up, keep);
  paint($('before'), new Uint8ClampedArray(rgba), p.width, p.height);
  paint($('after'), finalRgba, p.width, p.height);
  paint($('depth-view'), grayRgba(depth.values), p.width, p.height);
  fitDisplay(p.width, p.height);
  const t3 = performance.now();

  if (s.lens && state.strength === null) showStrength(lens.values[1], false);
  const timings = {depth_ms: depth.fresh ? depth.ms : 0, preprocess_ms: t1 - tDepth, inference_ms: t2 - t1, postprocess_ms: t3 - t2,
                   total_ms: t3 - t0};
  const lensLine = s.lens ? `lens ${lensText(lens.values)} (${lens.source})`
                          : `no lens input; the blend uses auto-focus's (${lensText(lens.values)})`;
  $('latency').textContent =
      `${p.label}: ${p.width}×${p.height}${f.turn ? ', turned into the model frame' : ''}\n` +
      `${accelerator}${accelerator === 'wasm' && state.threads ? ' (threads)' : ''}, ` +
      `${s.height}×${s.width}, ${state.precision}\n${lensLine}\n` +
      `depth (${depth.source}) ${depth.fresh ? `${depth.ms.toFixed(1)} ms` : 'cached'}\n` +
      `pre-process  ${timings.preprocess_ms.toFixed(1)} ms\n` +
      `inference    ${timings.inference_ms.toFixed(1)} ms\n` +
      `post-process ${timings.postprocess_ms.toFixed(1)} ms (full resolution)\n` +
      `total        ${timings.total_ms.toFixed(1)} ms\n` +
      '(one run; Benchmark gives the median after warm-up)';
  depth.fresh = false;  // reused by every re-render of this photo (tap, slider)
  if (s.lens) setFact('lens', `${lensText(lens.values)} (${lens.source})`);
  const result = {
    ok: true, model: state.manifest.name, precision: state.precision, accelerator, threads: state.threads,
    label: p.label, layout: s.output.layout, outputShape: s.output.shape,
    output, image: imageData, depth: depthData,
    lens: s.lens ? lens.values : null, lensSource: s.lens ? lens.source : null, blendLens: lens.values,
    focus: state.focus, depthSource: depth.source, depthDetail: depth.detail, depthFull: depth.values,
    photoSize: [p.height, p.width], frame: f, timings,
  };
  state.last = result;
  window.__bokehResult = result;
  if (!window.__bokehError) {
    setStatus(`Rendered ${p.label} (${p.width}×${p.height}). ` +
              (s.lens ? 'Tap the picture to focus there; the aperture slider sets the blur.' : ''));
  }
  $('run').disabled = false;
  $('bench').disabled = false;
  $('download').disabled = false;
  return result;
}

// One render at a time; a change while one runs asks for one more (the latest state wins).
let running = null, again = false;
window.__bokehSeq = 0;
window.__bokehBusy = false;

function requestRender() {
  if (running) {
    again = true;
    return running;
  }
  window.__bokehBusy = true;
  running = (async () => {
    try {
      do {
        again = false;
        await render();
        window.__bokehSeq += 1;
      } while (again);
    } catch (e) {
      report(e);
    } finally {
      running = null;
      window.__bokehBusy = false;
    }
    return state.last;
  })();
  return running;
}

async function benchmark() {
  const accelerator = await pickAccelerator($('accelerator').value);
  const model = await compiledFor(accelerator);
  const r = state.last;
  const times = [];
  for (let i = 0; i < BENCH_WARMUP + BENCH_RUNS; i++) {
    const t0 = performance.now();
    await infer(model, r.image, r.depth, r.lens);  // the inputs and lens the last render fed
    if (i >= BENCH_WARMUP) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times.length % 2 ? times[(times.length - 1) / 2]
                                  : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
  const p90 = times[Math.ceil(0.9 * times.length) - 1];  // nearest rank
  const bench = {accelerator, runs: BENCH_RUNS, warmup: BENCH_WARMUP, median_ms: median, p90_ms: p90};
  $('latency').textContent += `\n\nbenchmark (${accelerator}, ${BENCH_RUNS} runs after ${BENCH_WARMUP} warm-up)\n` +
      `median ${median.toFixed(1)} ms, p90 ${p90.toFixed(1)} ms`;
  window.__bokehBenchmark = bench;
  return bench;
}

// ---------------------------------------------------------------- inputs

async function bitmapFrom(source, name) {
  const blob = source instanceof Blob ? source : await (async () => {
    const r = await fetch(source);
    if (!r.ok) throw new Error(`${source}: HTTP ${r.status}`);
    return r.blob();
  })();
  try {
    // No colour management and no premultiplication: the model must see the file's own values.
    // EXIF orientation applied: the photo as displayed, as eval.render reads it.
    return await createImageBitmap(blob, {colorSpaceConversion: 'none', premultiplyAlpha: 'none',
                                          imageOrientation: 'from-image'});
  } catch (e) {
    throw new Error(`${name ?? source}: not a readable image (${e?.message ?? e})`);
  }
}

/** A new photo (and optional depth map): forget the depth, the tap and the slider, render. */
function setPhoto(bitmap, label, name, depthFile = null) {
  state.photo = {bitmap, width: bitmap.width, height: bitmap.height, label, name, depthFile};
  state.depth = null;
  state.focus = null;
  state.strength = null;
  $('focus-mark').hidden = true;
  if (state.spec?.lens) $('strength-value').textContent = 'auto';
  $('run').disabled = false;
  return requestRender();
}

let samples = [];

async function loadSamples() {
  const r = await fetch(new URL('index.json', SAMPLES_URL));
  if (!r.ok) return;
  samples = (await r.json()).samples;
  $('sample-list').replaceChildren(...samples.map((s) => {
    const b = document.createElement('button');
    b.dataset.id = s.id;
    b.title = `sample ${s.id}${s.depth ? '' : ' (no depth map: person matte)'}`;
    const img = document.createElement('img');
    img.src = new URL(s.image, SAMPLES_URL).href;
    img.alt = `sample ${s.id}`;
    b.append(img);
    b.addEventListener('click', () => runSample(s.id).catch(report));
    return b;
  }));
}

async function runSample(id) {
  await samplesLoaded;
  const s = samples.find((x) => x.id === String(id));
  if (!s) throw new Error(`no sample "${id}" in samples/index.json`);
  await window.__bokeh.ready;
  const image = await bitmapFrom(new URL(s.image, SAMPLES_URL).href);
  const depth = s.depth ? {bitmap: await bitmapFrom(new URL(s.depth, SAMPLES_URL).href), name: s.depth} : null;
  for (const b of $('sample-list').children) b.classList.toggle('active', b.dataset.id === s.id);
  clearDrops();
  return setPhoto(image, `sample ${s.id}`, `sample_${s.id}`, depth);
}

const dropped = {image: null, depth: null};

function clearDrops() {
  for (const kind of ['image', 'depth']) {
    dropped[kind] = null;
    const box = $(`drop-${kind}`);
    box.classList.remove('filled');
    box.querySelector('span').textContent = box.dataset.label;
  }
}

async function onFile(kind, file) {
  if (!file) return;
  const box = $(`drop-${kind}`);
  if (kind === 'model') {
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (String.fromCharCode(...bytes.subarray(4, 8)) !== 'TFL3') {
      throw new Error(`${file.name}: not a .tflite file (no TFL3 identifier)`);
    }
    state.userDepthModel = {bytes, name: file.name, model: null};
    box.classList.add('filled');
    box.querySelector('span').textContent = `depth model: ${file.name} (${(bytes.length / 1024).toFixed(0)} KiB)`;
  } else {
    dropped[kind] = {bitmap: await bitmapFrom(file, file.name), name: file.name};
    box.classList.add('filled');
    box.querySelector('span').textContent =
        `${kind}: ${file.name} (${dropped[kind].bitmap.width}×${dropped[kind].bitmap.height})`;
  }
  for (const b of $('sample-list').children) b.classList.remove('active');
  await window.__bokeh.ready;
  // A photo alone is enough: the depth comes from the depth map, the depth model or the matte.
  if (dropped.image) {
    return setPhoto(dropped.image.bitmap, `your photo ${dropped.image.name}`,
                    dropped.image.name.replace(/\.[^.]*$/, ''), dropped.depth);
  }
  return null;
}

function wireDrop(kind) {
  const box = $(`drop-${kind}`);
  const input = $(`file-${kind}`);
  box.dataset.label = box.querySelector('span').textContent;
  input.addEventListener('change', () => onFile(kind, input.files[0]).catch(report));
  box.addEventListener('dragover', (e) => { e.preventDefault(); box.classList.add('over'); });
  box.addEventListener('dragleave', () => box.classList.remove('over'));
  box.addEventListener('drop', (e) => {
    e.preventDefault();
    box.classList.remove('over');
    onFile(kind, e.dataTransfer.files[0]).catch(report);
  });
}

/** Tap to focus: the point as fractions of the picture, marked, and a re-render. */
function onTap(e) {
  if (!state.photo || !state.last) return;
  if (!state.spec.lens) {
    setStatus('This model reads no lens: tap-to-focus needs a lens-conditioned export.');
    return;
  }
  const rect = $('before').getBoundingClientRect();
  const x = Math.min(Math.max((e.clientX - rect.left) / rect.width, 0), 1);
  const y = Math.min(Math.max((e.clientY - rect.top) / rect.height, 0), 1);
  state.focus = {x, y};
  const mark = $('focus-mark');
  mark.style.left = `${100 * x}%`;
  mark.style.top = `${100 * y}%`;
  mark.hidden = false;
  requestRender();
}

/** Download the result at the photo's own resolution, as a PNG (lossless, like eval.render). */
function download() {
  const p = state.photo;
  $('after').toBlob((blob) => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${p.name}.bokeh.png`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }, 'image/png');
}

function report(err) {
  console.error(err);
  setStatus(String(err?.message ?? err), true);
}

// ---------------------------------------------------------------- wiring

$('slider').addEventListener('input', (e) => $('compare').style.setProperty('--split', `${e.target.value}%`));
$('compare').addEventListener('click', onTap);
// 'change' fires when the slider is released: one render per setting, not one per pixel dragged.
$('strength').addEventListener('change', (e) => {
  state.strength = Number(e.target.value);
  showStrength(state.strength, true);
  requestRender();
});
$('strength').addEventListener('input', (e) => showStrength(Number(e.target.value), true));
$('auto').addEventListener('click', () => {
  state.focus = null;
  state.strength = null;
  $('focus-mark').hidden = true;
  if (state.spec?.lens) $('strength-value').textContent = 'auto';
  requestRender();
});
$('run').addEventListener('click', () => requestRender());
$('bench').addEventListener('click', () => benchmark().catch(report));
$('download').addEventListener('click', download);
$('accelerator').addEventListener('change', () => requestRender());
wireDrop('image');
wireDrop('depth');
wireDrop('model');

const ready = init();
window.__bokeh = {ready, runSample, benchmark, state, requestRender};
const samplesLoaded = loadSamples();
samplesLoaded.catch(report);
ready.then(async () => {
  $('run').disabled = !state.photo;
  const auto = params.get('sample');
  if (auto !== null) {
    await runSample(auto);
  }
}).catch(report);
