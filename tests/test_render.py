"""``python -m eval.render`` / ``eval.render.render``: photo in, bokeh out at the photo's size.

References, none of them the render itself: the input photo (where the lens's blur radius is 0
the output must be the photo, byte for byte; with K = 0 everywhere), the photo's own gradient
energy (the background must lose it), and the render of the upright photo (an EXIF-rotated or
portrait copy must give the same picture, turned). Tiny photos, a classical renderer and a tiny
random NAFNet keep them fast; one test runs the shipped fp16 model on a small photo, which it
upsamples to its 1024x1536 input.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.metrics import detail_kept_in
from eval.render import MAX_PIXELS, main, render, render_photo
from tests.conftest import REFUSED

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "tflite_models" / "nafnet_w8_lens_cpu" / "bokeh_fp16.tflite"
H, W = 96, 144
SIZE = (64, 96)  # the renderer's input: smaller than the photo, so the render scales both ways


def _photo_and_depth(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured photo (H, W, 3) uint8, its disparity (a near disk, 0.9, on a far plane, 0.1) as
    uint16 and the subject mask. The disk covers 18 % of the frame, so auto-focus (90th
    percentile) focuses on it."""
    rng = np.random.default_rng(seed)
    photo = (40 + 175 * rng.random((H, W, 3))).astype(np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    subject = (yy - H / 2) ** 2 + (xx - W / 2) ** 2 < 28**2
    depth = np.where(subject, 0.9, 0.1)
    return photo, (depth * 65535 + 0.5).astype(np.uint16), subject


def _save(folder: Path, name: str, photo: np.ndarray, depth: np.ndarray | None, **save) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    Image.fromarray(photo).save(path, **save)
    if depth is not None:
        Image.fromarray(depth).save(folder / f"{name}.depth.png")
    return path


def _array(img: Image.Image) -> np.ndarray:
    return np.asarray(img, np.float32) / 255.0


def _interior(mask: np.ndarray, margin: int = 3) -> np.ndarray:
    """The mask less a band at its edge, where the near disk's blur overlaps what is beside it."""
    from scipy.ndimage import binary_erosion

    return binary_erosion(mask, iterations=margin)


def test_focused_subject_is_the_photo_and_background_is_blurred(tmp_path):
    photo, depth, subject = _photo_and_depth()
    path = _save(tmp_path, "p", photo, depth)
    out = render_photo(path, model="scatter", size=SIZE)
    assert out.bokeh.size == (W, H)
    result = np.asarray(out.bokeh)
    # the blur radius is 0 on the subject (auto-focus puts it in the sharp band): the photo itself
    assert out.lens.d_f == pytest.approx(1.0)  # min-max normalised: the near disk is at 1
    assert np.array_equal(result[subject], photo[subject])
    background = _interior(~subject)
    kept = detail_kept_in(_array(Image.fromarray(photo)), _array(out.bokeh), background[:-1, :-1])
    assert kept < 0.3, kept

    # tap to focus on the background: now the background is the photo and the subject is blurred
    refocused = np.asarray(render(path, model="scatter", size=SIZE, focus=(0.05, 0.05)))
    assert np.array_equal(refocused[~subject], photo[~subject])
    kept = detail_kept_in(_array(Image.fromarray(photo)), refocused / 255.0, _interior(subject)[:-1, :-1])
    assert kept < 0.3, kept

    # K = 0: no blur anywhere, the photo back
    assert np.array_equal(np.asarray(render(path, model="scatter", size=SIZE, strength=0.0)), photo)


def test_exif_rotated_and_portrait_photos_match_the_upright_render(tmp_path):
    photo, depth, _ = _photo_and_depth()
    upright = np.asarray(render(_save(tmp_path / "a", "p", photo, depth), model="scatter", size=SIZE))

    # the same picture stored sideways with EXIF orientation 6 ("turn 90° clockwise to display"),
    # its depth map of the photo as displayed: the same render, byte for byte
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = np.rot90(photo, 1)  # stored turned 90° counter-clockwise
    path = tmp_path / "b" / "p.png"
    _save(tmp_path / "b", "p", np.ascontiguousarray(sideways), depth, exif=exif)
    assert Image.open(path).size == (H, W)  # stored portrait
    result = render(path, model="scatter", size=SIZE)
    assert result.size == (W, H)
    assert np.array_equal(np.asarray(result), upright)

    # a portrait photo (either way round) with a landscape model input: turned, run, turned back
    for k in (1, -1):
        d = np.ascontiguousarray(np.rot90(depth, k))
        portrait = render(np.ascontiguousarray(np.rot90(photo, k)), d, model="scatter", size=SIZE)
        assert portrait.size == (H, W)
        diff = np.abs(np.asarray(portrait, np.int16) - np.rot90(upright, k).astype(np.int16))
        assert diff.max() <= 2 and diff.mean() < 0.1, (k, diff.max(), diff.mean())


def test_safetensors_checkpoint_runs_at_a_chosen_size(tmp_path):
    import torch

    from training.checkpoint import save_generator_safetensors
    from training.model import NAFNet

    arch = {"width": 4, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1), "lens_input": True}
    gen = NAFNet(**arch)
    torch.nn.init.normal_(gen.ending.weight, std=0.05)  # an untrained NAFNet is the identity: make it not
    ckpt = save_generator_safetensors(tmp_path / "model.safetensors", gen, arch)
    photo, depth, subject = _photo_and_depth()
    _save(tmp_path / "photos", "p", photo, None)
    _save(tmp_path / "depths", "p", depth, None)  # --depth DIR holding <id>.png
    out = tmp_path / "out"
    assert (
        main(
            [
                str(tmp_path / "photos"),
                "--depth",
                str(tmp_path / "depths"),
                "--checkpoint",
                str(ckpt),
                "--size",
                "64x96",
                "--out",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    result = np.asarray(Image.open(out / "p.bokeh.png"))
    assert result.shape == photo.shape
    assert np.array_equal(result[subject], photo[subject])
    assert np.abs(result[_interior(~subject)].astype(int) - photo[_interior(~subject)]).mean() > 1  # the network's


def test_folder_outputs_are_atomic_and_skipped_on_rerun(tmp_path, monkeypatch, capsys):
    """A synthetic sample in the split layout (original/, depth/), as `make demo` writes it."""
    from training import synth

    split = tmp_path / "val"
    for i in range(2):
        pair = synth.make_pair(0, "val", i, 64, 96)
        _save(split / "original", str(i), pair.original, None)
        _save(split / "depth", str(i), pair.depth, None)
    out = tmp_path / "out"
    args = [str(split), "--renderer", "blend", "--size", "64x96", "--out", str(out)]

    # a write that dies before its rename leaves no file under the final name and no temp file
    real_replace = os.replace

    def dies_on_bokeh(src, dst):
        if str(dst).endswith("1.bokeh.png"):
            raise OSError("simulated kill")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_on_bokeh)
    assert main(args) == 2
    assert "1.png: cannot write" in capsys.readouterr().err
    assert not (out / "1.bokeh.png").exists() and not [p for p in out.iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(os, "replace", real_replace)

    assert main(args) == 0
    assert "1 rendered, 1 already done" in capsys.readouterr().out
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{i}{s}" for i in range(2) for s in (".bokeh.png", ".depth.png", ".side_by_side.jpg")]
    for i in range(2):
        assert Image.open(out / f"{i}.bokeh.png").size == (96, 64)
        # the depth written is the depth used: the synthetic map, already in [0, 1]
        written = np.asarray(Image.open(out / f"{i}.depth.png"), np.float64) / 65535
        given = np.asarray(Image.open(split / "depth" / f"{i}.png"), np.float64) / 65535
        given = (given - given.min()) / (given.max() - given.min())
        assert np.abs(written - given).max() < 2e-5
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    assert main(args) == 0
    assert "0 rendered, 2 already done" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert main([*args, "--overwrite"]) == 0
    assert "2 rendered" in capsys.readouterr().out


def test_a_crafted_checkpoint_runs_no_code(tmp_path, capsys, crafted):
    """--checkpoint reads weights only: a pickle that calls exec or os.system is
    refused, in one line, before anything runs."""
    path, marker = crafted
    photo, depth, _ = _photo_and_depth()
    argv = [str(_save(tmp_path, "p", photo, depth)), "--checkpoint", str(path), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists() and len(err.splitlines()) == 1 and str(path) in err and REFUSED in err, err


def test_depth_from_a_depth_model(tmp_path):
    """--depth-model's path: DPT's preprocessing and upsampling to the photo's size, with a stand-in
    network (the real weights are not on a test machine) whose disparity is the image's brightness."""
    import types

    import torch

    from training.depth import DPTPreprocess

    class Brightness(torch.nn.Module):
        def forward(self, pixel_values):
            return types.SimpleNamespace(predicted_depth=pixel_values.mean(1))  # (B, h, w)

    photo, _, _ = _photo_and_depth()
    photo[:, : W // 2] //= 4  # a dark left half: far
    out = render_photo(photo, model="blend", size=SIZE, depth_model=(Brightness(), DPTPreprocess(32, 48)))
    assert out.depth.shape == (H, W) and out.depth.min() == 0.0 and out.depth.max() == 1.0
    assert out.depth[:, : W // 2 - 4].mean() < 0.3 < 0.6 < out.depth[:, W // 2 + 4 :].mean()


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG that claims width x height but holds almost nothing (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str, str]]:
    """name -> (arguments, the file the message names, what it says)."""
    photo, depth, _ = _photo_and_depth()
    good = _save(tmp / "good", "p", photo, depth)
    (tmp / "garbage.jpg").write_bytes(b"this is not a jpeg")
    truncated = tmp / "truncated" / "t.png"
    _save(tmp / "truncated", "t", photo, depth)
    truncated.write_bytes(truncated.read_bytes()[:400])
    no_depth = _save(tmp / "nodepth", "n", photo, None)
    square = _save(tmp / "square", "s", photo, depth[:, :H])
    side = int((MAX_PIXELS * 1.2) ** 0.5)
    _png_header(tmp / "huge.png", side, side)
    (tmp / "a_file").write_text("")
    (tmp / "empty_weights").mkdir()
    return {
        "unreadable": ([str(tmp / "garbage.jpg")], "garbage.jpg", "not a readable image"),
        "truncated": ([str(truncated)], "t.png", "truncated"),
        "missing depth": ([str(no_depth)], "n.png", "pass --depth FILE_OR_DIR"),
        "depth aspect": ([str(square)], "s.depth.png", "aspect ratios differ"),
        "over 50 Mpx": (
            [str(tmp / "huge.png"), "--depth", str(good.with_name("p.depth.png"))],
            "huge.png",
            "over the 50 Mpx limit",
        ),
        "out is a file": ([str(good), "--out", str(tmp / "a_file")], "a_file", "is a file, not a folder"),
        "no such photo": ([str(tmp / "nope.jpg")], "nope.jpg", "no such file"),
        "focus outside": ([str(good), "--focus", "1.5,0.5"], "1.5,0.5", "in [0, 1]"),
        "missing DPT weights": (
            [str(no_depth), "--depth-model", str(tmp / "empty_weights")],
            "empty_weights",
            "not found locally",
        ),
    }


CASES = [
    "unreadable",
    "truncated",
    "missing depth",
    "depth aspect",
    "over 50 Mpx",
    "out is a file",
    "no such photo",
    "focus outside",
    "missing DPT weights",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_line(tmp_path, capsys, case):
    argv, names, says = _bad_inputs(tmp_path)[case]
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "out")]
    assert main([*argv, "--renderer", "blend", "--size", "64x96"]) == 2
    err = capsys.readouterr().err.strip()
    first = err.splitlines()[0]
    assert first.startswith("error: ") and names in first and says in err, err
    if case != "missing DPT weights":  # that one goes on to say how to fetch the weights
        assert len(err.splitlines()) == 1, err


@pytest.mark.slow  # render subprocesses
def test_command_line_error_has_no_traceback(tmp_path):
    """The same, through `python -m eval.render` (what a user runs)."""
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8 not really")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "eval.render",
            str(tmp_path / "garbage.jpg"),
            "--out",
            str(tmp_path / "out"),
            "--renderer",
            "blend",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "garbage.jpg: not a readable image" in run.stderr, run.stderr


def test_shipped_model_renders_a_small_photo(tmp_path):
    """The shipped fp16 model (a fixed 1024x1536 input) on a 96x144 photo, upsampled to it."""
    photo, depth, subject = _photo_and_depth()
    path = _save(tmp_path, "p", photo, depth)
    out = render_photo(path, model=SHIPPED, num_threads=1)
    result = np.asarray(out.bokeh)
    assert result.shape == photo.shape
    assert out.scale == pytest.approx(1024 / 96)
    assert np.array_equal(result[subject], photo[subject])
    kept = detail_kept_in(photo / 255.0, result / 255.0, _interior(~subject)[:-1, :-1])
    assert kept < 0.5, kept
