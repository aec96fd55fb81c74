"""CPU latency of an exported generator: TFLite (XNNPACK) against PyTorch and ONNX Runtime.

    python -m eval.benchmark --tflite tflite_models/<name>/bokeh_fp32.tflite \\
        [--tflite tflite_models/<name>/bokeh_int8.tflite ...] [--checkpoint CKPT] [--onnx model.onnx] \\
        --size 1024x1536 --threads 2 --warmup 2 --runs 5 [--json runs/bench.json]

The targets, at 1024x1536 with 2 threads and in one run: TFLite fp32 ≤ 0.2x the time of the
same generator in PyTorch on the CPU and ≤ 0.6x its time in ONNX Runtime. The paper's model ran in
0.95 s in PyTorch on a server CPU but 12.9 s as TFLite on a Kirin 9000 (Bokeh-Loss GAN §4.2), so
the TFLite number is the one that matters on the phone, and the ratios are what this machine can
say about it (timings on a shared machine are noisy; ratios within one run are not).

Every runtime runs in its own child process, so that each one's peak memory (``getrusage`` max
RSS) and its increase over the process after imports are its own. The runs are interleaved
round-robin (TFLite, ONNX Runtime, PyTorch, TFLite, ...), one computing at a time, so that load
from other users of a shared machine falls on every runtime alike. The timed call
is the runtime's inference alone (``Runner.invoke``): inputs are prepared in the model's layout
beforehand, as an app would hand them over. Results are reported the way TFLite's
``benchmark_model`` reports them: device (CPU model), threads, input size, precision, and the
median of N runs after W warm-up runs. For a phone, see ``eval/android_benchmark.sh``.

The ONNX file defaults to ``model.onnx`` beside the first TFLite file, the checkpoint to the
manifest's ``source.checkpoint``; a runtime with no file is left out of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.io import atomic_write_text
from common.paths import REPO
from common.sizes import parse_size

TARGET_VS_PYTORCH = 0.2
TARGET_VS_ORT = 0.6


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


@dataclass(frozen=True)
class Timing:
    """How every model of one benchmark is timed; the table's header states it."""

    size: tuple[int, int]  # (H, W) of the random input
    threads: int = 2
    warmup: int = 2
    runs: int = 5
    flush_denormals: bool = True  # PyTorch and ONNX Runtime treat subnormals as zero, as XNNPACK does
    spin: bool = True  # PyTorch / ONNX Runtime threads spin while they wait

    def flags(self) -> list[str]:
        """The command-line flags that give these settings (for a ``--serve`` child)."""
        return [
            *("--size", f"{self.size[0]}x{self.size[1]}", "--threads", str(self.threads)),
            *("--warmup", str(self.warmup), "--runs", str(self.runs)),
            *([] if self.flush_denormals else ["--keep-denormals"]),
            *([] if self.spin else ["--no-spin"]),
        ]


