"""Static file server for the web demo: the repository root at http://127.0.0.1:PORT/.

Open http://127.0.0.1:8000/web_demo/index.html?model=<name> where ``<name>`` is a folder of
``tflite_models/``; on start the server prints that URL for every exported model it finds, with
the precision the page picks by default (fp16 when exported, else the manifest's first variant).
The page loads ``../tflite_models/<name>/`` and its LiteRT.js runtime from
``web_demo/node_modules/`` (``npm ci`` in ``web_demo/``).

Why not plain ``python -m http.server``: it works, but this server also sends the two
cross-origin-isolation headers (COOP/COEP) that let the browser hand SharedArrayBuffer to
WebAssembly, so LiteRT.js can run its multi-threaded XNNPACK build, and it serves ``.wasm`` and
``.mjs`` with the MIME types that streaming WebAssembly compilation and ES modules require.
``--models DIR`` serves another folder as ``/tflite_models/`` (the tests use it for a fixture).

Only what the page needs is served: files under ``web_demo/`` and the models folder, after
resolving symlinks, and no directory listings. The rest of the repository (``.git``, ``runs/``,
``weights/``) is a 404, which matters under ``--bind 0.0.0.0`` (testing from a phone on the LAN).

Usage::

    python web_demo/serve.py [--port 8000] [--bind 127.0.0.1] [--models DIR]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import posixpath
import threading
import urllib.parse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Same rule as manifest.js' defaultPrecision: a shipped model may have no fp32 file.
PREFERRED_PRECISION = "fp16"


class DemoHandler(http.server.SimpleHTTPRequestHandler):
    """Serves ``root``; ``/tflite_models/...`` from ``models_dir`` when one is given."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".tflite": "application/octet-stream",
    }

    def __init__(self, *args, models_dir: Path | None = None, quiet: bool = True, **kwargs):
        self.models_dir = models_dir
        self.quiet = quiet
        super().__init__(*args, **kwargs)

    def _roots(self) -> list[Path]:
        root = Path(self.directory).resolve()
        return [root / "web_demo", self.models_dir or root / "tflite_models"]

    def send_head(self):  # stdlib signature
        # Resolved, so a symlink inside a served folder cannot lead out of it.
        real = Path(self.translate_path(self.path)).resolve()
        if not any(real == r or r in real.parents for r in self._roots()):
            self.send_error(404, "Not found")
            return None
        return super().send_head()

    def list_directory(self, path):  # stdlib signature
        self.send_error(404, "Not found")  # no listings: the page never needs one
        return None

    def translate_path(self, path: str) -> str:
        clean = posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(path).path))
        if self.models_dir is not None and (clean == "/tflite_models" or clean.startswith("/tflite_models/")):
            rel = clean[len("/tflite_models") :].lstrip("/")
            parts = [p for p in rel.split("/") if p not in ("", ".", "..")]
            return str(self.models_dir.joinpath(*parts))
        return super().translate_path(path)

    def end_headers(self) -> None:
        # Cross-origin isolation, so SharedArrayBuffer (threaded WebAssembly) is available.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # stdlib signature
        if not self.quiet:
            super().log_message(format, *args)


def make_server(
    port: int = 0,
    bind: str = "127.0.0.1",
    root: str | os.PathLike = REPO_ROOT,
    models_dir: str | os.PathLike | None = None,
    quiet: bool = True,
) -> http.server.ThreadingHTTPServer:
    """A server for ``root`` on ``bind:port`` (0 = any free port); call ``serve_forever()``."""
    handler = functools.partial(
        DemoHandler,
        directory=str(root),
        models_dir=Path(models_dir).resolve() if models_dir else None,
        quiet=quiet,
    )
    return http.server.ThreadingHTTPServer((bind, port), handler)


def serve_in_thread(**kwargs) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start ``make_server(**kwargs)`` in a daemon thread; return (server, base URL)."""
    server = make_server(**kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}"


def default_precision(manifest: dict) -> str | None:
    """The variant the page loads without ``?precision=``: fp16 if exported, else the first listed."""
    variants = list(manifest.get("variants") or {})
    if PREFERRED_PRECISION in variants:
        return PREFERRED_PRECISION
    return variants[0] if variants else None


def page_urls(base: str, models_dir: Path) -> list[str]:
    """The demo page's URL for each exported model in ``models_dir`` (a folder with manifest.json).

    Found by listing the folder rather than naming a model, so a renamed or newly exported model
    needs no change here. A manifest that cannot be read gets a line saying why instead of a URL.
    """
    lines = []
    for path in sorted(Path(models_dir).glob("*/manifest.json")):
        name = path.parent.name
        try:
            precision = default_precision(json.loads(path.read_text()))
        except (OSError, ValueError, AttributeError) as e:
            lines.append(f"{path}: not usable ({e})")
            continue
        if precision is None:
            lines.append(f"{path}: lists no variants")
            continue
        query = urllib.parse.urlencode({"model": name, "precision": precision})
        lines.append(f"{base}/web_demo/index.html?{query}")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--models", default=None, help="folder to serve as /tflite_models/")
    args = ap.parse_args(argv)
    if args.models and not Path(args.models).is_dir():
        ap.error(f"--models {args.models}: not a folder")
    if not 0 <= args.port <= 65535:
        ap.error(f"--port {args.port}: not a port (0-65535)")
    try:
        server = make_server(args.port, args.bind, REPO_ROOT, args.models, quiet=False)
    except OSError as e:  # in use, or an address this machine does not have
        ap.error(f"cannot listen on {args.bind}:{args.port}: {e.strerror or e} (try another --port, or --port 0)")
    host, port = server.server_address[:2]
    base = f"http://{host}:{port}"
    models_dir = Path(args.models) if args.models else REPO_ROOT / "tflite_models"
    urls = page_urls(base, models_dir)
    print(f"serving {REPO_ROOT} at {base}/web_demo/index.html?model=<name> (<name>: a folder of {models_dir})")
    print(
        "\n".join(f"  {u}" for u in urls)
        if urls
        else f"  no exported model in {models_dir} (no */manifest.json): python -m export ... --out {models_dir}/<name>"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
