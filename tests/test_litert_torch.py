"""LiteRT Torch, the optional third converter (export/litert_torch.py): a tiny generator converted in
``.venv-litert-torch`` must give builtin-only, rank-4, GPU-compatible NHWC files in the manifest's
input order that reproduce PyTorch within the export's parity gates.

The conversions are skipped, naming ``make venv-litert-torch``, where that environment is missing.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import torch
from torch import nn

from common.metrics import psnr_array as psnr
from export.compare import non_identity_
from export.gates import TFLITE_MIN_PSNR_DB, check_tflite_structure, inspect_tflite
from export.gpu_run import find_vulkan, gate_tflite
from export.litert_torch import (
    VENV,
    LiteRTTorchUnavailable,
    convert_all_with_litert_torch,
    litert_torch_python,
    nafnet_arch,
)
from export.runtime import TFLiteRunner
from export.samples import list_sample_ids, load_samples
from training.model import NAFNet

SIZE = (64, 96)
TINY_ARCH = {"width": 4, "enc_blocks": (1, 1, 1, 1), "middle_blocks": 1, "dec_blocks": (1, 1, 1, 1)}

needs_env = pytest.mark.skipif(
    not (VENV / "bin" / "python").is_file(), reason=f"needs the optional {VENV.name}: run `make venv-litert-torch`"
)


def _tiny_generator(lens_input: bool, seed: int = 0) -> NAFNet:
    torch.manual_seed(seed)
    return non_identity_(NAFNet(**TINY_ARCH, lens_input=lens_input)).eval()


def test_missing_environment_names_the_make_target(tmp_path):
    with pytest.raises(LiteRTTorchUnavailable, match="make venv-litert-torch"):
        litert_torch_python(tmp_path / "no-such-venv")


def test_arch_rebuilds_the_generator():
    """The child gets weights and NAFNet arguments, not code: they must rebuild the same function."""
    gen = _tiny_generator(lens_input=True)
    copy = NAFNet(**nafnet_arch(gen)).eval()
    copy.load_state_dict(gen.state_dict())  # strict: same modules, same shapes
    args = (torch.rand(1, 3, *SIZE), torch.rand(1, 1, *SIZE), torch.tensor([0.5, 20.0, 0.1]).view(1, 3, 1, 1))
    with torch.no_grad():
        assert torch.equal(copy(*args), gen(*args))
    with pytest.raises(ValueError, match="NAFNet"):
        nafnet_arch(nn.Conv2d(4, 3, 3))


@needs_env
@pytest.mark.slow  # ~50 s each on 2 cores: a child process importing torch and litert-torch, three precisions
@pytest.mark.parametrize("lens_input", [pytest.param(True, id="lens"), pytest.param(False, id="depth-only")])
def test_tiny_generator_converts_faithfully(tmp_path, tiny_dataset, lens_input):
    gen = _tiny_generator(lens_input)
    train, val = tiny_dataset / "train", tiny_dataset / "val"
    calib = load_samples(train, SIZE, list_sample_ids(train))
    parity = load_samples(val, SIZE, list_sample_ids(val))
    n_in = 3 if lens_input else 2
    with torch.inference_mode():
        refs = [gen(*(torch.from_numpy(a) for a in s.args()[:n_in])).numpy() for s in parity]

    work = tmp_path / "work"
    files = convert_all_with_litert_torch(gen, SIZE, ("fp32", "fp16", "int8"), work, calib)
    assert list(work.iterdir()) == []  # the scratch folder is gone

    names = ["image", "depth", "lens"][:n_in]
    shapes = {"image": [1, *SIZE, 3], "depth": [1, *SIZE, 1], "lens": [1, 1, 1, 3]}
    for precision, content in files.items():
        insp = inspect_tflite(content)
        check_tflite_structure(precision, insp)  # builtin ops only, rank <= 4, GPU-compatible
        assert insp.op_census.get("TRANSPOSE", 0) <= 2, insp.op_census  # NHWC convs (2 at the input head)
        path = work / f"bokeh_{precision}.tflite"
        path.write_bytes(content)
        runner = TFLiteRunner(path, num_threads=1)
        details = runner.interpreter.get_input_details()
        assert [d["name"].removeprefix("serving_default_") for d in details] == names  # the manifest's order
        assert [list(d["shape"]) for d in details] == [shapes[n] for n in names]
        assert all(d["dtype"] == np.float32 for d in details)  # int8 too: float32 in, float32 out
        assert runner.layout == "NHWC" and runner.lens_input == lens_input
        worst = min(psnr(runner(*s.args()), ref) for s, ref in zip(parity, refs))
        assert worst >= TFLITE_MIN_PSNR_DB[precision], f"{precision}: {worst:.2f} dB"
        # ... and the GPU-run gate, as `python -m export --converter litert-torch` applies it
        device, why = find_vulkan()
        if device is not None:
            run = gate_tflite(path, precision, [s.args() for s in parity], device)
            assert run["status"] == "passed" and run["fully_accelerated"], run
        else:
            warnings.warn(f"GPU-run gate not run: {why}", stacklevel=2)
