// Drive the demo page in Debian's headless Chromium (no browser download) and dump what it did.
//
//   node web_demo/e2e.mjs --url 'http://127.0.0.1:8000/web_demo/index.html?model=fixture&sample=0' \
//        [--out result.json] [--screenshot page.png] [--timeout 90] [--bench] [--ready-only] [--webgpu]
//        [--steps steps.json]
//
// --steps: act as a user would, in order, and dump {ok, error, captures, downloads, console}.
// steps.json is a list of one-key objects:
//   {"upload": {"image": PATH, "depth": PATH, "model": PATH}}  the file inputs (depth, model optional;
//                                                             the image last: it starts the render)
//   {"tap": [X, Y]}          a mouse click on the picture at fractions X, Y of its width and height
//   {"strength": K}          the aperture slider set to K and released (input + change events)
//   {"capture": NAME}        the page's result now, as in the one-render dump below, under captures[NAME]
//   {"download": PATH}       click Download, save the file the browser receives to PATH
//   {"screenshot": PATH}     a full-page screenshot
// Each of upload, tap and strength waits until the page has finished the render it started.
//
// --webgpu: offer the page a WebGPU adapter. Headless Chromium has SwiftShader's (a software
// Vulkan device inside the chromium package), so the page's WebGPU path runs without a GPU; use it
// with ?accelerator=webgpu. Without --webgpu the browser runs with --disable-gpu (WebAssembly only).
//
// --ready-only: wait until the model is compiled, run nothing, and dump {ok, error, facts} (what
// the model panel shows before any input, e.g. the manifest's default lens).
//
// Prints (or writes to --out) one JSON object: {ok, error, accelerator, threads, timings, shapes,
// output_b64 (float32 model output), image_b64 / depth_b64 (the float32 inputs the page fed),
// lens (the 3 lens values fed to a lens-conditioned model, null for a depth-only one),
// lens_source ('auto-focus', 'tap-to-focus', 'aperture slider' or 'tap-to-focus + aperture slider';
// null without lens), blend_lens (the lens of the full-resolution blend), depth_source ('depth map',
// 'depth model' or 'person matte') and depth_full_b64 (float32 depth at the photo's size),
// photo_size, frame (eval.render.model_frame's fields), focus (the last tap), latency (the panel's
// text), after_rgba_b64 (the "after" canvas' RGBA bytes: the result at the photo's size),
// console (browser log lines)}.
// tests/test_web_page.py and tests/test_web_portrait.py run it and compare the output with the
// Python TFLite interpreter.

