"""Plumbing shared by every stage: ``training`` → ``export`` → ``eval`` all import from here, and
``common`` imports none of them (tests/test_import_graph.py checks it).

* ``common.paths``: where the repository is.
* ``common.io``: atomic writes (one writer, one permission policy).
* ``common.hashing``: a file's sha256.
* ``common.sizes``: ``HEIGHTxWIDTH`` sizes on command lines.
* ``common.weights``: where pretrained weight files are looked for (one ``TORCH_HOME`` default).
* ``common.metrics``: PSNR, SSIM (and the SSIM loss built on it), depth-edge band and edge PSNR.

Imports sit at the top of each module, except these heavy or optional packages, which are imported
inside the functions that need them so that importing a stage, or running its ``--help``, does not
load them (and a machine without the optional ones can still run the rest):
TensorFlow, onnx2tf, onnx-tf, onnxruntime, onnx, ai_edge_litert, litert_torch, transformers,
matplotlib, scikit-image and lightning's distributed bits pulled in by a training run.
"""
