"""The export gates: an exported model is kept only if it is faithful and runs on the phone GPU.

The paper's own PyTorch → ONNX → TensorFlow → TFLite conversion ended up with Flex ops, so the
model could not use the mobile GPU and was left out of the AIM 2022 real-time track (Bokeh-Loss
GAN §4.2, appendix A). Every export therefore has to pass, in this order:

1. ``onnx-parity``: ONNX Runtime vs PyTorch, max |Δ| ≤ 1e-4 on dataset samples.
2. ``builtin-ops``: no Flex (SELECT_TF_OPS) op and no other custom op in the flatbuffer.
3. ``tensor-rank``: no tensor of rank > 4 (the TFLite GPU delegate handles rank ≤ 4 only).
4. ``gpu-compatibility``: ``tf.lite.experimental.Analyzer`` with ``gpu_compatibility=True``
   reports no GPU COMPATIBILITY WARNING.
5. ``tflite-parity``: TFLite vs PyTorch PSNR ≥ 60 dB (fp32), 45 dB (fp16), 32 dB (int8) on the
   same samples.

PSNR is computed per sample on the raw network outputs (not clamped) with peak 1, and the worst
sample decides. Clamping to [0, 1] can only shrink a difference, so the PSNR of what the user
finally sees is at least this value.

The GPU verdict is the analyzer's on the graph as the GPU delegate sees it (``gpu_delegate_view``):
fp16-weight files are otherwise reported incompatible by TF 2.15's analyzer, wrongly.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common.metrics import psnr_array

__all__ = [
    "ONNX_MAX_ABS_DIFF",
    "TFLITE_MIN_PSNR_DB",
    "MAX_TENSOR_RANK",
    "GateError",
    "TFLiteInspection",
    "worst_sample",
    "inspect_tflite",
    "parse_gpu_analyzer",
    "gpu_delegate_view",
    "check_onnx_parity",
    "check_tflite_parity",
    "check_tflite_structure",
]

ONNX_MAX_ABS_DIFF = 1e-4
TFLITE_MIN_PSNR_DB = {"fp32": 60.0, "fp16": 45.0, "int8": 32.0}
MAX_TENSOR_RANK = 4

GPU_OK_LINE = "Your model looks compatible with GPU delegate"
GPU_WARNING_PREFIX = "GPU COMPATIBILITY WARNING"


class GateError(RuntimeError):
    """An export gate failed: names the gate, the measured value and the threshold."""

    def __init__(self, gate: str, measured: object, threshold: str, detail: str = "") -> None:
        self.gate, self.measured, self.threshold, self.detail = gate, measured, threshold, detail
        msg = f"gate '{gate}' failed: measured {measured}, required {threshold}"
        super().__init__(f"{msg}. {detail}" if detail else msg)


def worst_sample(outputs: list[np.ndarray], references: list[np.ndarray]) -> tuple[float, float]:
    """(lowest PSNR, largest |Δ|) over paired samples: the worst sample decides every parity gate."""
    pairs = list(zip(outputs, references, strict=True))
    return (min(psnr_array(o, r) for o, r in pairs), max(float(np.abs(o - r).max()) for o, r in pairs))


@dataclass
class TFLiteInspection:
    """What the flatbuffer and TensorFlow's analyzer say about one .tflite file."""

    op_census: dict[str, int]  # builtin (or CUSTOM:<code>) op name -> count
    flex_ops: list[str]  # custom codes of Flex ops (need SELECT_TF_OPS at run time)
    custom_ops: list[str]  # every custom op, Flex included
    max_tensor_rank: int
    gpu_compatible: bool
    gpu_warnings: list[str] = field(default_factory=list)


def _builtin_code(op_code) -> int:
    # The schema moved builtin codes > 127 to a new field; the larger of the two is the real code.
    return max(op_code.builtinCode, op_code.deprecatedBuiltinCode)


def _opcode_name(op_code, builtin_names: dict[int, str]) -> str:
    code = _builtin_code(op_code)
    name = builtin_names.get(code, f"BUILTIN_{code}")
    if name == "CUSTOM":
        custom = op_code.customCode.decode() if isinstance(op_code.customCode, bytes) else str(op_code.customCode)
        return f"CUSTOM:{custom}"
    return name


def parse_gpu_analyzer(report: str) -> tuple[bool, list[str]]:
    """Verdict from the text of ``Analyzer.analyze(..., gpu_compatibility=True)``: compatible only
    if it says so and lists no GPU COMPATIBILITY WARNING (one per unsupported node)."""
    warnings = [line.strip() for line in report.splitlines() if GPU_WARNING_PREFIX in line]
    return (GPU_OK_LINE in report and not warnings), warnings


def run_gpu_analyzer(model_content: bytes) -> str:
    import tensorflow as tf

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):  # the analyzer prints its report
        tf.lite.experimental.Analyzer.analyze(model_content=model_content, gpu_compatibility=True)
    return buf.getvalue()


