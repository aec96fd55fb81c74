"""Does int8 earn its place? The int8 recipes against the fp16 file, in one benchmark run.

    python -m export --checkpoint CKPT --size 1024x1536 --out runs/int8_base --precisions fp16 \
        --parity-data data/phone/val --keep-saved-model
    python -m export.int8_study --saved-model runs/int8_base/saved_model --checkpoint CKPT \
        --calib-data data/phone/train --parity-data data/phone/val

The target: int8 CPU latency ≤ 0.6× the fp16 file's, size ≤ 1.5 MB, parity ≥ 32 dB.
Built from the same SavedModel and timed interleaved on the XNNPACK CPU delegate:

* ``fp16``: the baseline (fp16 weights, float activations);
* ``int8 (export)``: the export's file (``export.tflite``, per-tensor weights): int8 but for every
  RSQRT, left in float (TensorFlow's ``QuantizationDebugger`` denylist) because XNNPACK has no
  int8 kernel for it;
* ``int8, every op integer``: the export's earlier recipe, RSQRT included;
* ``int8 weights only``: dynamic-range quantisation (int8 weights, float activations).

Printed per file: size, PSNR vs PyTorch (worst parity sample), the number of XNNPACK partitions
(1 = the whole graph in one delegate; every op XNNPACK refuses splits it and runs on TFLite's
reference kernels) and the median latency with its ratio to fp16. A second table says which of the
LayerNorm's int8 ops XNNPACK takes, each in a one-op graph (the inference form rewrites the ones it
refuses: ``export.reparam.NormalizeChannels``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common.metrics import psnr_array as psnr
from export.runtime import TFLiteRunner
from export.samples import list_sample_ids, load_samples, pick_ids
from export.tflite import convert_tflite, order_inputs, representative_dataset
from training.checkpoint import load_generator

__all__ = ["xnnpack_partitions", "main"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def xnnpack_partitions(content: bytes) -> int:
    """How many XNNPACK delegate nodes the interpreter made of the graph."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content, num_threads=1)
    it.allocate_tensors()
    return sum(o["op_name"] == "DELEGATE" for o in it._get_ops_details())  # no public API lists nodes


def _variants(saved_model: Path, rep) -> dict[str, bytes]:
    import tensorflow as tf

    files = {
        "fp16": convert_tflite(saved_model, "fp16"),
        "int8 (export: RSQRT float)": convert_tflite(saved_model, "int8", rep),
        "int8, every op integer": convert_tflite(saved_model, "int8", rep, float_ops=()),
    }
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: weights only
    files["int8 weights only (dynamic range)"] = order_inputs(conv.convert())
    return files


def _op_probe() -> list[tuple[str, int]]:
    """(op, XNNPACK partitions) for one-op int8 graphs after a 1x1 conv; 1 = delegated whole.
    (The probes are TensorFlow functions written for this table, not the exported graph.)"""
    import tensorflow as tf

    shape = [1, 16, 16, 8]
    probes = {
        "MEAN over channels (LayerNorm μ)": lambda x: tf.reduce_mean(x, axis=3, keepdims=True) + x,
        "SUB of the channel mean (x − μ)": lambda x: x - tf.reduce_mean(x, axis=3, keepdims=True),
        "ADD of ε to the variance (a scalar)": lambda x: tf.reduce_mean(x, axis=3, keepdims=True) + 1e-6 + x,
        "RSQRT (1/σ)": lambda x: tf.math.rsqrt(x + 1.0),
        "MUL (SimpleGate)": lambda x: x * (x + 0.5),
        "MEAN over H, W (channel attention)": lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True) * x,
    }
    rng = np.random.default_rng(0)
    out = []
    for name, f in probes.items():
        fn = tf.function(
            lambda x, f=f: f(tf.nn.conv2d(x, tf.ones([1, 1, 8, 8]) * 0.1, 1, "SAME")),
            input_signature=[tf.TensorSpec(shape, tf.float32)],
        )
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.random(shape, dtype=np.float32)] for _ in range(4))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        out.append((name, xnnpack_partitions(conv.convert())))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.int8_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--saved-model", required=True, type=Path, help="from python -m export --keep-saved-model")
    p.add_argument("--checkpoint", required=True, type=Path, help="the generator the SavedModel came from")
    p.add_argument("--calib-data", required=True, type=Path)
    p.add_argument("--parity-data", required=True, type=Path)
    p.add_argument("--calib-samples", type=int, default=8)
    p.add_argument("--parity-samples", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    if not (args.saved_model / "saved_model.pb").is_file():
        print(
            f"export.int8_study: error: {args.saved_model}: no saved_model.pb "
            "(make one with python -m export ... --keep-saved-model)",
            file=sys.stderr,
        )
        return 2
    gen = load_generator(args.checkpoint).generator.eval()
    lens = bool(getattr(gen, "lens_input", False))
    tmp = Path(tempfile.mkdtemp(prefix="int8-study-"))
    try:
        import tensorflow as tf

        size = tuple(
            int(x)
            for x in tf.saved_model.load(str(args.saved_model))
            .signatures["serving_default"]
            .structured_input_signature[1]["image"]
            .shape[1:3]
        )
        calib = load_samples(args.calib_data, size, pick_ids(list_sample_ids(args.calib_data), args.calib_samples))
        parity = load_samples(args.parity_data, size, pick_ids(list_sample_ids(args.parity_data), args.parity_samples))
        with torch.inference_mode():
            refs = [gen(*(torch.from_numpy(a) for a in s.args()[: 3 if lens else 2])).numpy() for s in parity]
        files = _variants(args.saved_model, representative_dataset(calib, "NHWC", lens))
        runners, rows = {}, {}
        for name, content in files.items():
            path = tmp / f"{len(runners)}.tflite"
            path.write_bytes(content)
            runners[name] = r = TFLiteRunner(path, args.threads, layout="NHWC")
            outs = [r(*s.args()) for s in parity]
            rows[name] = {
                "size": len(content) / 1e6,
                "psnr": min(psnr(o, ref) for o, ref in zip(outs, refs)),
                "parts": xnnpack_partitions(content),
                "times": [],
            }
        prepared = {n: r.prepare(r.inputs(*parity[0].args())) for n, r in runners.items()}
        for n, r in runners.items():  # warm-up
            r.invoke(prepared[n])
        for _ in range(args.runs):  # interleaved: a slow moment of the machine hits every file alike
            for n, r in runners.items():
                t0 = time.perf_counter()
                r.invoke(prepared[n])
                rows[n]["times"].append(time.perf_counter() - t0)
        base = float(np.median(rows["fp16"]["times"]))
        print(
            f"{size[0]}x{size[1]}, {args.threads} threads, median of {args.runs} interleaved runs "
            "(target: int8 ≤ 0.6× fp16 latency, ≤ 1.5 MB, ≥ 32 dB)\n"
        )
        print("| file | size (MB) | PSNR vs PyTorch (dB) | XNNPACK partitions | latency (s) | ÷ fp16 |")
        print("|---|---:|---:|---:|---:|---:|")
        for n, row in rows.items():
            med = float(np.median(row["times"]))
            print(f"| {n} | {row['size']:.2f} | {row['psnr']:.2f} | {row['parts']} | {med:.3f} | {med / base:.2f} |")
        print("\n| int8 op (one-op graph) | XNNPACK partitions (1 = delegated) |")
        print("|---|---:|")
        for name, parts in _op_probe():
            print(f"| {name} | {parts} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
