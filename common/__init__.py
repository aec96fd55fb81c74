"""Plumbing shared by every stage: ``training`` → ``export`` → ``eval`` all import from here, and
``common`` imports none of them (tests/test_import_graph.py checks it).

* ``common.paths``: where the repository is.
* ``common.io``: atomic writes (one writer, one permission policy).
* ``common.hashing``: a file's sha256.
* ``common.sizes``: ``HEIGHTxWIDTH`` sizes on command lines.
* ``common.weights``: where pretrained weight files are looked for (one ``TORCH_HOME`` default).
* ``common.metrics``: PSNR, SSIM (and the SSIM loss built on it), depth-edge band and edge PSNR.

Imports belong at the top of a module, where they show its dependencies; ruff's PLC0415 checks it
(``make lint``). The heavy or optional packages are the exception, listed in pyproject.toml
(``banned-module-level-imports``: TensorFlow, onnx2tf, onnx-tf, onnx, onnxruntime, onnxsim,
ai_edge_litert, ai_edge_quantizer, litert_torch, transformers, huggingface_hub, psutil): they are
imported inside the functions that need them, so that importing a stage, or running its ``--help``,
does not load them, and a machine without an optional one still runs the rest. The few other
function-level imports say why on their line (a worker that must not load torch, a circular pair).
"""
