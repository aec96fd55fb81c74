"""web_demo/serve.py without a browser: the page URLs it prints (the precision the page picks by
default), what it serves and refuses (the page and the models only), and a port in use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.web_fixtures import REPO

# ------------------------------------------------------------------ serve.py's default URLs (no browser)


def _fake_export(root: Path, name: str, precisions: list[str]) -> None:
    (root / name).mkdir()
    variants = {p: {"file": f"bokeh_{p}.tflite"} for p in precisions}
    (root / name / "manifest.json").write_text(json.dumps({"name": name, "variants": variants}))


def test_serve_prints_a_url_per_model_with_an_exported_precision(tmp_path):
    """A shipped model may have no fp32 file: the printed URL asks for fp16, else the first variant."""
    from web_demo.serve import page_urls

    _fake_export(tmp_path, "nafnet_w8_lens_cpu", ["fp16", "int8"])
    _fake_export(tmp_path, "all", ["fp32", "fp16", "int8"])
    _fake_export(tmp_path, "int8_only", ["int8"])
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    lines = page_urls("http://127.0.0.1:8000", tmp_path)
    assert lines[0] == "http://127.0.0.1:8000/web_demo/index.html?model=all&precision=fp16"
    assert lines[1].startswith(f"{tmp_path / 'broken' / 'manifest.json'}: not usable")
    assert lines[2:] == [
        "http://127.0.0.1:8000/web_demo/index.html?model=int8_only&precision=int8",
        "http://127.0.0.1:8000/web_demo/index.html?model=nafnet_w8_lens_cpu&precision=fp16",
    ]


def test_serve_names_every_repo_model(capsys, monkeypatch):
    """``serve.py`` with no --models lists the folders of tflite_models/ (no model name is hard-coded)."""
    from web_demo import serve

    class NoServe:  # stop main() before it serves forever
        server_address = ("127.0.0.1", 8000)

        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            pass

    monkeypatch.setattr(serve, "make_server", lambda *a, **k: NoServe())
    serve.main([])
    out = capsys.readouterr().out
    manifests = sorted((REPO / "tflite_models").glob("*/manifest.json"))
    for path in manifests:
        precision = serve.default_precision(json.loads(path.read_text()))
        assert f"index.html?model={path.parent.name}&precision={precision}" in out, out
    assert manifests or "no exported model" in out, out


def test_serve_only_serves_the_page_and_the_models(tmp_path):
    """Under --bind 0.0.0.0 the server is on the LAN: .git, runs/, listings and symlinks that lead
    out of a served folder are a 404; the page and a model's files are served."""
    import urllib.error
    import urllib.request

    from web_demo.serve import serve_in_thread

    models = tmp_path / "models"
    (models / "m").mkdir(parents=True)
    (models / "m" / "manifest.json").write_text("{}")
    (models / "m" / "leak").symlink_to("/etc/hostname")
    srv, base = serve_in_thread(models_dir=models)

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(base + path) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        assert status("/web_demo/index.html") == 200
        assert status("/tflite_models/m/manifest.json") == 200
        assert status("/web_demo/") == 200  # its index.html, not a listing
        for path in (
            "/.git/config",
            "/README.md",
            "/runs/",
            "/",
            "/web_demo/samples/",
            "/tflite_models/",
            "/tflite_models/m/leak",
            "/web_demo/../.git/config",
            "/web_demo/%2e%2e/.git/config",
        ):
            assert status(path) == 404, path
    finally:
        srv.shutdown()
        srv.server_close()


def test_serve_on_a_port_in_use_is_one_clear_error(capsys):
    """Probe row 8: a used port ended in an OSError traceback."""
    import socket

    from web_demo.serve import main as serve_main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as e:
            serve_main(["--port", str(port)])
    assert e.value.code == 2 and f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
