// One render of the current photo, as `python -m eval.render` does (photo.js): turned into the
// model's orientation and back, scaled to fit and reflection-padded (never cropped), and the result
// is the photo's own size, in-focus pixels from the photo itself, blurred ones from the model's
// output upsampled. A lens-conditioned export's `lens` = (d_f, K, dof) is the project's
// auto-focus (autofocus.js, a port of training.renderers.lens.auto_focus) on the depth at the
// model's scale; a tap on the picture sets d_f (median depth around the tap, as --focus X,Y) and
// the aperture slider sets K (as --strength); both re-render (requestRender: one at a time).
// Also the runtime (the accelerator, the compiled model) and the Benchmark button.
//
// Publishes on window: __bokehResult (the last result, see render()), __bokehSeq (finished
// renders), __bokehBusy (a render is running) and __bokehBenchmark (the last benchmark).

import {getDefaultEnvironment, loadAndCompile, Tensor} from '@litertjs/core';
import {autoFocus} from './autofocus.js';
import {depthForPhoto} from './depth.js';
import {checkSignature} from './manifest.js';
import {fitDisplay, lensText, paint, setFact, showStrength} from './panel.js';
import {blend, modelFrame, reflectPad, resize, rot90, sharpKeep, tapDisparity} from './photo.js';
import {fromOutput, grayRgba, photoInFrame, photoRgba, rgbaToFloat, toTensorData} from './pixels.js';
import {$, report, setStatus, state} from './state.js';

// The lens sources the page names (the Android app names them alike; panel.js has the fourth,
// LENS_DEFAULT, shown before any photo).
const LENS_AUTO = 'auto-focus';            // lens source: autoFocus() on the depth map fed
const LENS_TAP = 'tap-to-focus';           // d_f from a tap
const LENS_SLIDER = 'aperture slider';     // K from the slider
const BENCH_WARMUP = 2;
const BENCH_RUNS = 10;

// ---------------------------------------------------------------- runtime

export async function pickAccelerator(requested) {
  const hasGpu = !!getDefaultEnvironment().webGpuDevice;
  if (requested === 'webgpu' && !hasGpu) {
    console.warn('WebGPU requested but this browser offers no WebGPU device; using wasm');
    return 'wasm';
  }
  if (requested === 'auto') return hasGpu ? 'webgpu' : 'wasm';
  return requested;
}

export async function compiledFor(accelerator) {
  if (!state.compiled.has(accelerator)) {
    const model = await loadAndCompile(state.modelBytes, {accelerator});
    checkSignature(model, state.spec);
    state.compiled.set(accelerator, model);
  }
  return state.compiled.get(accelerator);
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

export function requestRender() {
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

export async function benchmark() {
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
