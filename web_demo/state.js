// The page's shared state, one object that every module of the page reads and writes: the model,
// the photo and the last result; with the URL's parameters, the DOM lookup, and the status line
// that shows a failure (and publishes it as window.__bokehError for tests and scripts).

export const params = new URLSearchParams(location.search);
export const $ = (id) => document.getElementById(id);

export const state = {
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

/** The status line under the title; an error is also published as window.__bokehError. */
export function setStatus(text, isError = false) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', isError);
  if (isError) window.__bokehError = text;
}

/** A failure: logged, and shown (and published) as the status. */
export function report(err) {
  console.error(err);
  setStatus(String(err?.message ?? err), true);
}
