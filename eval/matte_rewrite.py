"""MediaPipe's selfie segmentation made builtin-only: :func:`rewrite_custom_ops` (``eval.matte prepare``).

Why a rewrite. The file's last layer (256×256 logits from 128×128×16 features) is the MediaPipe
custom op ``Convolution2DTransposeBias``, which no stock LiteRT op resolver has. It runs today only
where XNNPACK happens to claim it (the CPU delegate carries a MediaPipe-op path); with the
reference kernels, a GPU/WebGPU accelerator or NNAPI the file fails to load ("unresolved custom
op"). ``prepare`` replaces that node with the builtin ``TRANSPOSE_CONV`` (version 3, with bias),
which computes the same thing: custom options (padding, stride_w, stride_h) become
``TransposeConvOptions``, the inputs (input, weights [O, kH, kW, I], bias [O]) become
(output_shape, weights, input, bias), the output shape becomes a new int32 constant, and the fp16
weights and bias, which reach the custom op through DEQUANTIZE nodes, are folded into float32
constants (TRANSPOSE_CONV wants constant weights on every delegate). ``eval.matte.prepare`` checks
the result against the original before it writes it: the original runs with XNNPACK's implementation of the
custom op, the rewrite with LiteRT's reference kernels (no delegate), two independent
implementations, on a random and a structured probe; they must agree to ``PARITY_MAX_ABS``.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

__all__ = ["CUSTOM_OP", "RewriteError", "rewrite_custom_ops"]

CUSTOM_OP = b"Convolution2DTransposeBias"
# TfLitePadding (the custom op's raw options) -> schema Padding (TransposeConvOptions)
_TFLITE_PADDING = {1: "SAME", 2: "VALID"}


class RewriteError(ValueError):
    """The model is not the one the rewrite knows: the message says what differs."""


def _schema():
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    return fb, flatbuffer_utils


def _constant(model, graph, index: int, producers: dict[int, Any], fb) -> tuple[np.ndarray, Any | None]:
    """The value of tensor ``index`` and the DEQUANTIZE op that made it (None if stored directly)."""
    t = graph.tensors[index]
    data = model.buffers[t.buffer].data if t.buffer else None
    types = {fb.TensorType.FLOAT32: np.float32, fb.TensorType.FLOAT16: np.float16, fb.TensorType.INT32: np.int32}
    if data is not None and len(data):
        return np.frombuffer(bytes(bytearray(data)), types[t.type]).astype(np.float32).reshape(t.shape), None
    op = producers.get(index)
    if op is not None and model.operatorCodes[op.opcodeIndex].builtinCode == fb.BuiltinOperator.DEQUANTIZE:
        value, _ = _constant(model, graph, op.inputs[0], producers, fb)
        return value.reshape(t.shape), op
    raise RewriteError(f"tensor {t.name!r} feeds {CUSTOM_OP.decode()} but is not a constant")


def rewrite_custom_ops(model_bytes: bytes) -> tuple[bytes, int]:
    """Replace every ``Convolution2DTransposeBias`` node by builtin ``TRANSPOSE_CONV`` (module
    docstring); return the new flatbuffer and the number of nodes replaced."""
    fb, fu = _schema()
    model = fu.convert_bytearray_to_object(bytearray(model_bytes))
    codes = model.operatorCodes
    custom = [i for i, c in enumerate(codes) if c.customCode == CUSTOM_OP]
    if not custom:
        return bytes(model_bytes), 0
    tc_index = len(codes)
    codes.append(fb.OperatorCodeT())
    codes[tc_index].builtinCode = fb.BuiltinOperator.TRANSPOSE_CONV
    codes[tc_index].deprecatedBuiltinCode = fb.BuiltinOperator.TRANSPOSE_CONV  # < 127: both fields hold it
    codes[tc_index].version = 3  # TRANSPOSE_CONV with a bias input

    def add_buffer(array: np.ndarray) -> int:
        b = fb.BufferT()
        b.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        model.buffers.append(b)
        return len(model.buffers) - 1

    replaced = 0
    for graph in model.subgraphs:
        producers = {o: op for op in graph.operators for o in op.outputs}
        dead = []
        for op in graph.operators:
            if op.opcodeIndex not in custom:
                continue
            opts = b"" if op.customOptions is None else bytes(bytearray(op.customOptions))
            if len(opts) != 12:
                raise RewriteError(
                    f"{CUSTOM_OP.decode()}: {len(opts)} bytes of options, expected 12 (padding, strides)"
                )
            padding, stride_w, stride_h = struct.unpack("<3i", opts)
            if padding not in _TFLITE_PADDING:
                raise RewriteError(f"{CUSTOM_OP.decode()}: padding {padding} is neither SAME (1) nor VALID (2)")
            x, w, b = op.inputs
            out = graph.tensors[op.outputs[0]]
            new_inputs = []
            for idx in (w, b):
                value, deq = _constant(model, graph, idx, producers, fb)
                t = graph.tensors[idx]
                t.type = fb.TensorType.FLOAT32
                t.buffer = add_buffer(value.astype("<f4"))
                if deq is not None:
                    dead.append(deq)
                new_inputs.append(idx)
            shape = fb.TensorT()
            shape.shape = [4]
            shape.type = fb.TensorType.INT32
            shape.name = (out.name or b"transpose_conv") + b"/output_shape"
            shape.buffer = add_buffer(np.asarray(out.shape, "<i4"))
            graph.tensors.append(shape)
            op.inputs = [len(graph.tensors) - 1, new_inputs[0], x, new_inputs[1]]  # output_shape, weights, input, bias
            op.opcodeIndex = tc_index
            op.customOptions = None
            op.customOptionsFormat = 0
            op.builtinOptionsType = fb.BuiltinOptions.TransposeConvOptions
            op.builtinOptions = fb.TransposeConvOptionsT()
            op.builtinOptions.padding = getattr(fb.Padding, _TFLITE_PADDING[padding])
            op.builtinOptions.strideW, op.builtinOptions.strideH = stride_w, stride_h
            op.builtinOptions.fusedActivationFunction = fb.ActivationFunctionType.NONE
            replaced += 1
        # The folded DEQUANTIZE nodes go: their outputs are constants now, with the same values for
        # any other reader (a tensor must not be both a constant and an op's output).
        graph.operators = [op for op in graph.operators if not any(op is d for d in dead)]
    # Remove the custom op's code, so no runtime is asked to resolve it, and re-index the rest.
    keep = [i for i in range(len(codes)) if i not in custom]
    remap = {old: new for new, old in enumerate(keep)}
    model.operatorCodes = [codes[i] for i in keep]
    for graph in model.subgraphs:
        for op in graph.operators:
            op.opcodeIndex = remap[op.opcodeIndex]
    return bytes(fu.convert_object_to_bytearray(model)), replaced
