// What the page shows besides the status line: the model panel (its facts, the lens and the depth
// source of the last render), the aperture slider and the pictures' canvases.

import {$, state} from './state.js';

const LENS_DEFAULT = 'manifest default';   // lens source: manifest inputs[lens].default (no photo yet)
const STRENGTH_MAX_FACTOR = 3;  // the aperture slider runs from 0 to this many times the manifest's default K

/** The model panel: what the manifest and the runtime say, and (setFact) what the last render used. */
export function showFacts(accelerator) {
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

export function setFact(key, text) {
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
export function lensText([dF, k, dof]) {
  return `d_f ${dF.toFixed(2)} · K ${k.toFixed(1)} px · dof ${dof.toFixed(2)}`;
}

// ---------------------------------------------------------------- aperture slider

/** The slider runs over [0, STRENGTH_MAX_FACTOR × the manifest's default K]; disabled without a lens input. */
export function setupStrength() {
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

export function showStrength(k, fromSlider) {
  if (!state.spec.lens) return;
  if (!fromSlider) $('strength').value = String(k);
  $('strength-value').textContent = `K ${k.toFixed(1)} px${fromSlider ? '' : ' (auto)'}`;
}

// ---------------------------------------------------------------- pictures

export function paint(canvas, rgba, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
}

/** Show the photo as large as the panel allows, at most 70 % of the window high, aspect kept. */
export function fitDisplay(width, height) {
  const room = $('compare').parentElement.clientWidth || width;
  const w = Math.max(1, Math.min(room, 0.7 * innerHeight * width / height));
  $('before').style.width = `${w}px`;
  $('before').style.height = `${w * height / width}px`;
}
