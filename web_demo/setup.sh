#!/usr/bin/env bash
# Install what the web demo's end-to-end test needs; safe to run again (does nothing when present).
#   - Debian's Chromium (/usr/bin/chromium): the test drives it headless; no browser download.
#   - web_demo/node_modules from package-lock.json: @litertjs/core (the page's runtime),
#     @mediapipe/selfie_segmentation (only for its selfie_segmentation.tflite, Apache-2.0) and
#     playwright-core (drives Chromium from web_demo/e2e.mjs).
#   - web_demo/matte/selfie_segmentation.tflite: that model with its MediaPipe custom op rewritten
#     to a builtin one (python -m eval.matte prepare; needs the project's .venv, see eval/matte.py).
#     Without a .venv yet this step is skipped with the command to run; the tests run it themselves.
# Needs root for apt-get (CI and the dev machines run as root) and node/npm on PATH.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "web_demo/setup.sh: chromium is missing; run as root or: sudo apt-get install -y chromium" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q chromium
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "web_demo/setup.sh: npm is missing (install Node.js >= 18, e.g. apt-get install -y nodejs npm)" >&2
    exit 1
fi

# npm ci only when node_modules is missing or older than the lock file.
if [ ! -d node_modules/@litertjs/core/wasm ] || [ ! -d node_modules/playwright-core ] \
        || [ ! -f node_modules/@mediapipe/selfie_segmentation/selfie_segmentation.tflite ] \
        || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

# The person matte: what the page falls back to when a photo comes without a depth map.
if [ -x ../.venv/bin/python ]; then
    (cd .. && .venv/bin/python -m eval.matte prepare)
else
    echo "web_demo/setup.sh: no .venv yet; after \`make venv\` run: .venv/bin/python -m eval.matte prepare" >&2
fi

echo "web_demo/setup.sh: $(chromium --version 2>/dev/null | head -1); node $(node --version); node_modules ok"
