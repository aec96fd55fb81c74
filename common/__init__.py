"""Plumbing shared by every stage: ``training`` → ``export`` → ``eval`` all import from here, and
``common`` imports none of them (tests/test_import_graph.py checks it).

* ``common.paths``: where the repository is.
* ``common.io``: atomic writes (one writer, one permission policy).
* ``common.hashing``: a file's sha256.
* ``common.sizes``: ``HEIGHTxWIDTH`` sizes on command lines.
* ``common.weights``: where pretrained weight files are looked for (one ``TORCH_HOME`` default).
* ``common.metrics``: PSNR, SSIM (and the SSIM loss built on it), depth-edge band and edge PSNR.

Imports belong at the top of a module, where they show its dependencies. The exceptions are the
heavy or optional packages, imported inside the functions that need them so that importing a
stage, or running its ``--help``, does not load them, and a machine without an optional one still
runs the rest: TensorFlow, onnx2tf, onnx-tf, onnx, onnxruntime, onnxsim,
ai_edge_litert, ai_edge_quantizer, litert_torch, transformers and huggingface_hub. About 100
function-level imports of the project's own modules and of torch/numpy/PIL remain from before this
rule (issue 15, item 5); move them up when touching a file, except where an import must follow
set-up code (``export/__main__.py`` sets TF_CPP_MIN_LOG_LEVEL first; ``training/__main__.py``
arranges to die with its parent first; ``eval.benchmark``'s TFLite worker must not import torch).
"""
