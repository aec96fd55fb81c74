"""PyTorch → ONNX: the first step of the paper's conversion chain (Bokeh-Loss GAN, appendix A).

The graph is exported with a static shape (TFLite GPU kernels are planned for one size), opset 17,
and the named inputs ``image`` (1, 3, H, W), ``depth`` (1, 1, H, W) and, for a lens-conditioned
generator, ``lens`` (1, 3, 1, 1) = (d_f, K, dof), and the output ``bokeh``.
It is then simplified with onnxsim: the legacy exporter writes ``chunk`` (SimpleGate) as a
Shape → Gather → Div → Slice chain, which onnxsim folds into constant slices; without that, onnx2tf
loses the batch dimension and fails on the ConvTranspose up-samplers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.runtime import load_runner

__all__ = [
    "INPUT_NAMES",
    "LENS_INPUT_NAMES",
    "OUTPUT_NAME",
    "OPSET",
    "input_names",
    "export_onnx",
    "simplify_onnx",
    "onnx_max_abs_diff",
]

INPUT_NAMES = ("image", "depth")
LENS_INPUT_NAMES = ("image", "depth", "lens")
OUTPUT_NAME = "bokeh"
OPSET = 17

# onnxsim is run in a child process. Its package imports ml_dtypes float6/float4 types that the
# ml_dtypes pinned by TensorFlow 2.15 (0.3.x) lacks, so `import onnxsim` (and the `onnxsim` command,
# which onnx2tf shells out to and silently skips on failure) dies with an AttributeError. The types
# are only used by onnxsim's fp6/fp4 LLM quantisers, never by `simplify`; the child aliases them so
# the import succeeds, without touching ml_dtypes in this process.
_SIMPLIFY_SCRIPT = r"""
import sys, ml_dtypes
for name in ("float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn", "float8_e8m0fnu"):
    if not hasattr(ml_dtypes, name):
        setattr(ml_dtypes, name, ml_dtypes.float8_e4m3fn)
import onnx, onnxsim
model, ok = onnxsim.simplify(onnx.load(sys.argv[1]))
if not ok:
    sys.exit("onnxsim: the simplified model failed its own check")
onnx.save(model, sys.argv[2])
"""


def input_names(generator: nn.Module) -> tuple[str, ...]:
    """The graph inputs of ``generator``: image and depth, plus lens in lens mode."""
    return LENS_INPUT_NAMES if getattr(generator, "lens_input", False) else INPUT_NAMES


def export_onnx(generator: nn.Module, path: str | Path, size: tuple[int, int]) -> None:
    """Trace ``generator(image, depth[, lens])`` at ``size`` = (H, W) into a static-shape ONNX file."""
    h, w = size
    names = input_names(generator)
    args = (torch.rand(1, 3, h, w), torch.rand(1, 1, h, w))
    if "lens" in names:
        args = (*args, torch.tensor([0.7, 30.0, 0.1]).view(1, 3, 1, 1))
    generator = generator.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript
        # and a newer onnx than onnx-tf allows (toolchain-facts.md). no_grad: tracing at full size
        # with autograd on kept every activation (10 GiB at 1024x1536).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator,
            args,
            str(path),
            input_names=list(names),
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def simplify_onnx(src: str | Path, dst: str | Path) -> None:
    """Run onnxsim (constant folding, shape inference, dead-node removal) from ``src`` into ``dst``."""
    env = dict(os.environ)
    # The venv's bin dir first, so anything onnxsim spawns is the venv's, activated or not.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _SIMPLIFY_SCRIPT, str(src), str(dst)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"onnxsim failed on {src}: " + " | ".join(tail))


def onnx_max_abs_diff(
    onnx_path: str | Path, inputs: list[tuple[np.ndarray, ...]], references: list[np.ndarray], num_threads: int = 2
) -> float:
    """Largest |ONNX Runtime - PyTorch| over the samples ((image, depth, lens) NCHW arrays)."""

    runner = load_runner(onnx_path, num_threads=num_threads)
    return max(float(np.abs(runner(*args) - ref).max()) for args, ref in zip(inputs, references))
