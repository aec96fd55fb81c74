"""Converter comparison for the README: onnx2tf against onnx-tf (and LiteRT Torch) on the paper's
width-8 generator.

    python -m export.compare --calib-data DIR --size 1024x1536 --out runs/converter_comparison \
        [--converters onnx2tf,onnx-tf,litert-torch]

Exports one randomly initialised width-8 NAFNet (the paper's configuration, Bokeh-Loss GAN §3.1)
through each converter with ``python -m export`` (fp32, fp16, int8, every gate), timing each
export and its peak memory, then times every fp32 file, ONNX Runtime and PyTorch in one
``eval.benchmark`` run, and prints the Markdown table of export/README.md. ``litert-torch`` runs in
its optional environment (``make venv-litert-torch``, export/litert_torch.py).

NAFNet starts as the identity (β = γ = 0 in every block, zero ending conv), so an untrained export
would return the photo and its parity would mean nothing; and its LayerNorm weights are 1 and
biases 0, which the graph simplifier removes, so its graph would be smaller than a trained one's.
The generator here is NAFNet's own initialisation with β, γ ~ N(0, 0.2²), LayerNorm weights
~ N(1, 0.2²) and biases ~ N(0, 0.2²), and PyTorch's default initialisation of the ending conv
(seed 0): every block contributes, and every op of a trained model is in the graph.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.io import atomic_write_text
from common.paths import REPO
from export.command import export_command
from export.convert import ALL_CONVERTERS, CONVERTERS, LITERT_TORCH
from export.litert_torch import LiteRTTorchUnavailable, litert_torch_python
from training.model import NAFNet

DEFAULT_CONVERTERS = CONVERTERS  # litert-torch needs .venv-litert-torch: opt in


def non_identity_(gen: torch.nn.Module) -> torch.nn.Module:
    """Give an untrained NAFNet weight, in place, from the current torch seed; returns it.

    NAFNet starts as the identity (β = γ = 0 in every block, zero ending conv): its export would
    return the photo and every parity check would pass trivially. β and γ and the LayerNorm affine
    parts (1 and 0 at init, which onnxsim would drop, so their folding would go untested) get
    N(·, 0.2²) values, and the ending conv PyTorch's default initialisation.
    """
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0.0, 0.2)
            elif ".norm" in name:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
    gen.ending.reset_parameters()
    return gen


def random_generator_checkpoint(path: Path, width: int = 8, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    gen = non_identity_(NAFNet(width=width))
    arch = {"width": width, "enc_blocks": (2, 2, 2, 20), "middle_blocks": 2, "dec_blocks": (2, 2, 2, 2)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "generator": gen.state_dict(),
            "arch": arch,
            "config": {
                "note": f"untrained: NAFNet init, seed {seed}, beta/gamma/LayerNorm affine ~ N(., 0.2^2), "
                "default ending conv"
            },
        },
        path,
    )
    return path


def run_timed(cmd: list[str]) -> tuple[int, float, float, str]:
    """Run ``cmd``; return (exit code, wall seconds, peak RSS in GiB, last output).

    The peak is wait4's max RSS of that one child (and of its own children, e.g. onnxsim), not
    getrusage(RUSAGE_CHILDREN), which would carry the maximum over every earlier child too."""
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        tail = log.read()[-3000:]
    return proc.returncode, wall, usage.ru_maxrss / 2**20, tail  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--calib-data", required=True, type=Path, help="dataset split folder (original/, depth/)")
    p.add_argument("--parity-data", type=Path, help="default: --calib-data (other samples)")
    p.add_argument("--calib-samples", type=int, default=8)
    p.add_argument("--parity-samples", type=int, default=2)
    p.add_argument("--size", default="1024x1536")
    p.add_argument("--out", type=Path, default=Path("runs/converter_comparison"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument(
        "--converters",
        default=",".join(DEFAULT_CONVERTERS),
        help=f"comma-separated subset of {','.join(ALL_CONVERTERS)} (default {','.join(DEFAULT_CONVERTERS)})",
    )
    args = p.parse_args(argv)
    converters = [c.strip() for c in args.converters.split(",") if c.strip()]
    if not converters or any(c not in ALL_CONVERTERS for c in converters):
        p.error(f"--converters {args.converters}: choose from {', '.join(ALL_CONVERTERS)}")
    if LITERT_TORCH in converters:
        try:
            litert_torch_python()
        except LiteRTTorchUnavailable as e:
            p.error(str(e))

    out = args.out.resolve()
    ckpt = random_generator_checkpoint(out / "nafnet_w8_random.pt")
    exports = {}
    for converter in converters:
        model_dir = out / f"nafnet_w8_random_{converter}"
        cmd = export_command(
            ckpt,
            args.size,
            model_dir,
            converter=converter,
            precisions=("fp32", "fp16", "int8"),
            calib_data=args.calib_data.resolve(),
            calib_samples=args.calib_samples,
            parity_data=args.parity_data.resolve() if args.parity_data else None,
            parity_samples=args.parity_samples,
            threads=args.threads,
        )
        print(f"exporting with {converter} ...", file=sys.stderr, flush=True)
        rc, wall, peak, tail = run_timed(cmd)
        if rc != 0:
            print(f"export with {converter} failed ({rc}):\n{tail}", file=sys.stderr)
            return 1
        exports[converter] = {
            "dir": model_dir,
            "seconds": wall,
            "peak_rss_gib": peak,
            "manifest": json.loads((model_dir / "manifest.json").read_text()),
        }

    bench_json = out / "benchmark.json"
    cmd = [
        sys.executable,
        "-m",
        "eval.benchmark",
        *[a for c in converters for a in ("--tflite", str(exports[c]["dir"] / "bokeh_fp32.tflite"))],
        "--onnx",
        str(exports[converters[0]]["dir"] / "model.onnx"),
        "--checkpoint",
        str(ckpt),
        "--size",
        args.size,
        "--threads",
        str(args.threads),
        "--warmup",
        str(args.warmup),
        "--runs",
        str(args.runs),
        "--json",
        str(bench_json),
    ]
    print("benchmarking ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    bench = json.loads(bench_json.read_text())
    latency = {Path(r["path"]).parent.name: r for r in bench["results"] if r["runtime"] == "TFLite"}
    torch_row = next(r for r in bench["results"] if r["runtime"] == "PyTorch")
    ort_row = next(r for r in bench["results"] if r["runtime"] == "ONNX Runtime")

    lines = [
        f"Width-8 NAFNet (random init, seed 0), {args.size}, {bench['device']}, {args.threads} threads; latency = median "
        f"of {args.runs} runs after {args.warmup} warm-up (PyTorch {torch_row['median_s']:.2f} s, ONNX Runtime "
        f"{ort_row['median_s']:.2f} s in the same run).",
        "",
        "| converter | layout | ops (fp32) | TRANSPOSE | fp32 / fp16 / int8 size (MB) | PSNR vs PyTorch fp32 / fp16 / int8 (dB) "
        "| GPU run (LiteRT GPU accelerator) | analyzer | fp32 CPU latency (s) | ÷ PyTorch | ÷ ONNX Runtime | export time | export peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in converters:
        m = exports[c]["manifest"]
        v = m["variants"]
        census = v["fp32"]["op_census"]
        lat = latency[exports[c]["dir"].name]
        lines.append(
            f"| {c} | {m['inputs'][0]['layout']} | {sum(census.values())} | {census.get('TRANSPOSE', 0)} | "
            + " / ".join(f"{v[k]['size_bytes'] / 1e6:.2f}" for k in ("fp32", "fp16", "int8"))
            + " | "
            + " / ".join(f"{v[k]['parity']['psnr_db_vs_pytorch']:.1f}" for k in ("fp32", "fp16", "int8"))
            + " | "
            + _gpu_run_cell(v)
            + " | "
            + ("compatible" if all(x["gpu_compatible"] for x in v.values()) else "warnings")
            + " | "
            + f"{lat['median_s']:.2f} | {lat['median_s'] / torch_row['median_s']:.3f} | "
            + f"{lat['median_s'] / ort_row['median_s']:.3f} | {exports[c]['seconds'] / 60:.1f} min | "
            + f"{exports[c]['peak_rss_gib']:.1f} GiB |"
        )
    table = "\n".join(lines)
    atomic_write_text(out / "comparison.md", table + "\n\n" + bench["table"] + "\n")
    print(table)
    print()
    print(bench["table"])
    return 0


def _gpu_run_cell(variants: dict) -> str:
    """Every file fully on the GPU, with the worst PSNR against the CPU; or why it was not run."""
    runs = [v["gpu_run"] for v in variants.values()]
    if any(r["status"] != "passed" for r in runs):
        return "not run: " + next(r["reason"] for r in runs if r["status"] != "passed")
    return f"all fully accelerated on {runs[0]['device']}, ≥ {min(r['psnr_db_vs_cpu'] for r in runs):.1f} dB vs CPU"


if __name__ == "__main__":
    sys.exit(main())
