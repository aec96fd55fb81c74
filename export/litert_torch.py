"""PyTorch → TFLite in one step, through LiteRT Torch: the third converter beside onnx2tf and onnx-tf.

``litert-torch`` (formerly AI Edge Torch) is Google's supported PyTorch → TFLite converter: it traces
the generator with ``torch.export``, lowers it through StableHLO to TFLite, and moves the graph to
NHWC with its own layout pass. No ONNX, no TensorFlow, no SavedModel.

It cannot live in the project's environment. litert-torch 0.10 needs jax, which needs numpy >= 2
and ml_dtypes >= 0.5; TensorFlow 2.15 (kept for onnx-tf, the paper's path) needs numpy < 2 and
ml_dtypes 0.3 (``pip install --dry-run litert-torch==0.10.0`` in ``.venv`` would replace numpy 1.26.4
with 2.4.6 and ml_dtypes 0.3.2 with 0.7.0). So it gets its own environment, ``.venv-litert-torch``
(``make venv-litert-torch``, pinned in requirements-litert-torch.txt), and the conversion runs in a
child process of that environment's Python. The parent saves the generator as plain tensors and
dicts (its state dict and NAFNet arguments, read back with ``weights_only=True``); the child rebuilds
the NAFNet, takes the same inference form as the ONNX path (``export.reparam``) and writes one
.tflite file per precision. The gates, the manifest and the runners stay in the parent's
environment, unchanged.

The files have the interface of the other converters' NHWC files: one signature, inputs ``image``
(1, H, W, 3), ``depth`` (1, H, W, 1) [, ``lens`` (1, 1, 1, 3)] in that order, output ``bokeh``
(1, H, W, 3), all float32. Precisions, as ``export.tflite`` defines them:

* ``fp32``: litert-torch's output as is.
* ``fp16``: float16 weights of every convolution (CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV),
  float32 activations; ai-edge-quantizer's float casting on the fp32 file, the same
  ``DEQUANTIZE(fp16 constant)`` form as TensorFlow's fp16 conversion (biases stay float32).
* ``int8``: full-integer post-training quantisation of the fp32 file by ai-edge-quantizer
  (``static_wi8_ai8`` ranges: int8 weights, per tensor as in export/tflite.py, and int8
  activations), calibrated on the export's calibration samples, float32 inputs and output.

On the width-8 NAFNet its graph matches onnx2tf's op for op (258 CONV_2D, 72 depthwise, 180 MEAN,
same CPU speed) plus 2 TRANSPOSE and 74 RESHAPE: see export/README.md, "LiteRT Torch".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.paths import REPO

VENV = REPO / ".venv-litert-torch"
PRECISIONS = ("fp32", "fp16", "int8")
INPUT_ORDER = ("image", "depth", "lens")  # the manifest's order
SIGNATURE_KEY = "serving_default"

__all__ = [
    "VENV",
    "LiteRTTorchUnavailable",
    "nafnet_arch",
    "convert_with_litert_torch",
    "convert_all_with_litert_torch",
    "litert_torch_python",
    "tidy_flatbuffer",
]


class LiteRTTorchUnavailable(FileNotFoundError):
    """``.venv-litert-torch`` is missing or broken; the message says how to make it."""


def litert_torch_python(venv: str | Path | None = None) -> Path:
    """The optional environment's Python, or a LiteRTTorchUnavailable naming ``make venv-litert-torch``."""
    venv = Path(venv or VENV)
    python = venv / "bin" / "python"
    if not python.is_file():
        raise LiteRTTorchUnavailable(
            f"the litert-torch converter needs its own environment, {venv} (it needs numpy >= 2, which "
            "TensorFlow 2.15 in .venv cannot take): run `make venv-litert-torch` (pinned in "
            "requirements-litert-torch.txt), then export again"
        )
    return python


