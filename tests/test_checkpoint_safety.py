"""Model files a user may have received: loading one must not run its code,
and the generator also travels as ``model.safetensors``, which has no code to run.

A checkpoint is a pickle, and a pickle can call any function while it loads. The crafted files
below call ``exec`` (or ``os.system``) to create a marker file; every entry point that loads a checkpoint is given
one, as a zip checkpoint (``torch.save``'s default) and as a bare pickle (the legacy format).
"""

import json
from pathlib import Path

import pytest
import torch

from common.hashing import file_sha256
from tests.conftest import QUICK, REFUSED, REPO, STAGE1, STAGE2, tiny_fit_args
from training.checkpoint import (
    SAFETENSORS_NAME,
    UntrustedCheckpointError,
    load_generator,
    save_generator_safetensors,
)
from training.model import NAFNet

TINY_ARCH = {
    "width": 4,
    "enc_blocks": (1, 1),
    "middle_blocks": 1,
    "dec_blocks": (1, 1),
    "lens_input": False,
    "blur_prior": False,
}


def _assert_refused(text: str, path: Path, marker: Path) -> None:
    assert not marker.exists(), "the crafted checkpoint ran its code"
    assert str(path) in text and REFUSED in text, text[-2000:]


def test_the_crafted_checkpoint_does_run_code_when_unpickled(crafted):
    # The control: the payload is live, so the tests below prove that the loaders refuse it.
    path, marker = crafted
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_generator_refuses_it(crafted):
    path, marker = crafted
    with pytest.raises(UntrustedCheckpointError) as e:
        load_generator(path)
    _assert_refused(str(e.value), path, marker)
    # Names what the file asked for (os.system pickles as posix.system on Linux).
    asked = "`posix.system`" if path.stem.endswith("os_system") else "`exec`"
    assert asked in str(e.value)


def test_export_refuses_it(crafted, tmp_path, capsys):
    from export.__main__ import main

    path, marker = crafted
    assert main(["--checkpoint", str(path), "--size", "64x64", "--out", str(tmp_path / "model")]) == 2
    _assert_refused(capsys.readouterr().err, path, marker)
    assert not (tmp_path / "model").exists()


def test_eval_refuses_it(crafted, tiny_dataset, tmp_path, capsys):
    from eval.evaluate import main

    path, marker = crafted
    assert main(["--data", str(tiny_dataset), "--checkpoint", str(path), "--out", str(tmp_path / "eval")]) == 2
    _assert_refused(capsys.readouterr().err, path, marker)


@pytest.mark.parametrize("entry", ["eval.photos", "eval.controls"])
def test_photo_commands_refuse_it(entry, crafted, tiny_dataset, tmp_path):
    import importlib

    path, marker = crafted
    argv = {
        "eval.photos": ["--model", str(path), "--photos", str(tmp_path), "--out", str(tmp_path / "out")],
        "eval.controls": ["--model", str(path), "--data", str(tiny_dataset / "val"), "--out", str(tmp_path / "c.png")],
    }
    with pytest.raises(UntrustedCheckpointError) as e:
        importlib.import_module(entry).main(argv[entry])
    _assert_refused(str(e.value), path, marker)


def test_benchmark_worker_refuses_it(crafted):
    # `python -m eval.benchmark --checkpoint` loads each model in a worker process (--serve).
    from eval.benchmark import Timing, Worker

    path, marker = crafted
    with pytest.raises(RuntimeError) as e:
        Worker(path, Timing((64, 64), threads=1, warmup=0, spin=False))
    _assert_refused(str(e.value), path, marker)


@pytest.mark.parametrize("stage", [STAGE1, STAGE2])
def test_init_generator_refuses_it(stage, crafted, tiny_dataset, tmp_path):
    from training.__main__ import main

    path, marker = crafted
    with pytest.raises(UntrustedCheckpointError) as e:
        main(
            [
                "fit",
                "--config",
                stage,
                "--config",
                QUICK,
                "--model.init_generator",
                str(path),
                "--data.root",
                str(tiny_dataset),
                "--trainer.logger.init_args.save_dir",
                str(tmp_path / "runs"),
            ]
        )
    _assert_refused(str(e.value), path, marker)


def test_unreadable_files_are_not_called_unsafe(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable") as e:
        load_generator(junk)
    assert str(junk) in str(e.value) and not isinstance(e.value, UntrustedCheckpointError)
    bad = tmp_path / SAFETENSORS_NAME
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match="not a readable safetensors file") as e:
        load_generator(bad)
    assert str(bad) in str(e.value)


