"""The export: PyTorch → ONNX → TensorFlow SavedModel → TFLite (fp32, fp16, int8), gated.

This is the paper's conversion chain (Bokeh-Loss GAN, appendix A) with the checks it lacked: the
authors' TFLite model needed Flex ops and could not run on the phone GPU (§4.2). Every file is built
in a hidden work folder next to ``out_dir``; only when every gate in ``export.gates`` has passed is
the folder moved into place (a previous export at ``out_dir`` is replaced only then). On any failure
the work folder is deleted, so no half-written model is ever left behind.

The model is converted at its full static size exactly once: one ONNX trace (of the generator's
inference form, ``export.reparam``), one SavedModel, and three TFLite conversions from it. Every
parity gate compares with the original PyTorch generator.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from common.hashing import file_sha256
from export import gates
from export.convert import DEFAULT_CONVERTER, to_saved_model
from export.gpu_run import GpuUnavailable, find_vulkan, gate_tflite, gpu_run_entry
from export.litert_torch import convert_all_with_litert_torch, litert_torch_python
from export.manifest import MANIFEST_NAME, build_manifest, variant_entry, write_manifest
from export.onnx_export import export_onnx, onnx_max_abs_diff, simplify_onnx
from export.reparam import inference_form
from export.runtime import TFLiteRunner
from export.samples import Sample, list_sample_ids, load_samples, pick_ids
from export.tflite import DEFAULT_PRECISIONS, FILE_NAMES, PRECISIONS, convert_tflite, representative_dataset
from export.toollog import tool_log
from training.checkpoint import SAFETENSORS_NAME, save_generator_safetensors
from training.renderers.lens import default_lens

__all__ = ["ExportResult", "export_model"]

ONNX_NAME = "model.onnx"


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


def _select_samples(
    calib_dir: Path | None,
    calib_n: int,
    parity_dir: Path | None,
    parity_n: int,
    size: tuple[int, int],
    need_calib: bool,
) -> tuple[list[Sample], list[Sample]]:
    """Calibration and parity samples. From one folder, the parity samples avoid the calibration
    ones when there are enough, so the int8 gate is measured on images it was not calibrated on."""
    parity_dir = parity_dir or calib_dir
    if parity_dir is None:
        raise ValueError(
            "the parity gates need real dataset samples: pass --parity-data DIR or --calib-data DIR "
            "(a split folder with original/ and depth/)"
        )
    if need_calib and calib_dir is None:
        raise ValueError(
            "int8 needs --calib-data DIR: it is calibrated on real samples (RGB and depth), not on random noise"
        )
    calib_ids: list[str] = []
    if need_calib:
        calib_ids = pick_ids(list_sample_ids(calib_dir), calib_n)
    same = calib_dir is not None and Path(parity_dir).resolve() == Path(calib_dir).resolve()
    parity_ids = pick_ids(list_sample_ids(parity_dir), parity_n, exclude=set(calib_ids) if same else set())
    calib = load_samples(calib_dir, size, calib_ids) if need_calib else []
    return calib, load_samples(parity_dir, size, parity_ids)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _remove_stale_work(out_dir: Path) -> list[Path]:
    """Delete the work folders of earlier exports to ``out_dir`` whose process is gone (a killed
    export leaves 13-35 MB behind), never those of an export still running. Returns what went."""
    gone = []
    for p in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        pid = p.name[len(f".{out_dir.name}.tmp-") :].split("-", 1)[0]
        if p.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone


def _move_into_place(work: Path, out_dir: Path) -> None:
    """Swap the finished work folder in; an older export is removed only after the swap."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
        os.rmdir(old)
        os.replace(out_dir, old)
    try:
        os.replace(work, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(
    generator: nn.Module,
    out_dir: str | Path,
    size: tuple[int, int],
    *,
    source: dict[str, Any],
    converter: str = DEFAULT_CONVERTER,
    precisions: tuple[str, ...] = DEFAULT_PRECISIONS,
    calib_dir: str | Path | None = None,
    calib_samples: int = 8,
    parity_dir: str | Path | None = None,
    parity_samples: int = 2,
    int8_per_channel: bool = False,
    gpu_run: str = "auto",
    keep_saved_model: bool = False,
    name: str | None = None,
    num_threads: int = 2,
    progress: bool = True,
) -> ExportResult:
    """Export ``generator(image, depth[, lens])`` at ``size`` = (H, W) into ``out_dir``.

    ``source`` holds the manifest's provenance: ``checkpoint``, ``checkpoint_sha256``, ``arch`` and
    ``training_config``. ``gpu_run``: ``"auto"`` runs the GPU-run gate (``export.gpu_run``) when a
    Vulkan device is found and records why not otherwise; ``"require"`` makes a missing device an
    error; ``"off"`` records that it was not asked for. Raises ``GateError`` (naming the gate, the value and the threshold),
    ``ToolError`` (a converter failed) or ``ValueError``/``FileNotFoundError`` for bad arguments.
    """
    out_dir = Path(out_dir)
    name = name or out_dir.name
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file())
    ):
        # Only an earlier export (a folder with a manifest) is replaced, never an arbitrary folder.
        raise ValueError(
            f"--out {out_dir}: exists and is not an exported model (no {MANIFEST_NAME}); choose a new folder"
        )
    if converter == "litert-torch":
        litert_torch_python()  # its environment is missing: say so now, naming `make venv-litert-torch`
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise ValueError(f"precisions {list(precisions)}: choose from {', '.join(PRECISIONS)}")
    if gpu_run not in ("auto", "require", "off"):
        raise ValueError(f"gpu_run={gpu_run!r}: choose auto, require or off")
    vulkan, no_vulkan = find_vulkan() if gpu_run != "off" else (None, "not asked for (--gpu-run off)")
    if vulkan is None and gpu_run == "require":
        raise ValueError(f"--gpu-run require: {no_vulkan}")
    calib, parity = _select_samples(
        Path(calib_dir) if calib_dir else None,
        calib_samples,
        Path(parity_dir) if parity_dir else None,
        parity_samples,
        size,
        need_calib="int8" in precisions,
    )
    generator = generator.eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(out_dir)
    # The pid in the name tells a later export whether this folder's owner is still running.
    work = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-{os.getpid()}-"))
    os.chmod(work, 0o777 & ~_umask())  # mkdtemp makes it private; the export is an ordinary folder
    log = work / "tools.log"  # deleted with the work folder; failures quote its tail
    seconds: dict[str, float] = {}
    direct = converter == "litert-torch"  # PyTorch → TFLite in one step, no SavedModel
    stages = ["onnx", "litert_torch" if direct else "saved_model", *precisions]
    bar = tqdm(total=len(stages), desc=f"export {name}", unit="stage", disable=not progress)

    def done(stage: str, t0: float) -> None:
        seconds[stage] = round(time.perf_counter() - t0, 1)
        bar.update(1)

    try:
        # 1. PyTorch references, computed once for every parity gate.
        t0 = time.perf_counter()
        lens_input = bool(getattr(generator, "lens_input", False))
        with torch.inference_mode():
            # a depth-only generator (the paper's, or any image + depth module) takes two inputs
            refs = [
                generator(*(torch.from_numpy(a) for a in s.args()[: 3 if lens_input else 2])).numpy() for s in parity
            ]
        inputs = [s.args() for s in parity]
        seconds["pytorch_reference"] = round(time.perf_counter() - t0, 1)

        # 2. ONNX (static shape, named inputs), simplified, checked against PyTorch.
        t0 = time.perf_counter()
        bar.set_postfix_str("onnx")
        raw_onnx = work / "traced.onnx"
        with tool_log(log, "ONNX export"):
            export_onnx(inference_form(generator), raw_onnx, size)  # checked against the original below
            simplify_onnx(raw_onnx, work / ONNX_NAME)
        raw_onnx.unlink()
        onnx_diff = onnx_max_abs_diff(work / ONNX_NAME, inputs, refs, num_threads)
        gates.check_onnx_parity(onnx_diff)
        done("onnx", t0)

        # 3. ONNX → SavedModel, once, at full size; or every TFLite file straight from PyTorch.
        t0 = time.perf_counter()
        if direct:
            bar.set_postfix_str("TFLite (litert-torch)")
            with tool_log(log, "PyTorch → TFLite (litert-torch)"):
                converted = convert_all_with_litert_torch(
                    generator, size, precisions, work, calib, per_channel=int8_per_channel
                )
            layout = "NHWC"
            done("litert_torch", t0)
        else:
            bar.set_postfix_str(f"SavedModel ({converter})")
            saved_model = work / "saved_model"
            with tool_log(log, f"ONNX → TensorFlow ({converter})"):
                layout = to_saved_model(work / ONNX_NAME, saved_model, converter, work)
            done("saved_model", t0)

        # 4. TFLite variants, each gated before the next one is built.
        variants: dict[str, dict] = {}
        for precision in precisions:
            t0 = time.perf_counter()
            bar.set_postfix_str(f"TFLite {precision}")
            rep = representative_dataset(calib, layout, lens_input) if precision == "int8" else None
            path = work / FILE_NAMES[precision]
            with tool_log(log, f"TFLite {precision} conversion"):
                if direct:
                    content = converted[precision]
                else:
                    content = convert_tflite(saved_model, precision, rep, per_channel=int8_per_channel)
                insp = gates.inspect_tflite(content)
            gates.check_tflite_structure(precision, insp)
            path.write_bytes(content)
            with tool_log(log, f"running {path.name}"):  # the interpreter announces its XNNPACK delegate
                runner = TFLiteRunner(path, num_threads, layout=layout)
                outs = [runner(*args) for args in inputs]
            psnr_db, max_abs = gates.worst_sample(outs, refs)
            gates.check_tflite_parity(precision, psnr_db)
            gpu = gpu_run_entry(None, skipped=no_vulkan)
            if vulkan is not None:
                bar.set_postfix_str(f"GPU run {precision}")
                try:
                    gpu = gate_tflite(path, precision, inputs, vulkan, cpu_outputs=outs, num_threads=num_threads)
                except GpuUnavailable as e:  # the machine's Vulkan, not the model: say so, never pass silently
                    if gpu_run == "require":
                        raise ValueError(f"--gpu-run require: {e}") from e
                    vulkan, no_vulkan = None, str(e)
                    gpu = gpu_run_entry(None, skipped=no_vulkan)
            variants[precision] = variant_entry(
                FILE_NAMES[precision],
                len(content),
                file_sha256(path),
                precision,
                psnr_db,
                max_abs,
                insp.gpu_compatible,
                insp.flex_ops,
                insp.max_tensor_rank,
                insp.op_census,
                gpu,
            )
            done(precision, t0)

        # 5. The generator's weights for fine-tuning (safe to load, unlike a pickle), the manifest,
        # then the atomic move into place.
        if source.get("arch"):  # a NAFNet from load_generator; an arbitrary module has no arch to record
            save_generator_safetensors(
                work / SAFETENSORS_NAME,
                generator,
                source["arch"],
                source.get("training_config"),
                source={
                    "checkpoint": source.get("checkpoint", ""),
                    "checkpoint_sha256": source.get("checkpoint_sha256", ""),
                },
            )
        manifest = build_manifest(
            name,
            source,
            size,
            layout,
            converter,
            variants,
            {"file": ONNX_NAME, "sha256": file_sha256(work / ONNX_NAME), "max_abs_diff_vs_pytorch": onnx_diff},
            lens_default=default_lens(size) if lens_input else None,
        )
        write_manifest(work, manifest)
        for scratch in ("onnx2tf_input.onnx", "onnx2tf", "tools.log", *([] if keep_saved_model else ["saved_model"])):
            _remove(work / scratch)
        _move_into_place(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        bar.close()
    return ExportResult(out_dir, manifest, seconds)