def gpu_delegate_view(model_content: bytes) -> bytes:
    """The graph as the GPU delegate sees it: consumers of ``DEQUANTIZE(constant fp16)`` read the
    fp16 constant directly and the DEQUANTIZE ops are gone.

    That is what ``FP16GraphPartitionHelper`` in tensorflow/lite/delegates/utils.cc does before it
    asks whether a node is supported, so fp16-weight models run fully on the GPU. The flatbuffer
    analyzer has no such step: it counts the dequantised weights of every convolution as runtime
    inputs ("Expected 1 or 2 input tensor(s), but node has 3 runtime inputs") and calls every fp16
    model incompatible. Models without fp16 constants are returned unchanged.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
    dequantize = {
        i for i, oc in enumerate(model.operatorCodes) if _builtin_code(oc) == schema.BuiltinOperator.DEQUANTIZE
    }
    changed = False
    for sg in model.subgraphs:
        remap: dict[int, int] = {}
        for op in sg.operators:
            if op.opcodeIndex in dequantize:
                src = sg.tensors[op.inputs[0]]
                buf = model.buffers[src.buffer].data if src.buffer else None
                if src.type == schema.TensorType.FLOAT16 and buf is not None and len(buf):
                    remap[op.outputs[0]] = op.inputs[0]
        if not remap:
            continue
        changed = True
        sg.operators = [op for op in sg.operators if not (op.opcodeIndex in dequantize and op.outputs[0] in remap)]
        for op in sg.operators:
            op.inputs = [remap.get(int(t), int(t)) for t in op.inputs]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else model_content


def _census(model, builtin_names: dict[int, str]) -> dict[str, int]:
    names = [_opcode_name(oc, builtin_names) for oc in model.operatorCodes]
    census = Counter(names[op.opcodeIndex] for sg in model.subgraphs for op in sg.operators)
    return dict(sorted(census.items()))


def _parse(model_content: bytes) -> tuple[Any, dict[int, str]]:
    """The flatbuffer as objects, and builtin op code -> name (LiteRT's schema, no TensorFlow)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
    return model, {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def op_census(model_content: bytes) -> dict[str, int]:
    """Op name -> count, read from the flatbuffer: builtin names, custom ops as ``CUSTOM:<code>``."""
    return _census(*_parse(model_content))


def inspect_tflite(model_content: bytes) -> TFLiteInspection:
    """Op census, Flex/custom ops and the largest tensor rank read from the flatbuffer itself,
    plus the verdict of TensorFlow's analyzer on the graph the GPU delegate sees."""
    model, builtin_names = _parse(model_content)
    census = _census(model, builtin_names)
    max_rank = max((0 if t.shape is None else len(t.shape) for sg in model.subgraphs for t in sg.tensors), default=0)
    custom = sorted({n.split(":", 1)[1] for n in census if n.startswith("CUSTOM:")})
    flex = [c for c in custom if c.startswith("Flex")]
    compatible, warnings = parse_gpu_analyzer(run_gpu_analyzer(gpu_delegate_view(model_content)))
    return TFLiteInspection(census, flex, custom, max_rank, compatible, warnings)


def check_onnx_parity(max_abs_diff: float) -> None:
    if not max_abs_diff <= ONNX_MAX_ABS_DIFF:  # also catches NaN
        raise GateError(
            "onnx-parity",
            f"max |ONNX Runtime - PyTorch| = {max_abs_diff:.3g}",
            f"<= {ONNX_MAX_ABS_DIFF:g}",
            "The ONNX graph does not compute what the PyTorch generator computes.",
        )


def check_tflite_structure(variant: str, insp: TFLiteInspection) -> None:
    """The gates that read the file alone: builtin ops only, rank ≤ 4, GPU-delegate compatible."""
    if insp.custom_ops:
        raise GateError(
            "builtin-ops",
            f"{variant}: {len(insp.custom_ops)} non-builtin op type(s) {insp.custom_ops}",
            "0 (no Flex / SELECT_TF_OPS, no custom ops)",
            "These ops need the Flex delegate or a custom resolver and cannot run on the phone GPU; "
            "rewrite the PyTorch op they come from with ops TFLite has built in.",
        )
    if insp.max_tensor_rank > MAX_TENSOR_RANK:
        raise GateError(
            "tensor-rank",
            f"{variant}: a tensor of rank {insp.max_tensor_rank}",
            f"rank <= {MAX_TENSOR_RANK}",
            "The TFLite GPU delegate only takes tensors of rank <= 4 (PixelShuffle/DepthToSpace is the "
            "usual culprit: use ConvTranspose2d, see training/model.py).",
        )
    if not insp.gpu_compatible:
        shown = "; ".join(insp.gpu_warnings[:3]) or "no 'compatible' verdict in the analyzer report"
        raise GateError(
            "gpu-compatibility",
            f"{variant}: {len(insp.gpu_warnings)} GPU compatibility warning(s)",
            "0",
            f"tf.lite.experimental.Analyzer(gpu_compatibility=True) says: {shown}",
        )


def check_tflite_parity(variant: str, psnr_db: float) -> None:
    need = TFLITE_MIN_PSNR_DB[variant]
    if not psnr_db >= need:
        raise GateError(
            "tflite-parity",
            f"{variant}: PSNR vs PyTorch = {psnr_db:.2f} dB",
            f">= {need:g} dB",
            "The TFLite file does not reproduce the PyTorch generator closely enough.",
        )