# ---------------------------------------------------------------------------- model.safetensors
def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_safetensors_round_trip_and_every_loader_reads_it(tmp_path):
    from export.runtime import load_runner

    gen = NAFNet(**TINY_ARCH)
    torch.nn.init.normal_(gen.ending.weight)  # non-zero output, so the runner comparison means something
    config = {"model": {"width": 4}, "trainer": {"max_epochs": 1}}
    path = save_generator_safetensors(
        tmp_path / SAFETENSORS_NAME,
        gen,
        TINY_ARCH,
        config,
        source={"checkpoint": "best.ckpt", "checkpoint_sha256": "0" * 64},
    )
    ck = load_generator(path)
    assert _same_weights(ck.generator, gen) and ck.arch == TINY_ARCH and ck.config == config
    assert ck.sha256 == file_sha256(path)
    # Byte-identical on a second write: a manifest citing its sha256 does not change for nothing.
    again = save_generator_safetensors(
        tmp_path / "again.safetensors",
        gen,
        TINY_ARCH,
        config,
        source={"checkpoint": "best.ckpt", "checkpoint_sha256": "0" * 64},
    )
    assert file_sha256(again) == ck.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.safetensors", SAFETENSORS_NAME]  # no temp file left

    image, depth = torch.rand(1, 3, 32, 48), torch.rand(1, 1, 32, 48)
    with torch.inference_mode():
        want = gen(image, depth).numpy()
    got = load_runner(path, num_threads=1)(image.numpy(), depth.numpy())
    assert abs(got - want).max() < 1e-6


def test_safetensors_writer_refuses_an_arch_that_does_not_describe_the_weights(tmp_path):
    with pytest.raises(ValueError, match="do not match"):
        save_generator_safetensors(tmp_path / SAFETENSORS_NAME, NAFNet(**TINY_ARCH), {**TINY_ARCH, "width": 8})
    assert not list(tmp_path.iterdir())


def test_training_writes_safetensors_beside_best_and_its_checkpoints_load_weights_only(tiny_dataset, tmp_path):
    from training.__main__ import main
    from training.module import BokehGAN

    out = tmp_path / "runs"

    def fit(config, *extra):
        return main(tiny_fit_args(config, tiny_dataset, out, *extra))

    fit(STAGE1)
    d1 = out / "stage1" / "checkpoints"
    st1 = d1 / SAFETENSORS_NAME
    assert sorted(p.name for p in d1.iterdir()) == ["best.ckpt", "last.ckpt", SAFETENSORS_NAME]  # no temp file left
    best, mirror = load_generator(d1 / "best.ckpt"), load_generator(st1)
    assert _same_weights(best.generator, mirror.generator)
    assert (mirror.arch, mirror.config) == (best.arch, best.config) and mirror.config["model"]["width"] == 4
    from safetensors import safe_open

    with safe_open(str(st1), "pt") as f:
        assert json.loads(f.metadata()["source"]) == {"checkpoint": "best.ckpt", "checkpoint_sha256": best.sha256}

    # Stage 2 starts from the safetensors file, as it would from best.ckpt.
    stage2_start = BokehGAN(
        width=4, enc_blocks=(1, 1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1, 1), init_generator=str(st1)
    )
    assert _same_weights(stage2_start.generator, best.generator)
    fit(STAGE2, "--model.init_generator", str(st1), "--model.vgg_weight", "0", "--trainer.max_steps", "8")
    d2 = out / "stage2" / "checkpoints"
    assert _same_weights(load_generator(d2 / SAFETENSORS_NAME).generator, load_generator(d2 / "best.ckpt").generator)

    # What the project's checkpoints hold loads with torch's weights-only defaults, nothing allowlisted
    # (training/checkpoint.py relies on it); stage 2 adds the critics and a second optimiser.
    for ckpt in (d1 / "best.ckpt", d1 / "last.ckpt", d2 / "best.ckpt", d2 / "last.ckpt"):
        assert "state_dict" in torch.load(ckpt, weights_only=True)

    # Lightning's own resume (--ckpt_path) still works beside the callback.
    resumed = fit(STAGE1, "--ckpt_path", str(d1 / "last.ckpt"), "--trainer.max_steps", "6")
    assert resumed.trainer.global_step == 6


SHIPPED = REPO / "tflite_models" / "nafnet_w8_lens_cpu"


@pytest.mark.skipif(not (SHIPPED / SAFETENSORS_NAME).is_file(), reason="shipped model.safetensors absent")
def test_shipped_safetensors_is_the_shipped_generator():
    st = load_generator(SHIPPED / SAFETENSORS_NAME)
    assert st.arch == {
        "width": 8,
        "enc_blocks": (2, 2, 2, 20),
        "middle_blocks": 2,
        "dec_blocks": (2, 2, 2, 2),
        "lens_input": True,
        "blur_prior": True,
    }
    assert st.config["model"]["lens_input"] is True and st.config["model"]["blur_prior"] is True
    if (SHIPPED / "generator.pt").is_file():
        pt = load_generator(SHIPPED / "generator.pt")
        assert _same_weights(st.generator, pt.generator) and st.config == pt.config
