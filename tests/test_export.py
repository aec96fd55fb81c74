"""Export: a tiny generator goes through ONNX → TensorFlow → TFLite and every gate, through the
command line: the default export (onnx2tf, fp32 + fp16 + int8), with the parity gates failing on
perturbed copies of its files, the onnx-tf export and a lens-conditioned export.

Every test here is slow: each uses a full export (the module fixture ``exported``, marked by
tests/conftest.py, or its own). Each gate failing on a model built to break it is in
test_export_gates.py, the pieces of the export in test_export_pieces.py; the tiny checkpoint and
the data folder they share (``tiny_ckpt``, ``data_dir``) are tests/conftest.py's.
"""

from __future__ import annotations

import hashlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import torch
from torch import nn

from common.hashing import file_sha256
from common.metrics import psnr_array as psnr
from export.__main__ import main
from export.command import export_args
from export.compare import non_identity_
from export.gates import (
    TFLITE_MIN_PSNR_DB,
    GateError,
    check_onnx_parity,
    gpu_delegate_view,
    inspect_tflite,
    parse_gpu_analyzer,
    run_gpu_analyzer,
)
from export.gpu_run import GPU_RUN_MIN_PSNR_DB
from export.manifest import read_manifest, validate_manifest
from export.onnx_export import onnx_max_abs_diff
from export.pipeline import export_model
from export.runtime import load_runner
from export.samples import load_sample
from tests.conftest import TINY_ARCH, tiny_generator
from training.checkpoint import load_generator
from training.model import NAFBlock, NAFNet

SIZE = (64, 96)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_ckpt, data_dir):
    """The full default export: onnx2tf, fp32 + fp16 + int8, through the command line."""
    out = tmp_path_factory.mktemp("models") / "tiny_onnx2tf"
    precisions = ("fp32", "fp16", "int8")
    rc = main(
        export_args(tiny_ckpt, SIZE, out, precisions=precisions, calib_data=data_dir, calib_samples=3, parity_samples=2)
    )
    assert rc == 0
    return out


# ---------------------------------------------------------------------------- the successful export


def test_export_writes_every_file_and_a_manifest_per_schema(exported, tiny_ckpt):
    names = sorted(p.name for p in exported.iterdir())
    assert names == [
        "bokeh_fp16.tflite",
        "bokeh_fp32.tflite",
        "bokeh_int8.tflite",
        "manifest.json",
        "model.onnx",
        "model.safetensors",
    ]
    # the weights for fine-tuning are the checkpoint's, loadable without unpickling
    reloaded = load_generator(exported / "model.safetensors")
    for k, w in tiny_generator().state_dict().items():
        assert torch.equal(reloaded.generator.state_dict()[k], w), k
    m = json.loads((exported / "manifest.json").read_text())
    validate_manifest(m)
    assert m["converter"] == "onnx2tf" and m["name"] == "tiny_onnx2tf"
    assert m["source"]["checkpoint_sha256"] == file_sha256(tiny_ckpt)
    assert m["source"]["arch"]["enc_blocks"] == [1, 1, 1, 1]
    assert [i["shape"] for i in m["inputs"]] == [[1, 64, 96, 3], [1, 64, 96, 1]]
    assert m["outputs"][0]["shape"] == [1, 64, 96, 3] and m["inputs"][0]["layout"] == "NHWC"
    assert m["onnx"]["sha256"] == file_sha256(exported / "model.onnx")
    assert m["onnx"]["max_abs_diff_vs_pytorch"] <= 1e-4
    for precision, v in m["variants"].items():
        path = exported / v["file"]
        assert v["size_bytes"] == path.stat().st_size and v["sha256"] == file_sha256(path)
        assert v["precision"] == precision
        assert v["parity"]["psnr_db_vs_pytorch"] >= TFLITE_MIN_PSNR_DB[precision]
        assert v["gpu_compatible"] is True and v["flex_ops"] == [] and v["max_tensor_rank"] <= 4
        census = v["op_census"]
        # Expected counts come from the PyTorch module list, not from the file. The inference
        # form (export/reparam.py) splits each block's conv1, conv4 and depthwise conv2 in two, and
        # writes each of its two LayerNorms' channel means as two 1x1 convs (4 more per block).
        gen = tiny_generator()
        n_blocks = sum(1 for mod in gen.modules() if isinstance(mod, NAFBlock))
        n_dw = sum(1 for mod in gen.modules() if isinstance(mod, nn.Conv2d) and mod.groups > 1)
        n_conv = sum(1 for mod in gen.modules() if isinstance(mod, nn.Conv2d)) - n_dw
        n_up = sum(1 for mod in gen.modules() if isinstance(mod, nn.ConvTranspose2d))
        assert census["CONV_2D"] == n_conv + 2 * n_blocks + 4 * n_blocks and census["DEPTHWISE_CONV_2D"] == 2 * n_dw
        assert census.get("SUB", 0) == 0  # no LayerNorm SUB left (the lens head of a lens model has its own)
        assert "STRIDED_SLICE" not in census  # SimpleGate without channel slices
        assert census["TRANSPOSE_CONV"] == n_up
        assert "TRANSPOSE" not in census  # onnx2tf lays the graph out as NHWC: no layout shuffling
    assert (
        m["variants"]["int8"]["size_bytes"] < m["variants"]["fp16"]["size_bytes"] < m["variants"]["fp32"]["size_bytes"]
    )


