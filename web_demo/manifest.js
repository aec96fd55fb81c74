// The exporter's manifest.json, read and checked (no DOM, no runtime): everything the model needs
// to know about its tensors (names, shapes, layout, value range) comes from it, as for the Android
// app, so the page never hard-codes a size; and the compiled .tflite's own signature must agree.

const EXPECTED_INPUTS = ['image', 'depth'];
const EXPECTED_OUTPUT = 'bokeh';
const LENS_INPUT = 'lens';            // optional third input of a lens-conditioned export
const LENS_VALUES = ['d_f', 'K', 'dof'];
// A shipped model may have no fp32 file: without ?precision= the page takes fp16 when the
// manifest has it (the phone-sized default), else the first variant the manifest lists.
const PREFERRED_PRECISION = 'fp16';
export const EXPORT_COMMAND = 'python -m export --checkpoint CKPT --size HxW --out tflite_models/<name>';

/** Height and width of a [1, H, W, C] (NHWC) or [1, C, H, W] (NCHW) tensor description. */
export function spatial(t) {
  if (!Array.isArray(t.shape) || t.shape.length !== 4) {
    throw new Error(`tensor "${t.name}": shape ${JSON.stringify(t.shape)} is not rank 4`);
  }
  if (t.layout === 'NHWC') return {h: t.shape[1], w: t.shape[2], c: t.shape[3]};
  if (t.layout === 'NCHW') return {h: t.shape[2], w: t.shape[3], c: t.shape[1]};
  throw new Error(`tensor "${t.name}": layout "${t.layout}" is neither NHWC nor NCHW`);
}

/** ?precision= if given, else fp16 if the manifest has it, else its first variant. */
export function defaultPrecision(m, requested) {
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

/**
 * Check the manifest against what this page can feed; return the tensor specs it will use
 * (`precision`: the variant the page loads, defaultPrecision's answer).
 */
export function readManifest(m, where, precision) {
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
export function checkSignature(model, spec) {
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
