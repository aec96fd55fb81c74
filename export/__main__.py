"""Command line: ``python -m export --checkpoint CKPT --size 1024x1536 --out tflite_models/<name>``.

Exit status 0 when every gate passed and the model is in place, 1 when a gate or a converter
failed (nothing is left at ``--out``), 2 for bad arguments or input files.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Before TensorFlow is imported anywhere: keep its C++ start-up banner (CUDA probes, CPU flags) quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common.sizes import parse_size
from export.convert import ALL_CONVERTERS, DEFAULT_CONVERTER  # noqa: E402
from export.gates import TFLITE_MIN_PSNR_DB, GateError  # noqa: E402
from export.pipeline import export_model
from export.tflite import DEFAULT_PRECISIONS, PRECISIONS  # noqa: E402
from export.toollog import ToolError  # noqa: E402
from training.checkpoint import load_generator
from training.data import BadSampleError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a trained bokeh generator to ONNX and TFLite (fp32, fp16, int8) that run on the phone "
        "GPU, with parity, builtin-op, rank and GPU-compatibility gates and a manifest.json.",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="Lightning .ckpt or generator state dict (.pt)")
    p.add_argument(
        "--size", default="1024x1536", help="static input size HEIGHTxWIDTH, multiples of 16 (default 1024x1536)"
    )
    p.add_argument("--out", required=True, type=Path, help="output folder, e.g. tflite_models/<name>")
    p.add_argument("--name", help="model name in the manifest (default: the --out folder name)")
    p.add_argument(
        "--converter",
        choices=ALL_CONVERTERS,
        default=DEFAULT_CONVERTER,
        help=f"onnx2tf (NHWC) or onnx-tf (NCHW), ONNX → TensorFlow → TFLite; or litert-torch (NHWC), "
        f"PyTorch → TFLite in its own environment (make venv-litert-torch) (default {DEFAULT_CONVERTER})",
    )
    p.add_argument(
        "--precisions",
        default=",".join(DEFAULT_PRECISIONS),
        help=f"comma-separated subset of {','.join(PRECISIONS)} (default {','.join(DEFAULT_PRECISIONS)})",
    )
    p.add_argument("--calib-data", type=Path, help="dataset split folder (original/, depth/) for int8 calibration")
    p.add_argument("--calib-samples", type=int, default=8, help="number of calibration samples (default 8)")
    p.add_argument(
        "--parity-data",
        type=Path,
        help="split folder for the parity gates (default: --calib-data; "
        "samples not used for calibration are preferred)",
    )
    p.add_argument("--parity-samples", type=int, default=2, help="number of parity samples (default 2)")
    p.add_argument(
        "--int8-per-channel",
        action="store_true",
        help="per-channel int8 weight scales (more precise, ~0.4 MB larger for width 8); default per-tensor",
    )
    p.add_argument(
        "--gpu-run",
        choices=("auto", "require", "off"),
        default="auto",
        help="the GPU-run gate (export/gpu_run.py): run each file on LiteRT's GPU accelerator over a "
        "Vulkan device; auto (default) skips, saying why, when none is found; require fails then",
    )
    p.add_argument(
        "--keep-saved-model", action="store_true", help="keep the TensorFlow SavedModel in --out/saved_model"
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the parity runs (default 2)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    t0 = time.perf_counter()
    try:
        size = parse_size(args.size)
        precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
        if args.calib_samples < 1 or args.parity_samples < 1:
            raise ValueError("--calib-samples and --parity-samples must be >= 1")
        ckpt = load_generator(args.checkpoint)
        if size[0] % ckpt.generator.multiple or size[1] % ckpt.generator.multiple:
            raise ValueError(f"--size {args.size}: must be multiples of {ckpt.generator.multiple} for this generator")
        source = {
            "checkpoint": str(args.checkpoint),
            "checkpoint_sha256": ckpt.sha256,
            "arch": ckpt.arch,
            "training_config": ckpt.config,
        }
        result = export_model(
            ckpt.generator,
            args.out,
            size,
            source=source,
            converter=args.converter,
            precisions=precisions,
            calib_dir=args.calib_data,
            calib_samples=args.calib_samples,
            parity_dir=args.parity_data,
            parity_samples=args.parity_samples,
            int8_per_channel=args.int8_per_channel,
            gpu_run=args.gpu_run,
            keep_saved_model=args.keep_saved_model,
            name=args.name,
            num_threads=args.threads,
        )
    except (FileNotFoundError, ValueError, BadSampleError) as e:  # bad arguments or input files
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    except PermissionError as e:  # --out where this user cannot write (the work folder is made beside it)
        print(f"export: error: --out {args.out}: cannot write in {args.out.parent} ({e.strerror})", file=sys.stderr)
        return 2
    except GateError as e:
        print(f"export FAILED, nothing written to {args.out}: {e}", file=sys.stderr)
        return 1
    except ToolError as e:
        print(f"export FAILED, nothing written to {args.out}: {e}", file=sys.stderr)
        return 1

    m = result.manifest
    print(
        f"exported {m['name']} ({m['converter']}, {m['inputs'][0]['layout']} {args.size}) to {result.out_dir} "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    print("  stages (s): " + ", ".join(f"{k} {v:g}" for k, v in result.seconds.items()))
    print(f"  onnx   max |Δ| vs PyTorch {m['onnx']['max_abs_diff_vs_pytorch']:.2e}")
    for key, v in m["variants"].items():
        print(
            f"  {key:5s}  {v['size_bytes'] / 1e6:6.2f} MB  PSNR vs PyTorch {v['parity']['psnr_db_vs_pytorch']:7.2f} dB "
            f"(gate >= {TFLITE_MIN_PSNR_DB[key]:g})  ops {sum(v['op_census'].values())}  "
            f"TRANSPOSE {v['op_census'].get('TRANSPOSE', 0)}  GPU run: {_gpu_line(v['gpu_run'])}"
        )
    return 0


def _gpu_line(run: dict) -> str:
    if run["status"] != "passed":
        return f"SKIPPED ({run['reason']})"
    return (
        f"passed on {run['device']} ({run['backend']}), fully accelerated, PSNR vs CPU {run['psnr_db_vs_cpu']:.1f} dB"
    )


if __name__ == "__main__":
    sys.exit(main())