def nafnet_arch(generator) -> dict[str, Any]:
    """The ``NAFNet(**arch)`` arguments that rebuild ``generator`` (the child gets weights, not code)."""
    from training.model import NAFNet

    if not isinstance(generator, NAFNet):
        raise ValueError(
            f"the litert-torch converter rebuilds a NAFNet from its weights in its own "
            f"environment; got a {type(generator).__name__}"
        )
    img = generator.ending.out_channels
    return {
        "width": generator.intro.out_channels,
        "enc_blocks": tuple(len(e) for e in generator.encoders),
        "middle_blocks": len(generator.middle),
        "dec_blocks": tuple(len(d) for d in generator.decoders),
        "img_channels": img,
        "depth_channels": generator.intro.in_channels - img - (2 if generator.lens_input else 0),
        "lens_input": bool(generator.lens_input),
        "defocus_scale": float(generator.defocus_scale),
    }


def convert_all_with_litert_torch(
    generator,
    size: tuple[int, int],
    precisions: Sequence[str],
    work_dir: str | Path,
    calib: Sequence[Any] = (),
    per_channel: bool = False,
    timeout_s: float | None = None,
) -> dict[str, bytes]:
    """TFLite files of ``generator`` at ``size`` = (H, W) for each of ``precisions``, in one child
    process (one trace; fp16 and int8 are quantised from the fp32 file). ``calib``: the
    ``export.samples.Sample`` list int8 is calibrated on. Scratch files go to a folder in
    ``work_dir`` that is removed before returning.

    Raises LiteRTTorchUnavailable (no environment), ValueError (bad arguments) or
    ``export.toollog.ToolError`` (the converter failed: the message ends with its last words).
    """
    import numpy as np
    import torch

    from export.toollog import ToolError

    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise ValueError(f"precisions {list(precisions)}: choose from {', '.join(PRECISIONS)}")
    if "int8" in precisions and not calib:
        raise ValueError("int8 needs calibration samples (real RGB, depth and lens), not random noise")
    python = litert_torch_python()
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=work_dir, prefix="litert_torch-"))  # removed below, pass or fail
    try:
        gen_file, calib_file, log = work / "generator.pt", work / "calib.npz", work / "litert_torch.log"
        torch.save({"arch": nafnet_arch(generator), "state_dict": generator.state_dict()}, gen_file)
        cmd = [
            str(python),
            "-m",
            "export.litert_torch",
            "--generator",
            str(gen_file),
            "--out",
            str(work),
            "--size",
            f"{size[0]}x{size[1]}",
            "--precisions",
            ",".join(precisions),
        ]
        if "int8" in precisions:
            np.savez(calib_file, **{f"{k}_{i}": a for i, s in enumerate(calib) for k, a in zip(INPUT_ORDER, s.args())})
            cmd += ["--calib", str(calib_file)] + (["--per-channel"] if per_channel else [])
        # cwd=REPO: the child (`python -m`) imports training.model and export.reparam from this checkout.
        env = dict(os.environ, LITERT_TORCH_SHOW_PROGRESS="n", TF_CPP_MIN_LOG_LEVEL="2")
        with open(log, "w") as f:
            try:
                proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s)
            except subprocess.TimeoutExpired as e:
                raise ToolError(f"litert-torch conversion ran past {timeout_s:.0f} s") from e
        if proc.returncode != 0:
            tail = "\n".join("    " + line for line in log.read_text(errors="replace").strip().splitlines()[-15:])
            raise ToolError(f"litert-torch conversion failed (exit {proc.returncode}):\n{tail}")
        return {p: tidy_flatbuffer((work / f"bokeh_{p}.tflite").read_bytes()) for p in precisions}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tidy_flatbuffer(content: bytes) -> bytes:
    """The file as TensorFlow's converter writes one: every weight inside the flatbuffer, and each
    tensor named by its module path only.

    * ai-edge-quantizer (fp16, int8) stores weights *after* the flatbuffer and points at them by
      offset. The LiteRT interpreter reads that, but TensorFlow 2.15's flatbuffer tools (the gates'
      ``gpu_delegate_view``, ``order_inputs``) see no data there and write files without it.
    * litert-torch names a tensor ``__main__._channels_last.<locals>.ChannelsLast/training.model.
      NAFNet_net/torch.nn.modules.container.Sequential_0/...``, repeated for every op fused into
      it: 0.5 MB of the width-8 file (2.82 MB fp16, over the 2.5 MB budget) that nothing reads but a
      profiler. ``net/0/1/conv4a`` keeps the module path. Inputs and output keep their names.
    """
    import numpy as np
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for buf in model.buffers:
        if getattr(buf, "offset", 0) > 1:  # 0 = inline; 1 = the placeholder of an empty buffer
            buf.data = np.frombuffer(content, np.uint8, buf.size, buf.offset).copy()
            buf.offset, buf.size = 0, 0
    for graph in model.subgraphs:
        keep = {int(i) for i in graph.inputs} | {int(i) for i in graph.outputs}
        for i, tensor in enumerate(graph.tensors):
            if i in keep or not tensor.name:
                continue
            # "pkg.module.Class_attr" components; the first one is the ChannelsLast wrapper
            parts = tensor.name.decode(errors="replace").split(";")[0].split("/")[1:]
            tensor.name = ("/".join(p.rsplit(".", 1)[-1].split("_", 1)[-1] for p in parts) or f"t{i}").encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def convert_with_litert_torch(
    generator,
    size: tuple[int, int],
    precision: str,
    work_dir: str | Path,
    calib: Sequence[Any] = (),
    per_channel: bool = False,
    timeout_s: float | None = None,
) -> bytes:
    """One precision of ``convert_all_with_litert_torch``: the TFLite file's bytes."""
    return convert_all_with_litert_torch(generator, size, (precision,), work_dir, calib, per_channel, timeout_s)[
        precision
    ]


