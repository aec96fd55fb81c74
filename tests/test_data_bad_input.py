"""Bad input to ``training.data``: every kind of broken sample raises an error that names the
file (or is skipped and counted), the ``--check`` gate, and probe row 5's misread inputs.
The images are coordinate-coded (tests/coord_data.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from tests.coord_data import H, W, coord_depth, coord_image, make_split, png_16bit_rgb
from training.data import (
    BadSampleError,
    BokehDataModule,
    BokehPairs,
    FolderLayout,
    detect_layout,
    read_depth,
    read_image,
    write_depth_png,
)


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