import {writeFileSync, mkdtempSync, rmSync, existsSync, readFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {parseArgs} from 'node:util';
import {chromium} from 'playwright-core';

const {values: args} = parseArgs({
  options: {
    url: {type: 'string'},
    out: {type: 'string'},
    screenshot: {type: 'string'},
    timeout: {type: 'string', default: '90'},
    bench: {type: 'boolean', default: false},
    'ready-only': {type: 'boolean', default: false},
    steps: {type: 'string'},
    webgpu: {type: 'boolean', default: false},
    chromium: {type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium'},
  },
});
if (!args.url) {
  console.error('usage: node web_demo/e2e.mjs --url URL [--out FILE] [--screenshot FILE]');
  process.exit(2);
}
if (!existsSync(args.chromium)) {
  console.error(`${args.chromium}: no Chromium there (apt-get install chromium, or set CHROMIUM=...)`);
  process.exit(3);
}

// Without the networking flags Chromium keeps trying to reach Google services, and on a closed
// network those connections are refused and slow everything down. --disable-gpu: CI has no GPU,
// so the page runs LiteRT.js on WebAssembly, unless --webgpu asks for SwiftShader's WebGPU adapter.
const flags = [
  '--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-extensions',
  ...(args.webgpu ? ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'] : ['--disable-gpu']),
];
// The page's last result, read in the page (window.__bokehResult and the "after" canvas).
const snapshot = () => {
  const b64 = (typed) => {
    const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  };
  const r = window.__bokehResult;
  if (!r) return {ok: false, error: window.__bokehError ?? 'no result'};
  const after = document.getElementById('after');
  const rgba = after.getContext('2d').getImageData(0, 0, after.width, after.height).data;
  return {
    ok: true, error: window.__bokehError ?? null,
    model: r.model, precision: r.precision, accelerator: r.accelerator, threads: r.threads,
    crossOriginIsolated: self.crossOriginIsolated,
    timings: r.timings, benchmark: window.__bokehBenchmark ?? null,
    layout: r.layout, output_shape: r.outputShape,
    after_size: [after.height, after.width],
    facts: document.getElementById('model-facts').innerText,  // the model panel as shown
    latency: document.getElementById('latency').innerText,
    output_b64: b64(r.output), image_b64: b64(r.image), depth_b64: b64(r.depth),
    lens: r.lens ? Array.from(r.lens) : null,  // (d_f, K, dof) fed to a lens model, else null
    lens_source: r.lensSource ?? null,  // 'auto-focus', 'tap-to-focus', ...; null for a depth-only model
    blend_lens: Array.from(r.blendLens),  // the lens of the full-resolution blend (auto-focus's for a depth-only model)
    depth_source: r.depthSource, depth_detail: r.depthDetail,
    depth_full_b64: b64(r.depthFull),  // float32 disparity at the photo's size, as used
    photo_size: r.photoSize, frame: r.frame, focus: r.focus,
    after_rgba_b64: b64(rgba),  // the result at the photo's size
  };
};

const progress = {captures: {}, downloads: [], step: null};  // kept when a step fails

async function runSteps(page, steps, timeoutMs) {
  const {captures, downloads} = progress;
  const settle = async (seq) => {
    await page.waitForFunction((s) => window.__bokehError || (window.__bokehSeq > s && !window.__bokehBusy),
                               seq, {timeout: timeoutMs, polling: 100});
    const error = await page.evaluate(() => window.__bokehError ?? null);
    if (error) throw new Error(error);
  };
  for (const step of steps) {
    const [kind, arg] = Object.entries(step)[0];
    progress.step = step;
    const seq = await page.evaluate(() => window.__bokehSeq);
    if (kind === 'upload') {
      for (const name of ['depth', 'model', 'image']) {
        if (arg[name]) await page.setInputFiles(`#file-${name}`, arg[name]);
      }
      await settle(seq);
    } else if (kind === 'tap') {
      // A real click (scrolled into view, hit-tested), at the point of the picture (#before fills #compare).
      const box = await page.locator('#before').boundingBox();
      await page.locator('#compare').click({position: {x: arg[0] * box.width, y: arg[1] * box.height}});
      await settle(seq);
    } else if (kind === 'strength') {
      await page.evaluate((k) => {
        const el = document.getElementById('strength');
        el.value = String(k);
        el.dispatchEvent(new Event('input', {bubbles: true}));
        el.dispatchEvent(new Event('change', {bubbles: true}));
      }, arg);
      await settle(seq);
    } else if (kind === 'capture') {
      captures[arg] = await page.evaluate(snapshot);
    } else if (kind === 'download') {
      const [dl] = await Promise.all([page.waitForEvent('download', {timeout: timeoutMs}), page.click('#download')]);
      await dl.saveAs(arg);
      downloads.push({path: arg, suggested: dl.suggestedFilename()});
    } else if (kind === 'screenshot') {
      await page.screenshot({path: arg, fullPage: true});
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  }
  return {ok: true, error: null, captures, downloads};
}

const profile = mkdtempSync(join(tmpdir(), 'bokeh-chromium-'));
const timeoutMs = Number(args.timeout) * 1000;
const log = [];
let browser;
let result = {ok: false, error: 'did not finish'};
try {
  // A persistent context so the profile is a fresh --user-data-dir that we remove afterwards.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    args: flags,
    viewport: {width: 1100, height: 820},
    deviceScaleFactor: 1,
    acceptDownloads: true,  // the Download button's file, saved by a "download" step
  });
  browser = context;
  const page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  page.on('requestfailed', (r) => log.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
  await page.goto(args.url, {waitUntil: 'load', timeout: timeoutMs});
  if (args.steps) {
    await page.waitForFunction(() => window.__bokeh, null, {timeout: timeoutMs, polling: 100});
    const error = await page.evaluate(async () => {
      try {
        await window.__bokeh.ready;
        return null;
      } catch (e) {
        return String(e?.message ?? e);
      }
    });
    if (error) throw new Error(error);
    result = await runSteps(page, JSON.parse(readFileSync(args.steps, 'utf8')), timeoutMs);
  } else if (args['ready-only']) {
    await page.waitForFunction(() => window.__bokeh, null, {timeout: timeoutMs, polling: 100});
    result = await page.evaluate(async () => {
      try {
        await window.__bokeh.ready;
      } catch (e) {
        return {ok: false, error: String(e?.message ?? e)};
      }
      return {ok: true, error: window.__bokehError ?? null,
              facts: document.getElementById('model-facts').innerText};
    });
  } else {
    await page.waitForFunction(() => window.__bokehResult || window.__bokehError, null,
                               {timeout: timeoutMs, polling: 100});
    if (args.bench) {
      await page.evaluate(() => window.__bokeh.benchmark());
    }
    result = await page.evaluate(snapshot);
  }
  if (args.screenshot) {
    await page.screenshot({path: args.screenshot, fullPage: true});
  }
} catch (e) {
  const status = await browser?.pages()[0]?.evaluate(() => document.getElementById('status')?.innerText)
      .catch(() => null);
  result = {ok: false, error: String(e?.message ?? e) + (progress.step ? ` (at step ${JSON.stringify(progress.step)})` : ''),
            status, captures: progress.captures, downloads: progress.downloads};
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, {recursive: true, force: true});
}
result.console = log;
const text = JSON.stringify(result);
if (args.out) writeFileSync(args.out, text);
else process.stdout.write(text + '\n');
process.exit(result.ok ? 0 : 1);
