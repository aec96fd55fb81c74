// Bokeh demo page: runs tflite_models/<model>/bokeh_<precision>.tflite with LiteRT.js.
//
// index.html loads this module, which loads the model (init), takes the user's inputs (samples,
// dropped files, taps, the slider, the buttons) and wires the page. The rest is in modules beside
// it (ES modules, no build step):
//   state.js     the shared state, URL parameters and the status line
//   manifest.js  manifest.json read and checked against what the page feeds (no hard-coded size)
//   depth.js     the depth of a photo: depth map > user's depth .tflite > person matte
//   render.js    one render (eval.render's frame, lens and blend), the runtime and the benchmark
//   panel.js     the model panel, the aperture slider and the canvases
//   pixels.js    pixels into and out of the model's tensors
//   photo.js, autofocus.js   ports of eval.render and training.renderers.lens.auto_focus (no DOM)
// Paths are relative to these files, which the static server serves from web_demo/ (the page is
// /web_demo/index.html, the server's root being the repository root):
//   ../tflite_models/<model>/manifest.json and bokeh_<precision>.tflite   (the exported model)
//   ./node_modules/@litertjs/core/wasm/                                     (LiteRT.js runtime)
//   ./matte/selfie_segmentation.tflite                                      (person matte, set-up time)
//   ./samples/index.json, ./samples/{original,depth}/<id>.png               (bundled samples)
//
// For tests and scripts the page publishes its state on window:
//   window.__bokeh.ready       Promise, resolves once the model is compiled
//   window.__bokeh.runSample   (id) => Promise<result>
//   window.__bokehResult       last result: raw float output, the exact inputs fed to the model,
//                              lens and lensSource, depthSource, photo size (see render.js render())
//   window.__bokehSeq          number of finished renders; __bokehBusy: a render is running
//   window.__bokehError        message of the last failure

import {loadLiteRt, supportsFeature} from '@litertjs/core';
import {defaultPrecision, EXPORT_COMMAND, readManifest} from './manifest.js';
import {setupStrength, showFacts, showStrength} from './panel.js';
import {benchmark, compiledFor, pickAccelerator, requestRender} from './render.js';
import {$, params, report, setStatus, state} from './state.js';

const WASM_DIR = new URL('./node_modules/@litertjs/core/wasm/', import.meta.url).href;
const MODELS_URL = new URL('../tflite_models/', import.meta.url);
const SAMPLES_URL = new URL('./samples/', import.meta.url);
const modelName = params.get('model');

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
  state.spec = readManifest(state.manifest, manifestUrl.pathname, state.precision);
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
