#!/usr/bin/env bash
# Install what the web demo's end-to-end test needs; safe to run again (does nothing when present).
#   - Debian's Chromium (/usr/bin/chromium): the test drives it headless; no browser download.
#   - web_demo/node_modules from package-lock.json: @litertjs/core (the page's runtime) and
#     playwright-core (drives Chromium from web_demo/e2e.mjs).
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
        || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

echo "web_demo/setup.sh: $(chromium --version 2>/dev/null | head -1); node $(node --version); node_modules ok"
