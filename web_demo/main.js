// Bokeh demo page: runs tflite_models/<model>/bokeh_<precision>.tflite with LiteRT.js.
//
// Everything the model needs to know about its tensors (names, shapes, layout, value range) comes
// from the exporter's manifest.json, as for the Android app, so the page never hard-codes a size.
// Paths are relative to this file, which the static server serves as /web_demo/index.html from
// the repository root:
//   ../tflite_models/<model>/manifest.json and bokeh_<precision>.tflite   (the exported model)
//   ./node_modules/@litertjs/core/wasm/                                     (LiteRT.js runtime)
//   ./samples/index.json, ./samples/{original,depth}/<id>.png               (bundled samples)
//
// A lens-conditioned export has a third input, `lens` = (d_f, K, dof): the page computes it with
// the project's auto-focus (autofocus.js, a port of training.renderers.lens.auto_focus) from the
// depth map it feeds, and falls back to the manifest's `default` when there is no depth map; it
// shows which one it used (tap-to-focus and sliders are not built yet).
//
// For tests and scripts the page publishes its state on window:
//   window.__bokeh.ready       Promise, resolves once the model is compiled
//   window.__bokeh.runSample   (id) => Promise<result>
//   window.__bokehResult       last result: raw float output and the exact inputs fed to the model,
//                              lens and lensSource ('auto-focus' | 'manifest default') for a lens model
//   window.__bokehError        message of the last failure

import {getDefaultEnvironment, loadAndCompile, loadLiteRt, supportsFeature, Tensor} from '@litertjs/core';
import {autoFocus} from './autofocus.js';

const WASM_DIR = new URL('./node_modules/@litertjs/core/wasm/', import.meta.url).href;
const MODELS_URL = new URL('../tflite_models/', import.meta.url);
const SAMPLES_URL = new URL('./samples/', import.meta.url);
const EXPECTED_INPUTS = ['image', 'depth'];
const EXPECTED_OUTPUT = 'bokeh';
const LENS_INPUT = 'lens';            // optional third input of a lens-conditioned export
const LENS_VALUES = ['d_f', 'K', 'dof'];
const LENS_AUTO = 'auto-focus';            // lens source: autoFocus() on the depth map fed
const LENS_DEFAULT = 'manifest default';   // lens source: manifest inputs[lens].default (no depth map)
// A shipped model may have no fp32 file: without ?precision= the page takes fp16 when the
// manifest has it (the phone-sized default), else the first variant the manifest lists.
const PREFERRED_PRECISION = 'fp16';
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
  threads: false,
  inputs: null,        // {image: ImageBitmap, depth: ImageBitmap, label}
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
  const variant = m.variants?.[precision] ?? fail(
      `no "${precision}" variant (has ${Object.keys(m.variants ?? {}).join(', ') || 'none'})`);
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
    const model = await loadAndCompile(state.modelUrl, {accelerator});
    checkSignature(model, state.spec);
    state.compiled.set(accelerator, model);
  }
  return state.compiled.get(accelerator);
}

async function init() {
  if (!modelName) {
    throw new Error('No model chosen. Open this page as index.html?model=<name> (optionally &precision=fp16), ' +
                    'where <name> is a folder in tflite_models/ holding manifest.json.');
  }
  const base = new URL(`${encodeURIComponent(modelName)}/`, MODELS_URL);
  const manifestUrl = new URL('manifest.json', base);
  const resp = await fetch(manifestUrl);
  if (!resp.ok) throw new Error(`${manifestUrl.pathname}: HTTP ${resp.status} (is the model exported?)`);
  state.manifest = await resp.json();
  state.precision = defaultPrecision(state.manifest, params.get('precision'));
  state.spec = readManifest(state.manifest, manifestUrl.pathname);
  state.modelUrl = new URL(state.spec.variant.file, base).href;

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
  setStatus('Ready: pick a sample, or drop a photo and its depth map.');
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
  };
  $('model-facts').replaceChildren(...Object.entries(facts).flatMap(([k, v]) => {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v; dd.dataset.fact = k;
    return [dt, dd];
  }));
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