# ---------------------------------------------------------------------------------------------
# The child, run by .venv-litert-torch/bin/python: python -m export.litert_torch --generator ...


def _channels_last(generator):
    """``generator`` with NHWC inputs and output (TFLite's layout and the manifest's for NHWC files).
    litert-torch's layout pass cancels these permutes against its own and keeps every conv NHWC;
    only the lens head (defocus arithmetic and concat) stays NCHW, behind two TRANSPOSE ops."""
    import torch
    from torch import nn

    class ChannelsLast(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, image: torch.Tensor, depth: torch.Tensor, lens: torch.Tensor | None = None):
            nchw = [t.permute(0, 3, 1, 2) for t in (image, depth, *(() if lens is None else (lens,)))]
            # a dict output names the signature's output "bokeh"
            return {"bokeh": self.net(*nchw).permute(0, 2, 3, 1)}

    return ChannelsLast(generator).eval()


def _check_interface(content: bytes, names: tuple[str, ...]) -> None:
    """One ``serving_default`` signature with the inputs in the manifest's order: apps and
    benchmark_model index inputs by position (export/tflite.py ``order_inputs``)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=content)
    sigs = interp.get_signature_list()
    order = [d["name"].removeprefix(f"{SIGNATURE_KEY}_") for d in interp.get_input_details()]
    if list(sigs) != [SIGNATURE_KEY] or sigs[SIGNATURE_KEY]["outputs"] != ["bokeh"] or order != list(names):
        raise RuntimeError(f"unexpected TFLite interface: signatures {sigs}, input order {order}, wanted {list(names)}")


def _fp16(fp32: bytes) -> bytes:
    from ai_edge_quantizer import quantizer

    rp = [
        {
            "regex": ".*",
            "operation": "*",
            "algorithm_key": "float_casting",
            "op_config": {
                "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                "compute_precision": "FLOAT",
                "explicit_dequantize": True,
            },
        }
    ]
    qt = quantizer.Quantizer(bytearray(fp32), rp)
    return bytes(qt.quantize(enable_progress_report=False).quantized_model)


def _int8(fp32: bytes, calib: list[dict], per_channel: bool) -> bytes:
    from ai_edge_quantizer import algorithm_manager, calibrator, qtyping, quantizer

    qt = quantizer.Quantizer(bytearray(fp32))
    qt.add_static_config(
        regex=".*",
        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        activation_num_bits=8,
        weight_num_bits=8,
        weight_granularity=qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE,
    )
    # Float32 graph inputs and output, one QUANTIZE per input and a DEQUANTIZE at the end: the
    # interface of every other variant (export/tflite.py). Without this the inputs become int8.
    for io in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
        qt.update_quantization_recipe(
            regex=".*", operation_name=io, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE
        )
    # The profiler mode keeps min/max per tensor only; the default keeps every intermediate tensor
    # of every sample (GiBs at 1024x1536).
    ranges = qt.calibrate(
        {SIGNATURE_KEY: calib},
        num_threads=min(2, os.cpu_count() or 1),
        mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED,
    )
    missing = sorted(k for k, v in ranges.items() if not v)
    if missing:
        raise RuntimeError(f"int8 calibration recorded no range for {len(missing)} tensor(s), e.g. {missing[:3]}")
    # quantize() repeats that check through an interpreter that preserves and allocates every
    # tensor (GiBs at 1024x1536, for tensor names only); the check above is the same for one signature.
    qt._ensure_model_qsv_sufficient = lambda _ranges: None
    return bytes(qt.quantize(ranges, enable_progress_report=False).quantized_model)


def _worker(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.litert_torch", description="the litert-torch child process")
    p.add_argument("--generator", required=True, type=Path, help="torch.save({'arch': ..., 'state_dict': ...})")
    p.add_argument("--out", required=True, type=Path, help="folder for bokeh_<precision>.tflite")
    p.add_argument("--size", required=True, help="HEIGHTxWIDTH")
    p.add_argument("--precisions", default="fp32")
    p.add_argument("--calib", type=Path, help=".npz of NCHW image_i, depth_i, lens_i (int8)")
    p.add_argument("--per-channel", action="store_true")
    args = p.parse_args(argv)

    try:
        import litert_torch
    except ImportError as e:
        sys.exit(f"{e}: {sys.prefix} is not a complete litert-torch environment; run `make venv-litert-torch`")
    import numpy as np
    import torch

    from export.reparam import inference_form
    from training.model import NAFNet

    h, w = (int(v) for v in args.size.split("x"))
    saved = torch.load(args.generator, map_location="cpu", weights_only=True)
    generator = NAFNet(**saved["arch"])
    generator.load_state_dict(saved["state_dict"])
    names = INPUT_ORDER if generator.lens_input else INPUT_ORDER[:2]
    model = _channels_last(inference_form(generator.eval()))
    sample = {
        "image": torch.rand(1, h, w, 3),
        "depth": torch.rand(1, h, w, 1),
        "lens": torch.tensor([0.7, 30.0, 0.1]).view(1, 1, 1, 3),
    }
    with torch.no_grad():
        fp32 = litert_torch.convert(model, sample_kwargs={n: sample[n] for n in names}).model_content()
    files = {"fp32": fp32}
    precisions = args.precisions.split(",")
    if "fp16" in precisions:
        files["fp16"] = _fp16(fp32)
    if "int8" in precisions:
        data = np.load(args.calib)
        calib = [
            {n: np.ascontiguousarray(data[f"{n}_{i}"].transpose(0, 2, 3, 1)) for n in names}
            for i in range(sum(k.startswith("image_") for k in data.files))
        ]
        files["int8"] = _int8(fp32, calib, args.per_channel)
    for precision in precisions:
        _check_interface(files[precision], names)
        (args.out / f"bokeh_{precision}.tflite").write_bytes(files[precision])
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