def _serve(path: str, timing: Timing) -> None:
    """Child process: load and warm up one model, say "ready", then time one inference per "run"
    line on stdin (answering with the seconds); on "done", answer with the memory figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Answers go to a private copy of stdout; anything a runtime prints there goes to stderr instead.
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from export.runtime import load_runner  # noqa: PLC0415 (after the dup2: whatever it prints goes to stderr)

    rss_start = _rss_mb()
    runner = load_runner(path, timing.threads, flush_denormals=timing.flush_denormals, spin=timing.spin)
    h, w = timing.size
    rng = np.random.default_rng(0)
    lens = np.array([0.7, 30.0, 0.1], np.float32)  # a lens-conditioned model's lens; depth-only models ignore it
    inputs = runner.prepare(
        runner.inputs(rng.random((1, 3, h, w), dtype=np.float32), rng.random((1, 1, h, w), dtype=np.float32), lens)
    )
    for _ in range(timing.warmup):
        runner.invoke(inputs)
    print(json.dumps({"ready": True, "backend": runner.backend, "precision": runner.precision}), file=reply, flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            t0 = time.perf_counter()
            runner.invoke(inputs)
            print(json.dumps({"seconds": time.perf_counter() - t0}), file=reply, flush=True)
        else:
            break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps({"peak_rss_mb": round(peak, 1), "rss_delta_mb": round(peak - rss_start, 1)}), file=reply, flush=True
    )


class Worker:
    """One runtime in its own process, so that its memory figures are its own."""

    def __init__(self, path: Path, timing: Timing) -> None:
        env = dict(os.environ)
        if not timing.spin:
            env["OMP_WAIT_POLICY"] = "PASSIVE"  # PyTorch's OpenMP threads: read once, at start-up
        cmd = [sys.executable, "-m", "eval.benchmark", "--serve", str(path.resolve()), *timing.flags()]
        self.path = path
        self._stderr = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env, cwd=REPO
        )  # `-m` imports this checkout
        self.info = self._read()
        self.times: list[float] = []

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self._stderr.seek(0)
            raise RuntimeError(f"benchmark of {self.path} failed:\n{self._stderr.read().strip()[-2000:]}")
        return json.loads(line)

    def run_once(self) -> None:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        self.times.append(self._read()["seconds"])

    def finish(self) -> dict[str, Any]:
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        memory = self._read()
        self.proc.wait()
        self._stderr.close()
        return {
            "path": str(self.path),
            "backend": self.info["backend"],
            "precision": self.info["precision"],
            "times_s": self.times,
            **memory,
        }

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def measure_all(paths: list[Path], timing: Timing) -> list[dict[str, Any]]:
    """Time every model, round-robin: run i of each runtime follows run i of the one before, so a
    burst of load from elsewhere on a shared machine hits all of them alike. Models are loaded and
    warmed up one at a time, and only one of them computes at any moment."""
    workers: list[Worker] = []
    try:
        for path in paths:
            print(f"loading {path} ...", file=sys.stderr, flush=True)
            workers.append(Worker(path, timing))
        for i in range(timing.runs):
            print(f"run {i + 1}/{timing.runs} ...", file=sys.stderr, flush=True)
            for w in workers:
                w.run_once()
        return [w.finish() for w in workers]
    finally:
        for w in workers:
            w.kill()


def summarise(r: dict[str, Any]) -> dict[str, Any]:
    t = np.asarray(r["times_s"])
    return {**r, "median_s": float(np.median(t)), "p90_s": float(np.percentile(t, 90))}


def _default_sources(tflite: list[Path], onnx: Path | None, checkpoint: Path | None) -> tuple[Path | None, Path | None]:
    manifest_path = tflite[0].parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if onnx is None:
        candidate = tflite[0].parent / (manifest.get("onnx", {}).get("file") or "model.onnx")
        onnx = candidate if candidate.is_file() else None
    if checkpoint is None:
        candidate = Path(manifest.get("source", {}).get("checkpoint") or "")
        checkpoint = candidate if candidate.is_file() else None
    return onnx, checkpoint


def format_table(rows: list[dict[str, Any]], timing: Timing) -> str:
    settings = ", subnormals flushed to zero in every runtime" if timing.flush_denormals else ""
    if not timing.spin:
        settings += ", PyTorch/ONNX Runtime threads not spinning (--no-spin)"
    torch_row = next((r for r in rows if r["runtime"] == "PyTorch"), None)
    ort_row = next((r for r in rows if r["runtime"] == "ONNX Runtime"), None)
    lines = [
        f"device: {cpu_model()} (CPU), {timing.threads} threads, input {timing.size[0]}x{timing.size[1]} (HxW), "
        f"median and p90 of {timing.runs} runs after {timing.warmup} warm-up runs{settings}",
        "",
        "| runtime | model | precision | median (s) | p90 (s) | peak RSS (MB) | RSS increase (MB) | ÷ PyTorch | ÷ ONNX Runtime |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vs_pt = f"{r['median_s'] / torch_row['median_s']:.3f}" if torch_row and r is not torch_row else "–"
        vs_ort = f"{r['median_s'] / ort_row['median_s']:.3f}" if ort_row and r is not ort_row else "–"
        lines.append(
            f"| {r['runtime']} ({r['backend']}) | {r['model']} | {r['precision']} | {r['median_s']:.3f} | "
            f"{r['p90_s']:.3f} | {r['peak_rss_mb']:.0f} | {r['rss_delta_mb']:.0f} | {vs_pt} | {vs_ort} |"
        )
    for r in rows:
        if r["runtime"] == "TFLite" and r["precision"] == "fp32":
            checks = []
            if torch_row:
                ratio = r["median_s"] / torch_row["median_s"]
                checks.append(
                    f"TFLite/PyTorch = {ratio:.3f} ({'meets' if ratio <= TARGET_VS_PYTORCH else 'MISSES'} "
                    f"≤ {TARGET_VS_PYTORCH})"
                )
            if ort_row:
                ratio = r["median_s"] / ort_row["median_s"]
                checks.append(
                    f"TFLite/ONNX Runtime = {ratio:.3f} ({'meets' if ratio <= TARGET_VS_ORT else 'MISSES'} "
                    f"≤ {TARGET_VS_ORT})"
                )
            if checks:
                lines += ["", f"{r['model']} fp32: " + "; ".join(checks)]
    return "\n".join(lines)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--tflite", action="append", type=Path, default=[], help="TFLite file (repeat for several)")
    p.add_argument(
        "--onnx",
        action="append",
        type=Path,
        default=[],
        help="ONNX file (repeatable; default: model.onnx beside the first --tflite); ratios use the first",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="PyTorch checkpoint or model.safetensors (default: the manifest's source checkpoint)",
    )
    p.add_argument("--size", default="1024x1536", help="input size HEIGHTxWIDTH (default 1024x1536)")
    for name in ("threads", "warmup", "runs"):
        default = getattr(Timing, name)  # the dataclass's own default: one place for it
        p.add_argument(f"--{name}", type=int, default=default, help=f"(default {default})")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.add_argument(
        "--keep-denormals",
        action="store_true",
        help="run PyTorch and ONNX Runtime with subnormal floats (their default); by default they "
        "flush them to zero like XNNPACK does, so that no runtime is timed on slow subnormal maths",
    )
    p.add_argument(
        "--no-spin",
        action="store_true",
        help="PyTorch (OMP_WAIT_POLICY=PASSIVE) and ONNX Runtime (allow_spinning=0) threads sleep "
        "instead of spinning while waiting: much faster for them on a machine whose cores are busy "
        "with other work, slightly slower on an idle one",
    )
    p.add_argument("--serve", help=argparse.SUPPRESS)  # internal: the child process that times one file
    args = p.parse_args(argv)

    try:
        size = parse_size(args.size)
    except ValueError as e:
        p.error(str(e))
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--runs and --threads must be >= 1, --warmup >= 0")
    timing = Timing(size, args.threads, args.warmup, args.runs, not args.keep_denormals, not args.no_spin)
    if args.serve:
        _serve(args.serve, timing)
        return 0
    if not args.tflite:
        p.error("give at least one --tflite file")
    for f in args.tflite:
        if not f.is_file():
            p.error(f"TFLite file not found: {f}")
    onnx, checkpoint = _default_sources(args.tflite, args.onnx[0] if args.onnx else None, args.checkpoint)
    onnx_files = args.onnx or ([onnx] if onnx is not None else [])

    jobs = [("TFLite", f, f.parent.name) for f in args.tflite]
    jobs += [("ONNX Runtime", f, f.parent.name) for f in onnx_files]
    if checkpoint is not None:
        jobs.append(("PyTorch", checkpoint, checkpoint.stem))
    try:
        results = measure_all([path for _, path, _ in jobs], timing)
    except RuntimeError as e:
        print(f"benchmark: error: {e}", file=sys.stderr)
        return 1
    rows = [{"runtime": runtime, "model": model, **summarise(r)} for (runtime, _, model), r in zip(jobs, results)]
    table = format_table(rows, timing)
    print(table)
    if onnx is None or checkpoint is None:
        missing = [n for n, v in (("ONNX Runtime (--onnx)", onnx), ("PyTorch (--checkpoint)", checkpoint)) if v is None]
        print(f"\nnot measured: {', '.join(missing)}")
    if args.json:
        _write_json(
            args.json,
            {"device": cpu_model(), **asdict(timing), "results": rows, "table": table},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
