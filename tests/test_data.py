"""Dataset layouts, crops/flips and splits of ``training.data``; its handling of bad input is in
test_data_bad_input.py. The images are coordinate-coded (tests/coord_data.py): every output pixel
must agree across image, target and depth.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.coord_data import H, W, check_aligned, make_split
from training.data import (
    BadSampleError,
    BokehDataModule,
    BokehPairs,
    detect_layout,
    read_depth,
    read_id_list,
    write_depth_png,
)

SPLITS = Path(__file__).resolve().parents[1] / "training" / "splits"


# ----------------------------------------------------------------------------- layouts


def test_split_folder_full_image_values_and_centre_crop(tmp_path):
    make_split(tmp_path, [0, 1])
    layout = detect_layout(tmp_path)
    assert layout.kind == "split"
    item = BokehPairs(layout, ["1"], crop_size=None)[0]
    # 40x60 → centre crop to multiples of 16: 32x48, offsets left (60-48)//2 = 6, top (40-32)//2 = 4
    assert (
        item["image"].shape == (3, 32, 48)
        and item["depth"].shape == (1, 32, 48)
        and item["target"].shape == (3, 32, 48)
    )
    assert item["image"].dtype == torch.float32 and item["id"] == "1"
    assert item["image"][0, 0, 0].item() == pytest.approx(6 / 255, abs=1e-7)
    assert item["image"][1, 0, 0].item() == pytest.approx(4 / 255, abs=1e-7)
    assert item["image"][2, 5, 5].item() == pytest.approx(7 / 255, abs=1e-7)
    assert item["target"][2, 5, 5].item() == pytest.approx(200 / 255, abs=1e-7)
    check_aligned(item)


def test_aim2020_layout_jpg_and_depth_from_depth_command_folder(tmp_path):
    t = tmp_path / "Training"
    (t / "original").mkdir(parents=True)
    (t / "bokeh").mkdir()
    rgb = np.full((H, W, 3), (10, 120, 250), np.uint8)
    for i in (0, 1):
        Image.fromarray(rgb).save(t / "original" / f"{i}.jpg", quality=100)
        Image.fromarray(rgb).save(t / "bokeh" / f"{i}.jpg", quality=100)
    write_depth_png(t / "depth" / "0.png", np.full((H, W), 0.25))
    layout = detect_layout(tmp_path)
    assert layout.kind == "aim2020" and layout.depth == t / "depth"
    item = BokehPairs(layout, ["0"], crop_size=32)[0]
    assert item["image"].shape == (3, 32, 32)
    assert torch.allclose(item["image"][:, 3, 3], torch.tensor([10, 120, 250]) / 255.0, atol=3 / 255)  # JPEG
    assert torch.allclose(item["depth"], torch.full((1, 32, 32), round(0.25 * 65535) / 65535), atol=1e-7)
    with pytest.raises(BadSampleError, match=r"depth[/\\]1\.png.*depth map missing"):
        BokehPairs(layout, ["1"], crop_size=32)[0]


def test_pynet_layout_upsamples_half_res_8bit_depth_and_prefers_depth_folder(tmp_path):
    t = tmp_path / "train"
    make_split(t, [0], depth=False)
    (t / "original_depth").mkdir()
    # half resolution horizontal ramp d[j] = 8*j (8-bit)
    ramp = np.tile((np.arange(W // 2) * 8).astype(np.uint8), (H // 2, 1))
    Image.fromarray(ramp).save(t / "original_depth" / "0.png")
    layout = detect_layout(tmp_path)
    assert layout.kind == "pynet" and layout.depth.name == "original_depth"
    d = read_depth(layout.files("0")[2], (H, W))
    assert d.shape == (1, H, W)
    # bilinear, half-pixel centres: full-res x maps to (x + 0.5) / 2 - 0.5 = 4.75 for x = 10
    assert d[0, 7, 10].item() == pytest.approx(4.75 * 8 / 255, abs=1e-6)
    item = BokehPairs(layout, ["0"], crop_size=None)[0]
    assert item["depth"].shape == (1, 32, 48)

    write_depth_png(t / "depth" / "0.png", np.full((H, W), 0.5))
    layout = detect_layout(tmp_path)
    assert layout.kind == "pynet" and layout.depth.name == "depth"
    assert BokehPairs(layout, ["0"])[0]["depth"].mean().item() == pytest.approx(32768 / 65535, abs=1e-6)


def test_depth_png_is_16bit_and_round_trips(tmp_path):
    d = np.random.default_rng(0).random((H, W))
    p = tmp_path / "d.png"
    write_depth_png(p, torch.from_numpy(d)[None])
    assert Image.open(p).mode.startswith("I")
    assert p.read_bytes()[24] == 16  # PNG IHDR bit depth
    back = read_depth(p)
    assert back.shape == (1, H, W)
    assert np.abs(back[0].numpy() - d).max() <= 0.5 / 65535 + 1e-7
    assert list(tmp_path.iterdir()) == [p]  # no temp file left behind


# ----------------------------------------------------------------------------- crops and flips


def test_training_crops_and_flips_are_aligned_across_image_depth_target(tmp_path):
    make_split(tmp_path, [0])
    ds = BokehPairs(detect_layout(tmp_path), ["0"], crop_size=16, flip=True)
    lefts, flipped = set(), set()
    for _ in range(40):
        item = ds[0]
        assert item["image"].shape == (3, 16, 16) and item["depth"].shape == (1, 16, 16)
        check_aligned(item)
        x = torch.round(item["image"][0, 0] * 255)
        is_flipped = bool(x[0] > x[-1])
        assert torch.equal(x, x[0] - torch.arange(16)) if is_flipped else torch.equal(x, x[0] + torch.arange(16))
        flipped.add(is_flipped)
        lefts.add(int(x.min()))
    assert flipped == {True, False}
    assert len(lefts) > 5  # random positions


def test_no_flip_when_disabled(tmp_path):
    make_split(tmp_path, [0])
    ds = BokehPairs(detect_layout(tmp_path), ["0"], crop_size=16, flip=False)
    for _ in range(20):
        x = ds[0]["image"][0, 0]
        assert x[0] < x[-1]


# ----------------------------------------------------------------------------- splits


def test_val200_file_is_the_documented_seeded_draw():
    ids = read_id_list(SPLITS / "val200.txt")
    assert len(ids) == 200 and len(set(ids)) == 200
    nums = [int(i) for i in ids]
    assert all(0 <= n < 4400 for n in nums)
    assert not set(nums) & set(range(4400, 4694))  # disjoint from Val294
    header = (SPLITS / "val200.txt").read_text().splitlines()[0]
    assert header.startswith("#") and "Random(2022)" in header
    assert nums == sorted(random.Random(2022).sample(range(4400), 200))


def ebb_root(tmp_path: Path, ids) -> Path:
    make_split(tmp_path / "Training", ids, ext=".jpg")
    return tmp_path


def test_datamodule_val200_val294_and_exclude_list(tmp_path):
    v200 = read_id_list(SPLITS / "val200.txt")[:3]
    others = [str(i) for i in range(4400) if str(i) not in set(read_id_list(SPLITS / "val200.txt"))][:3]
    ids = v200 + others + ["4400", "4401"]
    root = ebb_root(tmp_path, ids)

    dm = BokehDataModule(str(root), val_split="auto", crop_size=16, num_workers=0)
    dm.setup()
    assert sorted(dm.val_set.ids) == sorted(v200)
    assert sorted(dm.train_set.ids) == sorted(others + ["4400", "4401"])

    dm = BokehDataModule(str(root), val_split="val294", crop_size=16, num_workers=0)
    dm.setup()
    assert dm.val_set.ids == ["4400", "4401"] and sorted(dm.train_set.ids) == sorted(v200 + others)

    excl = tmp_path / "excl.txt"
    excl.write_text(f"# pruned\n{others[0]}  # misaligned\n\n{v200[1]}\n")
    dm = BokehDataModule(str(root), val_split="val200", exclude_list=str(excl), crop_size=16, num_workers=0)
    dm.setup()
    assert sorted(dm.val_set.ids) == sorted([v200[0], v200[2]])
    assert others[0] not in dm.train_set.ids and v200[1] not in dm.train_set.ids
    assert len(dm.train_set) == 4

    ids_file = tmp_path / "myval.txt"
    ids_file.write_text(f"{others[1]}\n")
    dm = BokehDataModule(str(root), val_split=str(ids_file), crop_size=16, num_workers=0)
    dm.setup()
    assert dm.val_set.ids == [others[1]]


def test_example_exclude_list_is_empty():
    assert read_id_list(SPLITS / "exclude_example.txt") == []


def test_datamodule_synthetic_folders_loaders(tmp_path):
    make_split(tmp_path / "train", range(5))
    make_split(tmp_path / "val", range(3))
    dm = BokehDataModule(
        str(tmp_path), crop_size=16, batch_size=2, num_workers=0, max_train_samples=4, max_val_samples=2, val_crop=32
    )
    batches = list(dm.train_dataloader())
    assert len(batches) == 2  # 4 samples, batch 2, drop_last
    b = batches[0]
    assert (
        b["image"].shape == (2, 3, 16, 16)
        and b["depth"].shape == (2, 1, 16, 16)
        and b["target"].shape == (2, 3, 16, 16)
    )
    assert isinstance(b["id"], list) and all(isinstance(i, str) for i in b["id"])
    assert sorted(dm.train_set.ids) == ["0", "1", "2", "3"]
    val = list(dm.val_dataloader())
    assert [v["id"] for v in val] == [["0"], ["1"]]
    assert val[0]["image"].shape == (1, 3, 32, 32)
    assert len(list(dm.test_dataloader())) == 2


def test_datamodule_missing_root_says_how_to_make_data(tmp_path):
    dm = BokehDataModule(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"nope.*training\.synth"):
        dm.setup()
