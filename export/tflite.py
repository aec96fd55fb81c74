"""TensorFlow SavedModel → TFLite in three precisions.

* ``fp32``: the reference; XNNPACK on the CPU, and the GPU delegate (which computes in fp16 or fp32).
* ``fp16``: float16 weights, float32 activations. Half the size; the GPU delegate consumes fp16
  weights directly, and the CPU dequantises them once at load time.
* ``int8``: integer quantisation (int8 weights and activations) calibrated on real dataset
  samples, RGB and depth both (``export.samples``), except the LayerNorms' RSQRT, kept in float
  (``INT8_FLOAT_OPS``): the smallest file and, on XNNPACK, the fastest (export/README.md, "int8").
  Inputs and output stay **float32** tensors, with
  one QUANTIZE per input and one DEQUANTIZE at the output: all three files then share one
  interface (the same float buffers, the same manifest entry), and the GPU delegate runs the
  quantised graph as it is. An int8/uint8 interface would save the app one multiply per pixel but
  forces a second code path in every app for a gain too small to measure beside the network.

Weights are quantised **per tensor** by default. Per-channel scales are more precise, but TFLite
stores a float32 scale *and an int64 zero point* per output channel for every weight and bias
tensor: on the width-8 NAFNet that takes the int8 file from 1.40 MB to 1.81 MB, over the 1.5 MB
budget, while the PSNR against PyTorch did not change (43.57 vs 43.55 dB; the error is dominated
by the activations). ``per_channel=True`` restores it; the int8 parity gate checks either choice.

Conversion allows SELECT_TF_OPS on purpose: an op without a builtin kernel then shows up as a
Flex op in the file, which the ``builtin-ops`` gate reports by name, instead of an opaque converter
error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from export.samples import Sample

__all__ = [
    "PRECISIONS",
    "DEFAULT_PRECISIONS",
    "INT8_FLOAT_OPS",
    "FILE_NAMES",
    "INPUT_ORDER",
    "convert_tflite",
    "order_inputs",
    "representative_dataset",
    "to_layout",
]

PRECISIONS = ("fp32", "fp16", "int8")
# What `python -m export` makes unless --precisions says otherwise: all three. int8 earns its place
# (0.49x the fp16 file's CPU latency at 1024x1536, 1.44 MB; export/README.md, "int8").
DEFAULT_PRECISIONS = PRECISIONS
# int8 ops kept in float: XNNPACK has no int8 RSQRT, so each LayerNorm's 1/σ split the int8 graph
# into 73 delegate partitions run between TFLite's reference kernels; in float it stays a cheap
# per-pixel op. Measured by ``python -m export.int8_study`` (export/README.md).
INT8_FLOAT_OPS = ("RSQRT",)
FILE_NAMES = {p: f"bokeh_{p}.tflite" for p in PRECISIONS}


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """NCHW array → the model's layout."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x


def representative_dataset(
    samples: list[Sample], layout: str, lens_input: bool = False
) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """The calibration inputs for the int8 converter, keyed by signature input name. A lens model
    is calibrated with each sample's own lens, so the defocus planes span the range they will see."""

    def gen() -> Iterator[dict[str, np.ndarray]]:
        for s in samples:
            named = {"image": to_layout(s.image, layout), "depth": to_layout(s.depth, layout)}
            if lens_input:
                named["lens"] = to_layout(s.lens, layout)
            yield named

    return gen


def convert_tflite(
    saved_model_dir: str | Path,
    precision: str,
    representative: Callable[[], Iterator[dict[str, np.ndarray]]] | None = None,
    per_channel: bool = False,
    float_ops: tuple[str, ...] = INT8_FLOAT_OPS,
) -> bytes:
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if representative is None:
            raise ValueError("int8 conversion needs a representative dataset of real samples")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
        converter._experimental_disable_per_channel = not per_channel  # no public switch in TF 2.15
        if not float_ops:  # every op int8
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.SELECT_TF_OPS]
            return order_inputs(converter.convert())
        converter.target_spec.supported_ops = ops
        # Selective quantisation, TensorFlow's documented way (QuantizationDebugger's denylist).
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=representative,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops)),
        )
        return order_inputs(debugger.get_nondebug_quantized_model())
    converter.target_spec.supported_ops = ops
    return order_inputs(converter.convert())


# The order of a model's input tensors, as the manifest lists them.
INPUT_ORDER = ("image", "depth", "lens")


def order_inputs(content: bytes) -> bytes:
    """Renumber the subgraph's inputs as image, depth, lens (the manifest's order).

    The converter orders the inputs of a SavedModel signature by its own rule (a lens model came
    out lens, depth, image); apps, benchmark_model and tools that index inputs, or read the frame
    size off input 0, then see a 1x1x1x3 tensor first. Only the subgraph's input list changes:
    the tensors, the signature (which maps names to tensors) and the arithmetic do not, so the
    file computes exactly what it did. TensorFlow's own flatbuffer utilities read and write it.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    names = {int(i): graph.tensors[i].name.decode() for i in graph.inputs}

    def rank(i: int) -> int:
        # tensor names are "serving_default_<input>:0"
        return next(
            (k for k, n in enumerate(INPUT_ORDER) if names[i].endswith(f"_{n}:0") or names[i] == n), len(INPUT_ORDER)
        )

    order = sorted(names, key=rank)
    if order == [int(i) for i in graph.inputs]:
        return content
    graph.inputs = np.array(order, dtype=np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
