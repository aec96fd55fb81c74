"""The GPU-run gate: compile a ``.tflite`` on LiteRT's GPU accelerator, run it, compare with the CPU.

TensorFlow's analyzer only *reads* a graph and says "compatible"; this runs it. The pinned
``ai-edge-litert`` wheel ships LiteRT's GPU accelerator (``libLiteRtWebGpuAccelerator.so``: the
ML Drift GPU backend over WebGPU/Dawn), the one phones use through ``CompiledModel``. Dawn needs a
Vulkan loader and a Vulkan device; a machine without a GPU has software ones:

* SwiftShader: ``libvulkan.so.1`` and ``vk_swiftshader_icd.json`` ship inside Debian's ``chromium``
  package (which the web test installs anyway);
* Mesa's lavapipe (``mesa-vulkan-drivers`` + ``libvulkan1``);
* any ICD named by ``$BOKEH_VULKAN_ICD`` (with ``$BOKEH_VULKAN_LIB_DIR`` holding its loader).

The gate requires the whole graph on the GPU (``is_fully_accelerated()``: no op falls back to the
CPU) and the GPU's output close to the CPU interpreter's on the export's parity samples.

Why a subprocess: the dynamic linker reads ``LD_LIBRARY_PATH`` once, when a process starts, so the
Vulkan loader can only be pointed at from a fresh process; it also keeps a crash in a GPU driver
from taking the export down with it.

SwiftShader has no ``shader-f16``, so this run computes in fp32: it proves op coverage and that the
GPU kernels compute the same function, not fp16 safety (``eval.fp16`` checks that) or phone latency.
"""

from __future__ import annotations

import argparse
import ctypes.util
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from common.paths import REPO
from export.gates import TFLITE_MIN_PSNR_DB, GateError, worst_sample
from export.manifest import PSNR_CAP_DB
from export.runtime import TFLiteRunner
from export.samples import list_sample_ids, load_samples, pick_ids

__all__ = [
    "GpuUnavailable",
    "ACCELERATOR",
    "GPU_RUN_MIN_PSNR_DB",
    "VulkanDevice",
    "GpuRun",
    "find_vulkan",
    "run_on_gpu",
    "gate_tflite",
    "check_gpu_run",
    "gpu_run_entry",
]

ACCELERATOR = "LiteRT GPU accelerator (ML Drift over WebGPU)"

# GPU vs the CPU interpreter, on the same file and the same inputs. The budget is the one the CPU
# file has against PyTorch (export.gates.TFLITE_MIN_PSNR_DB): a GPU run may cost as much fidelity as
# the conversion is allowed to, no more. For fp32/fp16 files both sides compute in float (fp32 on
# SwiftShader: 95 dB on the shipped fp16 file, 130-145 dB on small exports), so a miss there means a
# wrong GPU kernel. The int8 file runs integer kernels on the CPU but dequantised float on the GPU:
# measured 38-51 dB.
GPU_RUN_MIN_PSNR_DB = TFLITE_MIN_PSNR_DB

CHROMIUM_DIR = Path("/usr/lib/chromium")
_ADAPTER = re.compile(
    r"Selected adapter: (?P<name>[^,\n]+), .*?backend=(?P<backend>\w+)(?:, adapterType=(?P<type>[^\n]+))?"
)
WORKER_TIMEOUT_S = 900  # a 1024x1536 model on a software device takes ~1 min; a hang must not block CI


class GpuUnavailable(RuntimeError):
    """A Vulkan ICD was found but Dawn could not use it: the machine's fault, not the model's."""


@dataclass(frozen=True)
class VulkanDevice:
    """Where Dawn finds a Vulkan device: the ICD file and the folder of ``libvulkan.so.1``."""

    icd: str
    lib_dir: str | None  # None: the system loader (ldconfig) is used
    source: str  # how it was found, for the manifest and messages

    def env(self) -> dict[str, str]:
        env = dict(os.environ, VK_ICD_FILENAMES=self.icd)
        if self.lib_dir:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(x for x in (self.lib_dir, os.environ.get("LD_LIBRARY_PATH")) if x)
        return env


