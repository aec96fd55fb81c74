"""The shipped lens-conditioned model (tflite_models/nafnet_w8_lens_cpu) on a synthetic scene it was
not trained on: its controls do what they say, as the ground-truth renderer does.

Reference: the same scene's own lens and the ground-truth renderer's behaviour (a sharper
background when the focus moves to it, more blur with a larger K), measured with the same
``detail_kept`` the real-photo check uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.metrics import detail_kept_in
from export.manifest import read_manifest
from export.runtime import load_runner

MODEL_DIR = Path(__file__).resolve().parents[1] / "tflite_models" / "nafnet_w8_lens_cpu"


@pytest.fixture(scope="module")
def scene():
    import torch

    from training import synth

    torch.set_num_threads(2)
    # seed 12345: not the seed of the training data (11), so an unseen scene
    pair = synth.make_pair(12345, "val", 0, 1024, 1536)
    image = (pair.original.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    depth = (pair.depth.astype(np.float32) / 65535.0)[None, None]
    return image, depth, pair.lens


@pytest.fixture(scope="module")
def runner():
    return load_runner(MODEL_DIR / "bokeh_fp16.tflite")


def _kept(runner, image, depth, lens, masks):
    out = runner(image, depth, np.array(lens, np.float32))
    return [detail_kept_in(image[0].transpose(1, 2, 0), out[0].transpose(1, 2, 0), m) for m in masks]


def test_manifest_documents_the_lens_input():
    manifest = read_manifest(MODEL_DIR)
    lens = manifest["inputs"][2]
    assert lens["name"] == "lens" and lens["values"] == ["d_f", "K", "dof"]
    assert set(manifest["variants"]) == {"fp16", "int8"}
    for v in manifest["variants"].values():
        assert v["flex_ops"] == [] and v["max_tensor_rank"] <= 4 and v["gpu_compatible"]


def test_focus_and_strength_control_the_blur(runner, scene):
    image, depth, lens = scene
    d = depth[0, 0]
    subject_d = lens.d_f  # make_pair without refocusing focuses on the scene's subject
    subject = np.abs(d - subject_d) < 0.03  # the subject object itself
    background = d < subject_d - 0.4  # far behind it
    assert subject.mean() > 0.01 and background.mean() > 0.05
    masks = (subject, background)
    fg_near, bg_near = _kept(runner, image, depth, (subject_d, lens.K, 0.1), masks)
    fg_far, bg_far = _kept(runner, image, depth, (float(np.quantile(d, 0.05)), lens.K, 0.1), masks)
    fg_strong, bg_strong = _kept(runner, image, depth, (subject_d, 2 * lens.K, 0.1), masks)
    # focused on the subject: background blurred, subject kept
    assert bg_near < 0.6 and fg_near > 0.8, (bg_near, fg_near)
    # focus moved to the background: the background sharper, the subject blurrier
    assert bg_far > bg_near + 0.2 and fg_far < fg_near - 0.2, (bg_far, bg_near, fg_far, fg_near)
    # a stronger lens blurs the background more
    assert bg_strong < bg_near - 0.03, (bg_strong, bg_near)
    # K = 0 is no blur at all: the photo back
    fg_none, bg_none = _kept(runner, image, depth, (subject_d, 0.0, 0.0), masks)
    assert bg_none > 0.9 and fg_none > 0.9, (bg_none, fg_none)


@pytest.mark.slow  # 1024x1536 on the software Vulkan device; .ci/run also runs it
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_shipped_files_run_fully_on_the_gpu_accelerator(scene, precision):
    """The GPU-run gate on the shipped files, on an unseen synthetic scene at 1024x1536: every op on
    LiteRT's GPU accelerator, output within the gate's budget of the CPU interpreter's."""
    from export.gpu_run import GPU_RUN_MIN_PSNR_DB, find_vulkan, gate_tflite

    device, why = find_vulkan()
    if device is None:
        pytest.skip(why)
    image, depth, lens = scene
    entry = gate_tflite(
        MODEL_DIR / f"bokeh_{precision}.tflite", precision, [(image, depth, lens.network_input())], device
    )
    assert entry["status"] == "passed" and entry["fully_accelerated"]
    assert entry["psnr_db_vs_cpu"] >= GPU_RUN_MIN_PSNR_DB[precision]
    # the manifest's record is of the same kind of run
    recorded = read_manifest(MODEL_DIR)["variants"][precision]["gpu_run"]
    assert recorded["status"] == "passed" and recorded["fully_accelerated"]
