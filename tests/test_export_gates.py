"""Export: each gate fails on a model built to break it, with a clear message, and leaves nothing
behind; the command line refuses bad arguments with exit status 2 and one clear error.
The successful export is in test_export.py.
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import torch
from torch import nn

from export.__main__ import main
from export.command import export_args
from export.gates import GateError
from export.gpu_run import GpuRun, check_gpu_run, find_vulkan
from export.pipeline import export_model

# ---------------------------------------------------------------------------- each gate can fail


class _Probe(nn.Module):
    """A small image → image network whose tail uses one op chosen to break one gate."""

    def __init__(self, tail: str) -> None:
        super().__init__()
        self.tail = tail
        self.conv = nn.Conv2d(4, 12, 3, padding=1)

    def forward(self, image: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.cat([image, depth], 1))  # (B, 12, H, W)
        if self.tail == "erf":  # TFLite has no builtin Erf: it becomes FlexErf
            return image + torch.erf(x[:, :3])
        if self.tail == "pixelshuffle":  # DepthToSpace lowers to rank-6 reshape/transpose
            return nn.functional.pixel_shuffle(x, 2)[:, :3, ::2, ::2]
        if self.tail == "round":  # a builtin op TF 2.15's analyzer rejects (LiteRT's GPU runs it)
            return image + torch.round(x[:, :3])
        if self.tail == "argmax":  # int64 tensors: LiteRT's GPU accelerator cannot take them
            return image + torch.argmax(x[:, :3], 1, keepdim=True).float()
        raise ValueError(self.tail)


@pytest.mark.parametrize(
    "tail, gate, words",
    [
        ("erf", "builtin-ops", "FlexErf"),
        ("pixelshuffle", "tensor-rank", "rank 6"),
        ("round", "gpu-compatibility", "ROUND"),
    ],
)
def test_structural_gates_fail_with_a_clear_message_and_leave_nothing(tmp_path, data_dir, tail, gate, words):
    out = tmp_path / "probe"
    with pytest.raises(GateError) as err:
        export_model(_Probe(tail), out, (32, 48), source={}, precisions=("fp32",), parity_dir=data_dir, progress=False)
    assert err.value.gate == gate and words in str(err.value) and "required" in str(err.value)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no work folder left behind either


def test_gpu_run_gate_verdicts():
    """check_gpu_run on hand-made runs: fallback to the CPU fails, as does a PSNR under the budget."""

    def run(full):
        return GpuRun("dev", "Vulkan", "CPU", "test", full, 0.0, [0.0], [])

    check_gpu_run("fp16", run(True), 50.0)
    with pytest.raises(GateError, match="gpu-run.*not fully accelerated"):
        check_gpu_run("fp16", run(False), 99.0)
    with pytest.raises(GateError, match="gpu-run.*>= 45 dB"):
        check_gpu_run("fp16", run(True), 44.9)
    with pytest.raises(GateError):
        check_gpu_run("fp32", run(True), float("nan"))


@pytest.mark.slow  # a GPU run on the software Vulkan device
def test_gpu_run_gate_fails_on_a_model_the_gpu_cannot_run(tmp_path, data_dir, monkeypatch):
    """The ARG_MAX probe, with the static analyzer's gate switched off: the run itself catches the op
    the GPU cannot take, so the gate does not rest on the analyzer. (The analyzer's own probe, ROUND,
    runs fine on LiteRT's GPU accelerator: the two verdicts are not the same thing.)"""
    if find_vulkan()[0] is None:
        pytest.skip(find_vulkan()[1])
    import export.pipeline as pipeline

    real = pipeline.gates.check_tflite_structure
    monkeypatch.setattr(
        pipeline.gates,
        "check_tflite_structure",
        lambda v, insp: real(v, dataclasses.replace(insp, gpu_compatible=True)),
    )
    out = tmp_path / "probe"
    with pytest.raises(GateError) as err:
        export_model(
            _Probe("argmax"),
            out,
            (32, 48),
            source={},
            precisions=("fp32",),
            parity_dir=data_dir,
            progress=False,
            gpu_run="require",
        )
    assert err.value.gate == "gpu-run" and "ARG_MAX" in str(err.value), str(err.value)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_a_killed_exports_work_folder_is_removed_by_the_next_export(tmp_path):
    """Probe row 7: a killed export's hidden work folder used to stay forever. The next export to
    the same place removes it when its process is gone, and leaves a running export's alone."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".probe.tmp-{dead_pid}-abc123"
    running = tmp_path / f".probe.tmp-{os.getppid()}-def456"  # pytest's parent: alive
    for d in (stale, running):
        d.mkdir()
        (d / "bokeh_fp32.tflite").write_bytes(b"half-written")
    from export.pipeline import _remove_stale_work  # what export_model runs first

    assert _remove_stale_work(tmp_path / "probe") == [stale]
    assert not stale.exists() and running.exists()


# ---------------------------------------------------------------------------- the command line refuses


def test_missing_checkpoint_is_a_clear_error_and_writes_nothing(tmp_path, data_dir, capsys):
    out = tmp_path / "model"
    rc = main(export_args(tmp_path / "nope.ckpt", "64x96", out, calib_data=data_dir))
    assert rc == 2
    assert "nope.ckpt" in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_that_is_not_an_export_is_never_replaced(tmp_path, tiny_ckpt, data_dir, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    rc = main(export_args(tiny_ckpt, "64x96", tmp_path, precisions=("fp32",), parity_data=data_dir))
    assert rc == 2 and "not an exported model" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_out_where_one_cannot_write_is_one_clear_error(tmp_path, tiny_ckpt, data_dir, capsys, monkeypatch):
    """Probe row 8: --out on a read-only path named a hidden temp folder in a traceback. (The tests
    run as root, which no permission stops, so the refusal is simulated where the export meets it.)"""
    import export.pipeline as pipeline

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied", k.get("dir"))

    monkeypatch.setattr(pipeline.tempfile, "mkdtemp", refuse)
    out = tmp_path / "ro" / "model"
    rc = main(export_args(tiny_ckpt, "64x96", out, precisions=("fp32",), parity_data=data_dir))
    err = capsys.readouterr().err
    assert rc == 2 and f"--out {out}: cannot write in {out.parent} (Permission denied)" in err, err
    assert "Traceback" not in err


def test_int8_without_calibration_data_is_refused(tmp_path, tiny_ckpt, data_dir, capsys):
    out = tmp_path / "model"
    rc = main(export_args(tiny_ckpt, "64x96", out, parity_data=data_dir, precisions=("fp16", "int8")))
    assert rc == 2 and "--calib-data" in capsys.readouterr().err and not out.exists()
