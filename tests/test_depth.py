"""``python -m training.depth`` on a tiny randomly initialised DPT saved to a local folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from training.depth import DPTPreprocess, load_dpt, main, run

H, W = 24, 40  # non-square on purpose: the model input is square, the output must not be


@pytest.fixture(scope="module")
def tiny_dpt(tmp_path_factory):
    from transformers import DPTConfig, DPTForDepthEstimation
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    torch.manual_seed(0)
    cfg = DPTConfig(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=8,
        initializer_range=0.5,  # large init so the ReLU head is not all zeros
    )
    folder = tmp_path_factory.mktemp("dpt")
    DPTForDepthEstimation(cfg).eval().save_pretrained(folder)
    # the processor transformers itself would use, with a small square size
    DPTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def write_images(root, n=2, seed=0):
    rng = np.random.default_rng(seed)
    (root / "original").mkdir(parents=True)
    paths = []
    for i in range(n):
        p = root / "original" / f"{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def test_preprocessing_matches_transformers_processor(tiny_dpt):
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    img = Image.fromarray((np.random.default_rng(1).random((H, W, 3)) * 255).astype(np.uint8))
    ref = DPTImageProcessorPil.from_pretrained(tiny_dpt)(images=img, return_tensors="pt")["pixel_values"][0]
    ours = DPTPreprocess.from_json(tiny_dpt / "preprocessor_config.json")(img)
    assert ours.shape == ref.shape == (3, 32, 32)
    assert torch.allclose(ours, ref, atol=1e-4), (ours - ref).abs().max()


def test_default_preprocessing_is_dpt_image_processor_default():
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    img = Image.fromarray((np.random.default_rng(2).random((50, 70, 3)) * 255).astype(np.uint8))
    ref = DPTImageProcessorPil()(images=img, return_tensors="pt")["pixel_values"][0]
    ours = DPTPreprocess()(img)
    assert ours.shape == ref.shape == (3, 384, 384)
    assert torch.allclose(ours, ref, atol=1e-4)


def test_writes_16bit_disparity_bright_is_near_and_skips_done(tiny_dpt, tmp_path):
    data = tmp_path / "data"
    paths = write_images(data / "train") + write_images(data / "val", n=1, seed=5)
    stats = run(data, model=str(tiny_dpt), batch_size=2)
    assert stats["written"] == 3 and stats["already_done"] == 0

    net, _ = load_dpt(str(tiny_dpt))
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    proc = DPTImageProcessorPil.from_pretrained(tiny_dpt)
    for p in paths:
        out = p.parent.parent / "depth" / f"{p.stem}.png"
        png = Image.open(out)
        assert png.mode.startswith("I") and out.read_bytes()[24] == 16  # 16-bit grayscale PNG
        assert png.size == (W, H)
        d = np.asarray(png, dtype=np.float64)
        assert d.min() == 0 and d.max() == 65535  # per-image min-max

        # Independent reference: transformers' own processor + raw model output, resized with PIL.
        # The written map must rise with the model's disparity (bright = near), not fall.
        with torch.no_grad():
            raw = net(**proc(images=Image.open(p).convert("RGB"), return_tensors="pt")).predicted_depth[0].numpy()
        ref = np.asarray(Image.fromarray(raw.astype(np.float32)).resize((W, H), Image.BILINEAR))
        assert np.corrcoef(ref.ravel(), d.ravel())[0, 1] > 0.9

    assert not [f for f in (data / "train" / "depth").iterdir() if f.suffix != ".png"]  # no temp files

    # done files are skipped: a sentinel written over one map survives a second run
    sentinel = data / "train" / "depth" / "0.png"
    Image.fromarray(np.full((H, W), 7, np.uint16)).save(sentinel)
    (data / "train" / "depth" / "1.png").unlink()
    stats = run(data, model=str(tiny_dpt))
    assert stats == {"written": 1, "bad": 0, "already_done": 2}
    assert np.asarray(Image.open(sentinel)).max() == 7
    assert (data / "train" / "depth" / "1.png").exists()


def test_dataset_then_reads_written_depth(tiny_dpt, tmp_path):
    from training.data import BokehPairs, detect_layout

    t = tmp_path / "Training"
    write_images(t, n=1)
    (t / "bokeh").mkdir()
    Image.open(t / "original" / "0.jpg").save(t / "bokeh" / "0.jpg")
    assert main(["--data", str(tmp_path), "--model", str(tiny_dpt)]) == 0
    item = BokehPairs(detect_layout(tmp_path), ["0"], crop_size=16)[0]
    assert item["depth"].shape == (1, 16, 16)


def test_missing_model_names_model_folder_and_download_command(tmp_path, capsys):
    write_images(tmp_path / "d", n=1)
    rc = main(["--data", str(tmp_path / "d"), "--model", "nobody/no-such-dpt-model"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "nobody/no-such-dpt-model" in err and "models--nobody--no-such-dpt-model" in err
    assert "download nobody/no-such-dpt-model --local-dir" in err
    assert not (tmp_path / "d" / "depth").exists()

    rc = main(["--data", str(tmp_path / "d"), "--model", str(tmp_path / "weights" / "dpt")])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path / "weights" / "dpt") in err and "--local-dir" in err


def test_bad_image_is_named(tiny_dpt, tmp_path, capsys):
    write_images(tmp_path / "d", n=1)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "d" / "original" / "9.png")
    assert main(["--data", str(tmp_path / "d"), "--model", str(tiny_dpt)]) == 2
    assert "9.png" in capsys.readouterr().err
    stats = run(tmp_path / "d", model=str(tiny_dpt), skip_bad=True)
    assert stats["bad"] == 1