def find_vulkan() -> tuple[VulkanDevice | None, str]:
    """The first Vulkan device found, or None and the reason, naming what to install."""
    icd = os.environ.get("BOKEH_VULKAN_ICD")
    if icd:
        if not Path(icd).is_file():
            return None, f"$BOKEH_VULKAN_ICD={icd}: no such file"
        return VulkanDevice(icd, os.environ.get("BOKEH_VULKAN_LIB_DIR"), "$BOKEH_VULKAN_ICD"), ""
    swiftshader = CHROMIUM_DIR / "vk_swiftshader_icd.json"
    if swiftshader.is_file() and (CHROMIUM_DIR / "libvulkan.so.1").is_file():
        return VulkanDevice(str(swiftshader), str(CHROMIUM_DIR), "SwiftShader from Debian's chromium package"), ""
    lavapipe = sorted(glob.glob("/usr/share/vulkan/icd.d/lvp_icd*.json"))
    if lavapipe and ctypes.util.find_library("vulkan"):
        return VulkanDevice(lavapipe[0], None, "Mesa lavapipe"), ""
    return None, (
        "no Vulkan device for LiteRT's GPU accelerator: install Debian's chromium (SwiftShader; "
        "`bash web_demo/setup.sh` does) or mesa-vulkan-drivers + libvulkan1 (lavapipe), "
        "or set $BOKEH_VULKAN_ICD"
    )


@dataclass
class GpuRun:
    """One compile-and-run of a file on the GPU accelerator."""

    device: str  # the adapter Dawn selected, e.g. "SwiftShader Device (Subzero)"
    backend: str  # Dawn's backend, e.g. "Vulkan"
    adapter_type: str
    vulkan: str  # how the Vulkan device was found
    fully_accelerated: bool
    compile_s: float
    run_s: list[float]
    outputs: list[np.ndarray] = field(repr=False)  # in the model's own layout


def _worker(model: str, inputs_npz: str, outputs_npz: str) -> None:
    """Inside the subprocess: compile on the GPU, run each sample, save the outputs."""
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    t0 = time.perf_counter()
    cm = CompiledModel.from_file(model, hardware_accel=HardwareAccelerator.GPU)
    compile_s = time.perf_counter() - t0
    key = next(iter(cm.get_signature_list()))
    names = cm.get_signature_list()[key]
    details = cm.get_output_tensor_details(key)
    data = np.load(inputs_npz)
    n = len({k.split("/", 1)[0] for k in data.files})
    # One set of buffers for every sample: fresh GPU buffers per run failed to lock on read.
    ins = {name: cm.create_input_buffer_by_name(key, name) for name in names["inputs"]}
    out_bufs = {name: cm.create_output_buffer_by_name(key, name) for name in names["outputs"]}
    outs, run_s = {}, []
    for i in range(n):
        for name, buf in ins.items():
            buf.write(np.ascontiguousarray(data[f"{i}/{name}"], np.float32))
        t0 = time.perf_counter()
        cm.run_by_name(key, ins, out_bufs)
        for name, buf in out_bufs.items():
            shape = tuple(details[name]["shape"])
            outs[f"{i}/{name}"] = buf.read(int(np.prod(shape)), np.float32).reshape(shape)
        run_s.append(time.perf_counter() - t0)  # with the read: a run is asynchronous until then
    np.savez(outputs_npz, **outs)
    print(
        json.dumps(
            {
                "fully_accelerated": bool(cm.is_fully_accelerated()),
                "compile_s": compile_s,
                "run_s": run_s,
                "outputs": names["outputs"],
            }
        )
    )


def run_on_gpu(model: str | Path, samples: list[dict[str, np.ndarray]], device: VulkanDevice) -> GpuRun:
    """Compile ``model`` on the GPU accelerator over ``device`` and run each of ``samples`` (inputs
    by name, in the model's own layout). Raises GateError, quoting the log, when the model cannot be
    compiled or run, and GpuUnavailable when the device cannot be used at all."""

    with tempfile.TemporaryDirectory(prefix="gpu-run-") as tmp:
        src, dst = Path(tmp, "in.npz"), Path(tmp, "out.npz")
        np.savez(src, **{f"{i}/{k}": v for i, s in enumerate(samples) for k, v in s.items()})
        cmd = [sys.executable, "-m", "export.gpu_run", "--worker", str(Path(model).resolve()), str(src), str(dst)]
        env = device.env()
        try:
            # cwd: `python -m` puts the repo root on the worker's sys.path, so it imports this checkout
            p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise GateError("gpu-run", f"no result after {WORKER_TIMEOUT_S} s", "a finished run") from e
        log = p.stderr
        m = _ADAPTER.search(log)
        if m is None:  # Dawn found no adapter: the accelerator could run nothing
            raise GpuUnavailable(
                f"Dawn selected no GPU adapter on {device.source} ({device.icd}); "
                "is its Vulkan loader (libvulkan.so.1) installed?"
            )
        if p.returncode != 0 or not dst.is_file():
            lines = log.strip().splitlines()
            # The accelerator lists the ops it cannot take ("ARG_MAX: Tensor type(INT64) is not
            # supported"); those lines are the useful ones, else the end of the log.
            at = next((i for i, x in enumerate(lines) if "not supported by GPU delegate" in x), None)
            shown = lines[at : at + 6] if at is not None else lines[-8:]
            raise GateError(
                "gpu-run",
                f"the GPU accelerator could not compile or run it on {m['name']} (exit {p.returncode})",
                "every op on the GPU, a finished run",
                "\n".join(shown),
            )
        report = json.loads(p.stdout.strip().splitlines()[-1])
        with np.load(dst) as data:
            outputs = [data[f"{i}/{report['outputs'][0]}"] for i in range(len(samples))]
    return GpuRun(
        m["name"].strip(),
        m["backend"],
        (m["type"] or "").strip(),
        device.source,
        report["fully_accelerated"],
        round(report["compile_s"], 2),
        [round(t, 3) for t in report["run_s"]],
        outputs,
    )


