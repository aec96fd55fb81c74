"""Export: the pieces, each on its own (gate thresholds, the GPU analyzer's report, the dataset
samples, the inference form, sizes, the command line other tools run). No export here.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import torch
from PIL import Image

from common.metrics import psnr_array as psnr
from common.sizes import parse_size
from export.__main__ import build_parser
from export.command import export_args, export_command
from export.gates import GateError, check_onnx_parity, check_tflite_parity, parse_gpu_analyzer
from export.reparam import inference_form
from export.samples import list_sample_ids, load_sample, pick_ids
from tests.conftest import tiny_generator
from training.data import BadSampleError
from training.model import NAFBlock

SIZE = (64, 96)


# ---------------------------------------------------------------------------- the pieces


def test_gate_thresholds_and_psnr():
    # PSNR of a constant error e against peak 1 is -20 log10(e): 0.1 -> 20 dB, 0.001 -> 60 dB.
    ref = np.zeros((1, 3, 4, 4), np.float32)
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0, abs=1e-4)
    assert psnr(ref + 0.001, ref) == pytest.approx(60.0, abs=1e-3)
    check_tflite_parity("fp32", 60.0)
    with pytest.raises(GateError):
        check_tflite_parity("fp32", 59.99)
    check_tflite_parity("int8", 32.0)
    with pytest.raises(GateError):
        check_tflite_parity("int8", float("nan"))
    with pytest.raises(GateError):
        check_onnx_parity(1.01e-4)


def test_gpu_analyzer_report_parsing():
    ok = "...\nYour model looks compatible with GPU delegate on TFLite runtime version 2.15.1.\n..."
    assert parse_gpu_analyzer(ok) == (True, [])
    bad = "GPU COMPATIBILITY WARNING: Not supported op ROUND\n" + ok
    assert parse_gpu_analyzer(bad) == (False, ["GPU COMPATIBILITY WARNING: Not supported op ROUND"])
    assert parse_gpu_analyzer("")[0] is False


def test_samples_read_16bit_disparity_and_crop_to_size(data_dir, tmp_path):
    assert list_sample_ids(data_dir) == ["0", "1", "2", "3", "4"]
    s = load_sample(data_dir, "2", (80, 112))  # the stored size: no resampling
    stored = np.asarray(Image.open(data_dir / "depth" / "2.png")).astype(np.float64) / 65535.0
    np.testing.assert_allclose(s.depth[0, 0], stored, atol=1e-6)
    rgb = np.asarray(Image.open(data_dir / "original" / "2.png")).astype(np.float32) / 255.0
    np.testing.assert_allclose(s.image[0].transpose(1, 2, 0), rgb, atol=1e-6)
    s = load_sample(data_dir, "2", SIZE)
    assert s.image.shape == (1, 3, *SIZE) and s.depth.shape == (1, 1, *SIZE)
    assert s.depth.min() >= 0 and s.depth.max() <= 1
    assert pick_ids([str(i) for i in range(10)], 3) == ["0", "4", "9"]
    assert pick_ids(["0", "1", "2", "3"], 2, exclude={"0", "3"}) == ["1", "2"]
    (data_dir.parent / "broken" / "original").mkdir(parents=True)
    (data_dir.parent / "broken" / "depth").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(data_dir.parent / "broken" / "original" / "7.png")
    with pytest.raises(FileNotFoundError, match=r"no depth map .*'7'"):
        list_sample_ids(data_dir.parent / "broken")
    (data_dir.parent / "broken" / "original" / "7.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((16, 16), np.uint16)).save(data_dir.parent / "broken" / "depth" / "7.png")
    with pytest.raises(BadSampleError, match=r"7\.png"):
        load_sample(data_dir.parent / "broken", "7", (16, 16))


def test_inference_form_computes_the_same_function_without_channel_slices():
    gen = tiny_generator()
    form = inference_form(gen)
    image, depth = torch.rand(2, 3, 32, 48), torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        ref, out = gen(image, depth), form(image, depth)
    assert (ref - image).abs().max() > 0.05  # the network does something
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=0)
    assert not any(isinstance(m, NAFBlock) for m in form.modules())
    assert all(isinstance(m, NAFBlock) for m in gen.encoders[0])  # the original is left as it was
    # LayerNorm affine, β and γ are folded: 4 (norm) + 2 (β, γ) vectors of C per block fewer.
    blocks = [m for m in gen.modules() if isinstance(m, NAFBlock)]
    folded = sum(6 * b.conv3.out_channels for b in blocks)
    assert sum(p.numel() for p in form.parameters()) == sum(p.numel() for p in gen.parameters()) - folded


def test_parse_size():
    assert parse_size("1024x1536") == (1024, 1536)
    for bad in ("1024", "1000x1536", "axb", "0x16"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert parse_size("3008x4000") == (3008, 4000)  # a 12 Mpx photo
    with pytest.raises(ValueError, match="Mpx"):  # an allocator traceback minutes in, before
        parse_size("16384x16384")


def test_export_command_spells_the_cli_flags(tmp_path):
    """export_command (what export.compare and tests.fixture_model run) and export_args parse as the
    command line means them; an option left at None is not passed, so the CLI's own default applies."""
    cmd = export_command(
        tmp_path / "g.pt",
        (64, 96),
        tmp_path / "out",
        precisions=("fp32", "int8"),
        converter="onnx-tf",
        calib_data=tmp_path / "train",
        calib_samples=3,
        parity_data=tmp_path / "val",
        parity_samples=1,
        threads=1,
    )
    assert cmd[:3] == [sys.executable, "-m", "export"]
    args = build_parser().parse_args(cmd[3:])
    assert (args.checkpoint, args.size, args.out) == (tmp_path / "g.pt", "64x96", tmp_path / "out")
    assert (args.precisions, args.converter, args.threads) == ("fp32,int8", "onnx-tf", 1)
    assert (args.calib_data, args.calib_samples) == (tmp_path / "train", 3)
    assert (args.parity_data, args.parity_samples) == (tmp_path / "val", 1)
    short = export_args("g.pt", "1024x1536", "out")  # what the export tests pass to export.__main__.main
    assert short == ["--checkpoint", "g.pt", "--size", "1024x1536", "--out", "out"]
    assert build_parser().parse_args(short).precisions == build_parser().get_default("precisions")