/** The model panel's lens line: the lens last fed and where it came from. */
function showLens(lens) {
  const dd = document.querySelector('#model-facts dd[data-fact="lens"]');
  if (dd && lens) dd.textContent = `${lensText(lens.values)} (${lens.source})`;
}

// ---------------------------------------------------------------- pixels <-> tensors

/** Draw `bitmap` centre-cropped to the model's aspect ratio and resized to W×H; return RGBA. */
function fitted(bitmap, width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const scale = Math.min(bitmap.width / width, bitmap.height / height);
  const sw = width * scale, sh = height * scale;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, (bitmap.width - sw) / 2, (bitmap.height - sh) / 2, sw, sh, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height).data;
}

/** RGBA bytes -> float tensor data in the manifest's layout and range. */
function pack(rgba, t, channels) {
  const {h, w} = spatial(t);
  const [lo, hi] = t.range;
  const out = new Float32Array(h * w * channels);
  const nchw = t.layout === 'NCHW';
  for (let p = 0; p < h * w; p++) {
    for (let c = 0; c < channels; c++) {
      const v = lo + (hi - lo) * (rgba[p * 4 + c] / 255);
      out[nchw ? c * h * w + p : p * channels + c] = v;
    }
  }
  return out;
}

/** Float output in the manifest's layout -> RGBA bytes: clamp to range, scale to 0..255. */
function unpack(data, t) {
  const {h, w, c: channels} = spatial(t);
  const [lo, hi] = t.range;
  const rgba = new Uint8ClampedArray(h * w * 4);
  const nchw = t.layout === 'NCHW';
  for (let p = 0; p < h * w; p++) {
    for (let c = 0; c < 3; c++) {
      const v = data[nchw ? c * h * w + p : p * channels + c];
      rgba[p * 4 + c] = Math.round(((Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * 255);
    }
    rgba[p * 4 + 3] = 255;
  }
  return rgba;
}

function paint(canvas, rgba, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
}

// ---------------------------------------------------------------- inference

/**
 * The lens a lens model is fed, {values: Float32Array (d_f, K, dof), source}: the project's
 * auto-focus on `depthData`, the depth tensor exactly as fed (model size, after crop and resize;
 * one channel, so NHWC and NCHW are both row-major H×W), or the manifest's default when there is
 * no depth map. null for a depth-only model.
 */
function lensFor(depthData) {
  const s = state.spec;
  if (!s.lens) return null;
  // [1, 1, 1, 3] (NHWC) and [1, 3, 1, 1] (NCHW) hold the 3 values in the same memory order.
  if (!depthData || depthData.length === 0) {
    return {values: Float32Array.from(s.lens.default), source: LENS_DEFAULT};
  }
  return {values: Float32Array.from(autoFocus(depthData, s.width)), source: LENS_AUTO};
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

async function render() {
  if (!state.inputs) return null;
  const s = state.spec;
  const accelerator = await pickAccelerator($('accelerator').value);
  const model = await compiledFor(accelerator);

  const t0 = performance.now();
  const imageRgba = fitted(state.inputs.image, s.width, s.height);
  const depthRgba = fitted(state.inputs.depth, s.width, s.height);
  const imageData = pack(imageRgba, s.image, 3);
  const depthData = pack(depthRgba, s.depth, 1);
  const lens = lensFor(depthData);
  const t1 = performance.now();
  const output = await infer(model, imageData, depthData, lens?.values);
  const t2 = performance.now();
  const outRgba = unpack(output, s.output);
  paint($('before'), imageRgba, s.width, s.height);
  paint($('after'), outRgba, s.width, s.height);
  paint($('depth-view'), depthRgba, s.width, s.height);
  const t3 = performance.now();

  const timings = {preprocess_ms: t1 - t0, inference_ms: t2 - t1, postprocess_ms: t3 - t2};
  $('latency').textContent =
      `${state.inputs.label}\n${accelerator}${accelerator === 'wasm' && state.threads ? ' (threads)' : ''}, ` +
      `${s.height}×${s.width}, ${state.precision}\n` +
      (lens ? `lens ${lensText(lens.values)} (${lens.source})\n` : '') +
      `pre-process  ${timings.preprocess_ms.toFixed(1)} ms\n` +
      `inference    ${timings.inference_ms.toFixed(1)} ms\n` +
      `post-process ${timings.postprocess_ms.toFixed(1)} ms\n` +
      '(one run; Benchmark gives the median after warm-up)';
  const result = {
    ok: true, model: state.manifest.name, precision: state.precision, accelerator, threads: state.threads,
    label: state.inputs.label, layout: s.output.layout, outputShape: s.output.shape,
    output, image: imageData, depth: depthData, lens: lens?.values ?? null, lensSource: lens?.source ?? null,
    timings,
  };
  showLens(lens);
  window.__bokehResult = result;
  $('run').disabled = false;
  $('bench').disabled = false;
  return result;
}

async function benchmark() {
  const s = state.spec;
  const accelerator = await pickAccelerator($('accelerator').value);
  const model = await compiledFor(accelerator);
  const imageData = pack(fitted(state.inputs.image, s.width, s.height), s.image, 3);
  const depthData = pack(fitted(state.inputs.depth, s.width, s.height), s.depth, 1);
  const lens = lensFor(depthData)?.values;  // the lens render() fed for this input
  const times = [];
  for (let i = 0; i < BENCH_WARMUP + BENCH_RUNS; i++) {
    const t0 = performance.now();
    await infer(model, imageData, depthData, lens);
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

async function bitmapFrom(source) {
  const blob = source instanceof Blob ? source : await (async () => {
    const r = await fetch(source);
    if (!r.ok) throw new Error(`${source}: HTTP ${r.status}`);
    return r.blob();
  })();
  // No colour management and no premultiplication: the model must see the file's own values.
  return createImageBitmap(blob, {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
}

let samples = [];

async function loadSamples() {
  const r = await fetch(new URL('index.json', SAMPLES_URL));
  if (!r.ok) return;
  samples = (await r.json()).samples;
  $('sample-list').replaceChildren(...samples.map((s) => {
    const b = document.createElement('button');
    b.dataset.id = s.id;
    b.title = `sample ${s.id}`;
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
  state.inputs = {
    image: await bitmapFrom(new URL(s.image, SAMPLES_URL).href),
    depth: await bitmapFrom(new URL(s.depth, SAMPLES_URL).href),
    label: `sample ${s.id}`,
  };
  for (const b of $('sample-list').children) b.classList.toggle('active', b.dataset.id === s.id);
  return render();
}

const dropped = {image: null, depth: null};

async function onFile(kind, file) {
  if (!file) return;
  dropped[kind] = await bitmapFrom(file);
  const box = $(`drop-${kind}`);
  box.classList.add('filled');
  box.querySelector('span').textContent = `${kind}: ${file.name} (${dropped[kind].width}×${dropped[kind].height})`;
  if (dropped.image && dropped.depth) {
    state.inputs = {image: dropped.image, depth: dropped.depth, label: 'your photo'};
    $('run').disabled = false;
    await render();
  }
}

function wireDrop(kind) {
  const box = $(`drop-${kind}`);
  const input = $(`file-${kind}`);
  input.addEventListener('change', () => onFile(kind, input.files[0]).catch(report));
  box.addEventListener('dragover', (e) => { e.preventDefault(); box.classList.add('over'); });
  box.addEventListener('dragleave', () => box.classList.remove('over'));
  box.addEventListener('drop', (e) => {
    e.preventDefault();
    box.classList.remove('over');
    onFile(kind, e.dataTransfer.files[0]).catch(report);
  });
}

function report(err) {
  console.error(err);
  setStatus(String(err?.message ?? err), true);
}

// ---------------------------------------------------------------- wiring

$('slider').addEventListener('input', (e) => $('compare').style.setProperty('--split', `${e.target.value}%`));
$('run').addEventListener('click', () => render().catch(report));
$('bench').addEventListener('click', () => benchmark().catch(report));
$('accelerator').addEventListener('change', () => render().catch(report));
wireDrop('image');
wireDrop('depth');

const ready = init();
window.__bokeh = {ready, runSample, benchmark, state};
const samplesLoaded = loadSamples();
samplesLoaded.catch(report);
ready.then(async () => {
  $('run').disabled = !state.inputs;
  const auto = params.get('sample');
  if (auto !== null) {
    await runSample(auto);
    setStatus(`Done: sample ${auto}.`);
  }
}).catch(report);