def check_gpu_run(variant: str, run: GpuRun, psnr_db: float) -> None:
    """Raise GateError unless the whole graph ran on the GPU and matched the CPU interpreter."""

    if not run.fully_accelerated:
        raise GateError(
            "gpu-run",
            f"{variant}: not fully accelerated on {run.device} ({run.backend})",
            "every op on the GPU (CompiledModel.is_fully_accelerated())",
            "Some ops fell back to the CPU; on a phone that means a GPU→CPU copy per fallback. Replace the "
            "PyTorch op they come from with one the GPU backend supports.",
        )
    need = GPU_RUN_MIN_PSNR_DB[variant]
    if not psnr_db >= need:  # also catches NaN
        raise GateError(
            "gpu-run",
            f"{variant}: GPU vs CPU interpreter PSNR = {psnr_db:.2f} dB on {run.device}",
            f">= {need:g} dB",
            "The GPU kernels do not compute what the CPU interpreter computes.",
        )


def gpu_run_entry(
    run: GpuRun | None, psnr_db: float | None = None, max_abs: float | None = None, skipped: str = ""
) -> dict:
    """The manifest's record of the run (or of why there was none)."""
    from ai_edge_litert import __version__ as litert_version

    if run is None:
        return {"status": "skipped", "reason": skipped, "accelerator": ACCELERATOR}
    entry = {k: v for k, v in asdict(run).items() if k not in ("outputs",)}
    return {
        "status": "passed",
        "accelerator": ACCELERATOR,
        "litert": litert_version,
        **entry,
        "psnr_db_vs_cpu": round(min(psnr_db, PSNR_CAP_DB), 2),
        "max_abs_diff_vs_cpu": float(max_abs),
    }


def gate_tflite(
    path: str | Path,
    variant: str,
    samples: list[tuple[np.ndarray, ...]],
    device: VulkanDevice,
    cpu_outputs: list[np.ndarray] | None = None,
    num_threads: int = 2,
) -> dict:
    """The whole gate on one file: the GPU accelerator on ``samples`` (NCHW ``(image, depth, lens)``
    tuples) against the CPU interpreter's NCHW ``cpu_outputs`` (computed here when not given),
    checked; returns the manifest's ``gpu_run`` entry. Raises GateError or GpuUnavailable."""

    cpu = TFLiteRunner(path, num_threads)
    named = [cpu.prepare(cpu.inputs(*s[: 3 if cpu.lens_input else 2])) for s in samples]
    if cpu_outputs is None:
        cpu_outputs = [cpu.to_nchw(cpu.invoke(x)) for x in named]
    run = run_on_gpu(path, named, device)
    gpu_outputs = [cpu.to_nchw(o) for o in run.outputs]
    psnr_db, max_abs = worst_sample(gpu_outputs, cpu_outputs)
    check_gpu_run(variant, run, psnr_db)
    return gpu_run_entry(run, psnr_db, max_abs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.gpu_run",
        description="The export's GPU-run gate, by hand: run .tflite files on LiteRT's GPU "
        "accelerator and compare them with the CPU interpreter.",
    )
    p.add_argument("model", nargs="+", help=".tflite file(s); the precision is read from the manifest beside them")
    p.add_argument("--data", help="a split folder (original/, depth/) with the parity samples, e.g. data/phone/val")
    p.add_argument("--samples", type=int, default=2, help="how many samples (default 2)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(*args.model)
        return 0
    if not args.data:
        p.error("--data DIR is required (a split folder with original/ and depth/)")

    device, why = find_vulkan()
    if device is None:
        print(f"skipped: {why}", file=sys.stderr)
        return 2
    status = 0
    for path in args.model:
        cpu = TFLiteRunner(path, 1)
        samples = load_samples(args.data, cpu.input_size, pick_ids(list_sample_ids(args.data), args.samples))
        try:
            entry = gate_tflite(path, cpu.precision, [s.args() for s in samples], device)
        except (GateError, GpuUnavailable) as e:
            print(f"{path}: {e}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps({"file": str(path), **entry}))
    return status


if __name__ == "__main__":
    sys.exit(main())
