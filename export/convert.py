"""ONNX → TensorFlow SavedModel, through either of the two converters.

* ``onnx2tf`` (default) rewrites the graph as NHWC, TFLite's native layout: on the width-8 NAFNet
  it adds no TRANSPOSE op at all, and its fp32 file runs fastest on the CPU (see export/README.md).
* ``onnx-tf`` is the paper's path (Bokeh-Loss GAN, appendix A). It keeps PyTorch's NCHW layout, so
  every convolution is wrapped in TRANSPOSE ops (508 on the width-8 NAFNet) and the model's inputs
  and output are NCHW.

Both produce a SavedModel with one ``serving_default`` signature: inputs ``image`` and ``depth``,
output ``bokeh``, in the converter's layout.

onnx2tf is run without its "strict mode" and without its dummy inference. Strict mode re-runs the
partial TensorFlow model and ONNX Runtime after every op to repair transposition errors by brute
force; at 1024x1536 that took ~19 min on the reference machine. The dummy inference keeps every
intermediate ONNX tensor (11 GiB at 1024x1536 for width 8), and outside strict mode onnx2tf only
reads it back for Einsum and OneHot, which this generator has none of. Neither check is needed for
correctness here: the export's own parity gate compares the final TFLite file with PyTorch.
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["CONVERTERS", "DEFAULT_CONVERTER", "LITERT_TORCH", "ALL_CONVERTERS", "save_serving", "to_saved_model"]

CONVERTERS = ("onnx2tf", "onnx-tf")  # ONNX → TensorFlow, in the project's environment
DEFAULT_CONVERTER = "onnx2tf"
# PyTorch → TFLite directly, in its own environment (export/litert_torch.py, make venv-litert-torch)
LITERT_TORCH = "litert-torch"
ALL_CONVERTERS = (*CONVERTERS, LITERT_TORCH)
SIGNATURE_KEY = "serving_default"
# ONNX ops for which onnx2tf uses its dummy-inference results even outside strict mode.
_ONNX2TF_SHAPE_ESTIMATION_OPS = {"Einsum", "OneHot"}


def to_saved_model(onnx_path: str | Path, saved_model_dir: str | Path, converter: str, work_dir: str | Path) -> str:
    """Convert ``onnx_path`` into a SavedModel at ``saved_model_dir``; returns its layout,
    "NHWC" or "NCHW". ``work_dir`` receives the converter's scratch files."""
    if converter not in CONVERTERS:
        raise ValueError(f"unknown converter {converter!r}: choose one of {', '.join(CONVERTERS)}")
    if converter == "onnx2tf":
        return _onnx2tf(Path(onnx_path), Path(saved_model_dir), Path(work_dir))
    return _onnx_tf(Path(onnx_path), Path(saved_model_dir))


@contextlib.contextmanager
def _without_dummy_inference(core) -> Iterator[None]:
    """Make onnx2tf take its own "skip shape estimation" path instead of running ONNX Runtime
    with every intermediate tensor as an output."""

    def skip(**_kwargs):
        raise RuntimeError("dummy inference skipped: the export's parity gate checks the result")

    original = core.dummy_onnx_inference
    core.dummy_onnx_inference = skip
    try:
        yield
    finally:
        core.dummy_onnx_inference = original


def _onnx2tf(onnx_path: Path, saved_model_dir: Path, work_dir: Path) -> str:
    import onnx
    import onnx2tf
    import onnx2tf.onnx2tf as core

    # onnx2tf rewrites its input file in place (shape inference): give it a copy.
    graph = work_dir / "onnx2tf_input.onnx"
    shutil.copyfile(onnx_path, graph)
    ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
    skip = contextlib.nullcontext() if ops & _ONNX2TF_SHAPE_ESTIMATION_OPS else _without_dummy_inference(core)
    with skip:
        model = onnx2tf.convert(
            input_onnx_file_path=str(graph),
            output_folder_path=str(work_dir / "onnx2tf"),
            disable_strict_mode=True,
            not_use_onnxsim=True,  # already simplified by export.onnx_export
            disable_model_save=True,  # save_serving saves it, below
            non_verbose=True,
        )

    return save_serving(model, saved_model_dir)


def save_serving(model, saved_model_dir: str | Path) -> str:
    """Save a Keras model whose inputs are named ``image``, ``depth`` (and ``lens``) as a SavedModel
    with one ``serving_default`` signature of those inputs and the output ``bokeh``, what
    ``export.tflite.convert_tflite`` converts; returns its layout, "NHWC" or "NCHW"."""
    import tensorflow as tf

    inputs = {t.name: t for t in model.inputs}
    names = [n for n in ("image", "depth", "lens") if n in inputs]
    specs = [tf.TensorSpec(inputs[n].shape, tf.float32, name=n) for n in names]

    def call(by_name):
        return {"bokeh": model([by_name[t.name] for t in model.inputs])}

    # autograph=False and a plain tf.Module holding only the variables: saving the Keras model
    # itself re-traces every one of its ~1100 layers and took 90 s instead of 4 s. One function per
    # input set: a signature's input names are the Python argument names.
    if "lens" in names:

        @tf.function(autograph=False, input_signature=specs)
        def serve(image, depth, lens):
            return call({"image": image, "depth": depth, "lens": lens})
    else:

        @tf.function(autograph=False, input_signature=specs)
        def serve(image, depth):
            return call({"image": image, "depth": depth})

    module = tf.Module()
    module.model_variables = list(model.variables)
    module.serve = serve
    tf.saved_model.save(module, str(saved_model_dir), signatures={SIGNATURE_KEY: serve.get_concrete_function()})
    return "NHWC" if specs[0].shape[-1] == 3 else "NCHW"


def _onnx_tf(onnx_path: Path, saved_model_dir: Path) -> str:
    import onnx

    with warnings.catch_warnings():
        # onnx-tf imports tensorflow_addons, which warns that it is end-of-life (it is: onnx-tf 1.10
        # is the last release of an unmaintained project, kept because it is the paper's path).
        warnings.simplefilter("ignore", UserWarning)
        from onnx_tf.backend import prepare

        prepare(onnx.load(str(onnx_path)), device="CPU").export_graph(str(saved_model_dir))
    return "NCHW"  # onnx-tf keeps the ONNX layout and transposes around each convolution
