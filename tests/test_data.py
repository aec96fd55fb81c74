"""Dataset layouts, crops/flips, splits and bad-input handling of ``training.data``.

Images are built so that alignment is checkable by hand: R = x, G = y of the ORIGINAL pixel
(before any crop), the depth map stores x*100 + y in 16 bits, so every output pixel must agree
across image, target and depth.
"""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from training.data import (
    BadSampleError,
    BokehDataModule,
    BokehPairs,
    FolderLayout,
    detect_layout,
    read_depth,
    read_id_list,
    read_image,
    write_depth_png,
)

H, W = 40, 60
SPLITS = Path(__file__).resolve().parents[1] / "training" / "splits"


def coord_image(h: int = H, w: int = W, blue: int = 7) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x, y, np.full_like(x, blue)], -1).astype(np.uint8)


def coord_depth(h: int = H, w: int = W) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 100 + y) / 65535.0).astype(np.float64)


def make_split(folder: Path, ids, ext: str = ".png", depth: bool = True, h: int = H, w: int = W) -> None:
    for sub in ("original", "bokeh"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in ids:
        Image.fromarray(coord_image(h, w, blue=7)).save(folder / "original" / f"{i}{ext}")
        Image.fromarray(coord_image(h, w, blue=200)).save(folder / "bokeh" / f"{i}{ext}")
        if depth:
            write_depth_png(folder / "depth" / f"{i}.png", coord_depth(h, w))


def check_aligned(item: dict) -> None:
    img, tgt, dep = item["image"], item["target"], item["depth"]
    x = torch.round(img[0] * 255)
    y = torch.round(img[1] * 255)
    assert torch.equal(torch.round(tgt[0] * 255), x) and torch.equal(torch.round(tgt[1] * 255), y)
    assert torch.equal(torch.round(dep[0] * 65535), x * 100 + y)


def png_16bit_rgb(path: Path, h: int = 8, w: int = 8) -> None:
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    raw = b"".join(b"\x00" + bytes(w * 6) for _ in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


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


# ----------------------------------------------------------------------------- bad input


def _bad_case(tmp_path: Path, case: str) -> tuple[BokehPairs, str]:
    make_split(tmp_path, [0])
    orig = tmp_path / "original" / "0.png"
    bad = orig.name
    if case == "grayscale":
        Image.fromarray(coord_image()[..., 0]).save(orig)
    elif case == "rgba":
        Image.fromarray(np.dstack([coord_image(), np.full((H, W), 255, np.uint8)])).save(orig)
    elif case == "gray16":
        Image.fromarray(np.zeros((H, W), np.uint16)).save(orig)
    elif case == "rgb16":
        png_16bit_rgb(orig, H, W)
    elif case == "truncated":
        orig.unlink()
        p = tmp_path / "original" / "0.jpg"
        Image.fromarray((np.random.default_rng(0).random((H, W, 3)) * 255).astype(np.uint8)).save(p, quality=90)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        bad = p.name
    elif case == "garbage":
        orig.write_bytes(b"not an image at all")
    elif case == "size_mismatch":
        Image.fromarray(coord_image(H, W - 4)).save(tmp_path / "bokeh" / "0.png")
    elif case == "missing_depth":
        (tmp_path / "depth" / "0.png").unlink()
        bad = str(Path("depth") / "0.png")
    elif case == "missing_target":
        (tmp_path / "bokeh" / "0.png").unlink()
        bad = str(Path("bokeh") / "0.png")
    elif case == "too_small":
        return BokehPairs(detect_layout(tmp_path), ["0"], crop_size=64), bad
    return BokehPairs(detect_layout(tmp_path), ["0"], crop_size=16), bad


REASONS = {
    "grayscale": "mode 'L'",
    "rgba": "mode 'RGBA'",
    "gray16": "mode 'I",
    "rgb16": "16",
    "truncated": "truncated",
    "garbage": "unreadable",
    "size_mismatch": "differs",
    "missing_depth": "depth map missing",
    "missing_target": "does not exist",
    "too_small": "smaller than the 64x64",
}


@pytest.mark.parametrize("case", sorted(REASONS))
def test_bad_input_raises_clear_error_naming_the_file(tmp_path, case):
    ds, bad = _bad_case(tmp_path, case)
    with pytest.raises(BadSampleError) as exc:
        ds[0]
    msg = str(exc.value)
    assert bad in msg and REASONS[case] in msg, msg


def test_skip_mode_replaces_bad_sample_deterministically_and_counts(tmp_path):
    make_split(tmp_path, range(4))
    (tmp_path / "original" / "1.png").write_bytes(b"garbage")
    (tmp_path / "depth" / "2.png").unlink()
    ds = BokehPairs(detect_layout(tmp_path), ["0", "1", "2", "3"], crop_size=16, on_bad_file="skip")
    assert [ds[i]["id"] for i in range(4)] == ["0", "3", "3", "3"]
    assert ds.num_skipped == 2  # each bad file counted once per process
    assert [ds[i]["id"] for i in range(4)] == ["0", "3", "3", "3"]

    dm = BokehDataModule(
        str(tmp_path), val_split=str(tmp_path / "v.txt"), crop_size=16, batch_size=1, num_workers=0, on_bad_file="skip"
    )
    (tmp_path / "v.txt").write_text("0\n")
    batches = list(dm.train_dataloader())
    assert {i for b in batches for i in b["id"]} == {"3"}
    assert dm.num_skipped()["train"] == 2


def test_dataloader_workers_reraise_with_the_file_name(tmp_path):
    make_split(tmp_path, range(4))
    Image.fromarray(coord_image()[..., 0]).save(tmp_path / "original" / "2.png")
    ds = BokehPairs(detect_layout(tmp_path), ["0", "1", "2", "3"], crop_size=16)
    with pytest.raises(Exception) as exc:
        list(DataLoader(ds, batch_size=1, num_workers=2))
    assert str(tmp_path / "original" / "2.png") in str(exc.value)
    assert "mode 'L'" in str(exc.value)


def test_skip_count_is_shared_by_workers(tmp_path):
    make_split(tmp_path, range(4))
    (tmp_path / "original" / "0.png").write_bytes(b"garbage")
    (tmp_path / "original" / "2.png").write_bytes(b"garbage")
    ds = BokehPairs(detect_layout(tmp_path), ["0", "1", "2", "3"], crop_size=16, on_bad_file="skip")
    ids = [i for b in DataLoader(ds, batch_size=1, num_workers=2) for i in b["id"]]
    assert ids == ["1", "1", "3", "3"]
    assert ds.num_skipped == 2  # counted in worker 0 (it draws 0 and 2), read in the main process


def test_read_image_rejects_rgba_and_returns_chw(tmp_path):
    p = tmp_path / "a.png"
    Image.fromarray(coord_image()).save(p)
    img = read_image(p)
    assert img.shape == (3, H, W) and img[0, 0, 59].item() == pytest.approx(59 / 255, abs=1e-7)
    Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(p)
    with pytest.raises(BadSampleError, match="a.png.*RGBA"):
        read_image(p)


def test_layout_files_reports_expected_missing_paths(tmp_path):
    layout = FolderLayout("split", tmp_path / "original", tmp_path / "bokeh", tmp_path / "depth")
    assert layout.files("5") == (
        tmp_path / "original" / "5.png",
        tmp_path / "bokeh" / "5.png",
        tmp_path / "depth" / "5.png",
    )


def test_lens_from_file_csv_or_auto_focus_and_cache_returns_the_same_samples(tmp_path):
    from training.data import BokehPairs, detect_layout
    from training.renderers.lens import LensParams, auto_focus

    make_split(tmp_path, ["0", "1", "2"])
    (tmp_path / "lens").mkdir()
    LensParams(K=12.0, d_f=0.4, dof=0.05).save(tmp_path / "lens" / "0.json")
    csv = tmp_path / "lens.csv"
    csv.write_text("id,d_f,K,dof\n1,0.7,20,0.1\n")
    layout = detect_layout(tmp_path)
    ds = BokehPairs(layout, ["0", "1", "2"], lens=True, lens_csv=csv)
    assert ds[0]["lens"].flatten().tolist() == pytest.approx([0.4, 12.0, 0.05])  # lens/<id>.json
    assert ds[1]["lens"].flatten().tolist() == pytest.approx([0.7, 20.0, 0.1])  # the CSV
    ref = auto_focus(read_depth(tmp_path / "depth" / "2.png"))  # neither: auto-focus on the full, uncropped map
    assert ds[2]["lens"].flatten().tolist() == pytest.approx([ref.d_f, ref.K, ref.dof])
    assert "lens" not in BokehPairs(layout, ["0"])[0]  # the paper's mode reads no lens

    cached = BokehPairs(layout, ["0", "1", "2"], crop_size=None, lens=True, lens_csv=csv, cache=True)
    for i in range(3):
        a, b, again = ds[i], cached[i], cached[i]
        for k in ("image", "target", "lens"):
            torch.testing.assert_close(a[k], b[k])
            torch.testing.assert_close(b[k], again[k])
        torch.testing.assert_close(a["depth"], b["depth"], atol=1e-3, rtol=0)  # float16 in the cache


@pytest.mark.parametrize("row", ["1,1.5,20", "1,0.5", "1,0.5,abc", "1,0.5,20,0.9"])
def test_bad_lens_csv_names_the_file_and_line(tmp_path, row):
    from training.data import read_lens_csv

    csv = tmp_path / "lens.csv"
    csv.write_text(f"id,d_f,K\n{row}\n")
    with pytest.raises(ValueError, match=r"lens.csv:2"):
        read_lens_csv(csv)


def test_check_is_a_gate(tmp_path, capsys):
    """Probe row 6: `python -m training.data --check` exited 0 whatever it found, loaded 16-px crops
    (so an image smaller than the training crop passed) and did nothing without arguments."""
    from tests.conftest import write_pairs
    from training.data.cli import main

    root = tmp_path / "synthetic"
    write_pairs(root / "train", 3, height=64, width=96)
    write_pairs(root / "val", 2, height=64, width=96)
    assert main(["--check", str(root), "--crop-size", "64"]) == 0
    assert "0 bad samples" in capsys.readouterr().out
    # the default is the paper's 1024 crop: 64x96 images are too small for it
    assert main(["--check", str(root)]) == 1
    out = capsys.readouterr()
    assert "3 bad samples" in out.out and "smaller than the 1024x1024" in out.err + out.out  # the 3 training pairs
    (root / "train" / "depth" / "1.png").write_bytes(b"not a png")
    assert main(["--check", str(root), "--crop-size", "64"]) == 1
    assert main([]) == 2 and "--check" in capsys.readouterr().err
    assert main(["--check", str(tmp_path / "nothing")]) == 2


def test_a_decompression_bomb_is_a_bad_sample_before_decoding(tmp_path):
    """Probe row 10: a small PNG that decodes to 100 Mpx was accepted (1.2 GB, ~10 s a read)."""
    from PIL import Image

    from training.data import BadSampleError, read_image

    path = tmp_path / "bomb.png"
    Image.new("RGB", (10000, 10000)).save(path, optimize=True)  # flat: a few hundred KB on disk
    with pytest.raises(BadSampleError, match="100 Mpx"):  # the header check's words, not PIL's
        read_image(path)


# ----------------------------------------------------------------------------- probe row 5


def test_exif_orientation_is_applied_so_a_sideways_phone_jpeg_trains_aligned(tmp_path):
    """Probe row 5: an input stored sideways with EXIF orientation 6 beside an upright ground
    truth was read as stored and trained misaligned. EXIF 6 means "rotate 90° clockwise to view",
    so the file holds the upright picture rotated 90° counter-clockwise (np.rot90 with k=1)."""
    make_split(tmp_path, [0])
    upright = coord_image()
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = np.ascontiguousarray(np.rot90(upright, k=1))  # (W, H, 3): what the camera stored
    (tmp_path / "original" / "0.png").unlink()
    Image.fromarray(sideways).save(tmp_path / "original" / "0.jpg", exif=exif, quality=100, subsampling=0)
    item = BokehPairs(detect_layout(tmp_path), ["0"], crop_size=None)[0]
    # JPEG is lossy: the check is that the rotation is right (error ~1/255), not that bytes match
    err = (item["image"][:2] - item["target"][:2]).abs().mean().item()
    assert item["image"].shape == item["target"].shape and err < 0.01, err


def test_a_depth_map_of_another_size_is_refused_except_pynet_half_resolution(tmp_path):
    """Probe row 5: a half-size depth map (of another image, same aspect) was upscaled and accepted
    in every layout. Only PyNET's documented half-resolution ``original_depth`` may be half."""
    make_split(tmp_path / "split", [0])
    write_depth_png(tmp_path / "split" / "depth" / "0.png", coord_depth(H // 2, W // 2))
    with pytest.raises(BadSampleError, match=r"depth map is 30x20 \(WxH\) but its image is 60x40"):
        BokehPairs(detect_layout(tmp_path / "split"), ["0"], crop_size=16)[0]

    t = tmp_path / "pynet" / "train"
    make_split(t, [0, 1], depth=False)
    (t / "original_depth").mkdir()
    Image.fromarray(np.zeros((H // 2, W // 2), np.uint8)).save(t / "original_depth" / "0.png")
    Image.fromarray(np.zeros((H // 4, W // 4), np.uint8)).save(t / "original_depth" / "1.png")  # a quarter: wrong
    ds = BokehPairs(detect_layout(tmp_path / "pynet"), ["0", "1"], crop_size=16)
    assert ds[0]["depth"].shape == (1, 16, 16)
    with pytest.raises(BadSampleError, match="15x10.*or half that"):
        ds[1]


@pytest.mark.parametrize("names", [("0.png", "0.jpg"), ("0.jpg", "0.JPG")])
def test_two_files_for_one_id_are_a_bad_sample_naming_both(tmp_path, names):
    """Probe row 5: ``1.png`` beside ``1.jpg`` silently picked one of them (the stale one)."""
    make_split(tmp_path, [0])
    (tmp_path / "original" / "0.png").unlink()
    for n in names:
        Image.fromarray(coord_image()).save(tmp_path / "original" / n, format="PNG" if n.endswith("png") else "JPEG")
    if len(list((tmp_path / "original").iterdir())) < len(names):
        pytest.skip("this file system is case-insensitive: 0.jpg and 0.JPG are one file")
    with pytest.raises(BadSampleError) as exc:
        BokehPairs(detect_layout(tmp_path), ["0"], crop_size=16)[0]
    assert all(n in str(exc.value) for n in names) and "more than one file" in str(exc.value)