def test_runners_agree_with_pytorch_on_a_dataset_sample(exported, tiny_ckpt, data_dir):
    """An independent check of the parity the manifest claims, through every runner type."""
    sample = load_sample(data_dir, "4", SIZE)
    with torch.no_grad():
        ref = tiny_generator()(torch.from_numpy(sample.image), torch.from_numpy(sample.depth)).numpy()
    torch_runner = load_runner(tiny_ckpt)
    np.testing.assert_allclose(torch_runner(sample.image, sample.depth), ref, atol=1e-6)

    def where_from(kind, path):  # what a report says of the file, with an independent hash
        return {"kind": kind, "path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "threads": 2}

    onnx_runner = load_runner(exported / "model.onnx")
    assert onnx_runner.input_size == SIZE and onnx_runner.name == "tiny_onnx2tf"
    assert onnx_runner.source == where_from("onnx", exported / "model.onnx")
    assert np.abs(onnx_runner(sample.image, sample.depth) - ref).max() <= 1e-4
    for precision in ("fp32", "fp16", "int8"):
        runner = load_runner(exported / f"bokeh_{precision}.tflite")
        assert runner.precision == precision and runner.input_size == SIZE and runner.layout == "NHWC"
        assert runner.source == where_from("tflite", exported / f"bokeh_{precision}.tflite")
        out = runner(sample.image, sample.depth)
        assert out.shape == (1, 3, *SIZE) and out.dtype == np.float32
        assert psnr(out, ref) >= TFLITE_MIN_PSNR_DB[precision]


def test_runner_rejects_a_wrong_input_size(exported):
    runner = load_runner(exported / "bokeh_fp32.tflite")
    with pytest.raises(ValueError, match="exported for 64x96"):
        runner(np.zeros((1, 3, 32, 48), np.float32), np.zeros((1, 1, 32, 48), np.float32))
    with pytest.raises(ValueError, match="unknown model type"):
        load_runner(exported / "manifest.json")


def test_benchmark_times_every_runtime_in_one_run(exported, tmp_path, capsys):
    from eval.benchmark import main as benchmark

    out = tmp_path / "bench.json"
    rc = benchmark(
        [
            "--tflite",
            str(exported / "bokeh_fp32.tflite"),
            "--tflite",
            str(exported / "bokeh_int8.tflite"),
            "--size",
            "64x96",
            "--runs",
            "2",
            "--warmup",
            "1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    result = json.loads(out.read_text())
    rows = {(r["runtime"], r["precision"]): r for r in result["results"]}
    # ONNX Runtime and PyTorch were found through the manifest: model.onnx and source.checkpoint.
    assert set(rows) == {("TFLite", "fp32"), ("TFLite", "int8"), ("ONNX Runtime", "fp32"), ("PyTorch", "fp32")}
    for r in rows.values():
        assert len(r["times_s"]) == 2 and r["median_s"] == pytest.approx(float(np.median(r["times_s"])))
        assert r["peak_rss_mb"] > 0
    table = capsys.readouterr().out
    ratio = rows[("TFLite", "fp32")]["median_s"] / rows[("PyTorch", "fp32")]["median_s"]
    assert f"TFLite/PyTorch = {ratio:.3f}" in table and "2 threads, input 64x96" in table


def test_every_exported_file_ran_fully_on_the_gpu_accelerator(exported):
    """The GPU-run gate ran in the export above: each file compiled on LiteRT's GPU accelerator with
    no CPU fallback and matched the CPU interpreter; without a Vulkan device, a skip that says why."""
    runs = {k: v["gpu_run"] for k, v in read_manifest(exported)["variants"].items()}
    if all(r["status"] == "skipped" for r in runs.values()):
        pytest.skip(f"GPU-run gate not run: {runs['fp32']['reason']}")
    for precision, run in runs.items():
        assert run["status"] == "passed" and run["fully_accelerated"], (precision, run)
        assert run["backend"] and run["device"], run
        assert run["psnr_db_vs_cpu"] >= GPU_RUN_MIN_PSNR_DB[precision], (precision, run)


def test_fp16_model_is_gpu_compatible_only_as_the_delegate_sees_it(exported):
    """TF 2.15's analyzer counts dequantised fp16 weights as runtime inputs and rejects every
    convolution; the GPU delegate folds DEQUANTIZE(fp16 constant) first, and so does the gate."""
    content = (exported / "bokeh_fp16.tflite").read_bytes()
    raw_ok, raw_warnings = parse_gpu_analyzer(run_gpu_analyzer(content))
    assert not raw_ok and any("runtime inputs" in w for w in raw_warnings)
    view = gpu_delegate_view(content)
    assert "DEQUANTIZE" not in inspect_tflite(view).op_census
    assert parse_gpu_analyzer(run_gpu_analyzer(view))[0]
    fp32 = (exported / "bokeh_fp32.tflite").read_bytes()
    assert gpu_delegate_view(fp32) == fp32  # nothing to fold in an fp32 file


# ---------------------------------------------------------------------------- the parity gates fail on it


def _perturbed(content: bytes) -> bytes:
    """Scale every weight buffer by 1.1: a file that loads and runs, but computes something else.
    (One buffer is not enough: with random weights a single deep layer barely reaches the output.)"""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for buf in model.buffers:
        if buf.data is not None and len(buf.data) >= 256:  # convolution weights, not scalars or shapes
            buf.data = (np.frombuffer(bytes(buf.data), np.float32) * 1.1).view(np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_parity_gate_fails_on_a_perturbed_tflite_and_keeps_the_previous_export(exported, data_dir, monkeypatch):
    import export.pipeline as pipeline

    manifest_before = (exported / "manifest.json").read_text()
    real = pipeline.convert_tflite
    monkeypatch.setattr(pipeline, "convert_tflite", lambda *a, **k: _perturbed(real(*a, **k)))
    with pytest.raises(GateError) as err:
        export_model(
            tiny_generator(), exported, SIZE, source={}, precisions=("fp32",), parity_dir=data_dir, progress=False
        )
    assert err.value.gate == "tflite-parity" and "PSNR vs PyTorch" in str(err.value) and ">= 60 dB" in str(err.value)
    # The failed re-export into an existing folder left the earlier, good export untouched.
    assert (exported / "manifest.json").read_text() == manifest_before
    assert sorted(p.name for p in exported.parent.iterdir()) == [exported.name]


def test_onnx_parity_gate_fails_on_a_perturbed_onnx(exported, data_dir, tmp_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(exported / "model.onnx"))
    for init in model.graph.initializer:  # every weight 1 % larger
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.size > 16:
            init.CopyFrom(numpy_helper.from_array(w * 1.01, init.name))
    onnx.save(model, str(tmp_path / "perturbed.onnx"))
    sample = load_sample(data_dir, "0", SIZE)
    with torch.no_grad():
        ref = tiny_generator()(torch.from_numpy(sample.image), torch.from_numpy(sample.depth)).numpy()
    good = onnx_max_abs_diff(exported / "model.onnx", [(sample.image, sample.depth)], [ref])
    bad = onnx_max_abs_diff(tmp_path / "perturbed.onnx", [(sample.image, sample.depth)], [ref])
    check_onnx_parity(good)
    with pytest.raises(GateError, match="onnx-parity.*<= 0.0001"):
        check_onnx_parity(bad)


# ---------------------------------------------------------------------------- the paper's converter


@pytest.mark.slow
def test_onnx_tf_export_every_precision(tmp_path, tiny_ckpt, data_dir):
    """The paper's converter: NCHW in and out, TRANSPOSE ops around the convolutions."""
    out = tmp_path / "tiny_onnx_tf"
    rc = main(export_args(tiny_ckpt, SIZE, out, converter="onnx-tf", calib_data=data_dir, calib_samples=3))
    assert rc == 0
    m = read_manifest(out)
    assert m["converter"] == "onnx-tf" and m["inputs"][0]["layout"] == "NCHW"
    assert [i["shape"] for i in m["inputs"]] == [[1, 3, 64, 96], [1, 1, 64, 96]]
    sample = load_sample(data_dir, "4", SIZE)
    with torch.no_grad():
        ref = (
            load_generator(tiny_ckpt).generator(torch.from_numpy(sample.image), torch.from_numpy(sample.depth)).numpy()
        )
    for precision, v in m["variants"].items():
        assert v["gpu_compatible"] and v["flex_ops"] == [] and v["max_tensor_rank"] <= 4
        assert v["op_census"]["TRANSPOSE"] > 0
        runner = load_runner(out / v["file"])
        assert runner.layout == "NCHW"
        assert psnr(runner(sample.image, sample.depth), ref) >= TFLITE_MIN_PSNR_DB[precision]


# ---------------------------------------------------------------------------- the lens-conditioned model


@pytest.mark.slow  # a full export
def test_lens_model_exports_with_a_documented_lens_input(tmp_path, data_dir):
    from training.renderers.lens import auto_focus, default_lens

    torch.manual_seed(1)
    gen = non_identity_(NAFNet(**TINY_ARCH, lens_input=True)).eval()
    ckpt = tmp_path / "lens.pt"
    torch.save({"generator": gen.state_dict(), "arch": {**TINY_ARCH, "lens_input": True}}, ckpt)
    out = tmp_path / "lens_model"
    assert main(export_args(ckpt, SIZE, out, calib_data=data_dir, calib_samples=3, parity_samples=2)) == 0
    manifest = read_manifest(out)
    lens_spec = manifest["inputs"][2]
    assert lens_spec["name"] == "lens" and lens_spec["values"] == ["d_f", "K", "dof"]
    assert lens_spec["shape"] == [1, 1, 1, 3]  # onnx2tf's NHWC
    assert lens_spec["default"] == pytest.approx(default_lens(SIZE), abs=1e-4)

    # Without lens files the samples carry the project's auto-focus, computed on the cropped map.
    sample = load_sample(data_dir, "0", SIZE)
    ref_lens = auto_focus(sample.depth)
    assert sample.lens.ravel().tolist() == pytest.approx([ref_lens.d_f, ref_lens.K, ref_lens.dof], rel=1e-5)

    # Every file follows PyTorch for two different lenses, and the lens matters.
    lenses = [np.array(v, np.float32) for v in ([0.9, 3.0, 0.0], [0.1, 6.0, 0.2])]
    with torch.no_grad():
        refs = [
            gen(
                torch.from_numpy(sample.image),
                torch.from_numpy(sample.depth),
                torch.from_numpy(lens.reshape(1, 3, 1, 1)),
            ).numpy()
            for lens in lenses
        ]
    assert np.abs(refs[0] - refs[1]).max() > 1e-3
    # The file's input tensors come in the manifest's order (tools read the frame size off input 0).
    from ai_edge_litert.interpreter import Interpreter

    for f in ("bokeh_fp32.tflite", "bokeh_fp16.tflite", "bokeh_int8.tflite"):
        names = [d["name"] for d in Interpreter(model_path=str(out / f)).get_input_details()]
        assert names == [f"serving_default_{n}:0" for n in ("image", "depth", "lens")], (f, names)
    for f in ("model.onnx", "bokeh_fp32.tflite", "bokeh_fp16.tflite", "bokeh_int8.tflite"):
        runner = load_runner(out / f)
        assert runner.lens_input
        precision = "fp32" if f.endswith(".onnx") else runner.precision
        for lens, ref in zip(lenses, refs):
            assert psnr(runner(sample.image, sample.depth, lens), ref) >= TFLITE_MIN_PSNR_DB[precision], (f, lens)
        with pytest.raises(ValueError, match="lens"):
            runner(sample.image, sample.depth)
        with pytest.raises(ValueError, match="d_f"):
            runner(sample.image, sample.depth, np.array([1.5, 3.0, 0.0], np.float32))
