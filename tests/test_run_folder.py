"""One run per run folder, --ckpt_path that resumes without reconfiguring, and unreadable checkpoints
named in one line (training/run_folder.py, training/__main__.py, training/resume.py)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO, STAGE1, STAGE2, tiny_fit_args, write_pairs
from training.__main__ import main


def _args(config, root, out, *extra):
    return tiny_fit_args(config, root, out, *extra, max_steps=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_pairs(root / "train", 4, seed=1)
    write_pairs(root / "val", 2, seed=2)
    return root


@pytest.fixture(scope="module")
def stage1_run(data, tmp_path_factory):
    """A finished 2-step stage-1 run: (runs folder, its checkpoints folder)."""
    out = tmp_path_factory.mktemp("runs")
    main(_args(STAGE1, data, out))
    return out, out / "stage1" / "checkpoints"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_fresh_run_into_a_used_folder_stops_and_leaves_it_alone(data, stage1_run, tmp_path):
    out, ckpts = stage1_run
    before = _snapshot(out / "stage1")
    from training.run_folder import RunFolderError

    with pytest.raises(RunFolderError) as e:
        main(_args(STAGE1, data, out))
    msg = str(e.value)
    assert str(out / "stage1") in msg and "checkpoints/best.ckpt" in msg and "metrics.csv" in msg
    assert f"--ckpt_path {ckpts / 'last.ckpt'}" in msg and "--overwrite true" in msg
    # Nothing was written: no last-v1.ckpt, best.ckpt and metrics.csv byte for byte as they were.
    assert _snapshot(out / "stage1") == before


def test_overwrite_starts_again_and_is_not_saved_in_the_config(data, tmp_path):
    out = tmp_path / "runs"
    main(_args(STAGE1, data, out, "--trainer.max_steps", "4"))
    run = out / "stage1"
    (run / "notes.txt").write_text("mine")  # not a run output: must survive --overwrite
    (run / "checkpoints" / "last-v1.ckpt").write_bytes(b"stale")
    cli = main(_args(STAGE1, data, out, "--overwrite", "true"))
    assert cli.trainer.global_step == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt", "model.safetensors"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert (run / "notes.txt").read_text() == "mine"
    with open(run / "metrics.csv") as f:
        assert max(int(r["step"]) for r in csv.DictReader(f)) < 2  # only the new run's rows (the old reached 3)
    # A config.yaml that said overwrite: true would delete its own run when reused for a fresh run.
    assert yaml.safe_load((run / "config.yaml").read_text())["overwrite"] is False
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["config"]["overwrite"] is False


@pytest.mark.slow  # two training commands
def test_resume_keeps_the_metrics_history(data, tmp_path):
    """Killed at step 5 with last.ckpt at step 4, resumed to step 6: metrics.csv has the rows an
    uninterrupted run has (the killed run's rows before step 4, the resumed run's from step 4)."""
    out, log = tmp_path / "runs", tmp_path / "steps.log"
    env = {**os.environ, "BOKEH_STEP_LOG": str(log)}
    base = [
        sys.executable,
        "-m",
        "training",
        *_args(
            STAGE1,
            data,
            out,
            "--trainer.max_steps",
            "6",
            "--trainer.log_every_n_steps",
            "1",
            "--trainer.callbacks.init_args.every_n_train_steps",
            "2",
        ),
    ]
    killed = subprocess.run(
        [*base, "--trainer.callbacks+=tests.kill_callback.KillAtStep", "--trainer.callbacks.init_args.step", "5"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == 137, killed.stderr[-3000:]
    metrics = out / "stage1" / "metrics.csv"
    with open(metrics) as f:
        before = [r for r in csv.DictReader(f)]
    assert before, "the killed run logged nothing"
    last = out / "stage1" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 4
    resumed = subprocess.run([*base, "--ckpt_path", str(last)], env=env, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with open(metrics) as f:
        after = [r for r in csv.DictReader(f)]
    # The reference: the same command, never killed.
    ref_out = tmp_path / "ref"
    main(_args(STAGE1, data, ref_out, "--trainer.max_steps", "6", "--trainer.log_every_n_steps", "1"))
    with open(ref_out / "stage1" / "metrics.csv") as f:
        reference = [r for r in csv.DictReader(f)]

    def rows(rs):
        return sorted(
            (int(r["step"]), tuple(sorted(k for k, v in r.items() if v and k not in ("step", "epoch")))) for r in rs
        )

    assert rows(after) == rows(reference)
    # The rows before the checkpoint's step are the killed run's own, untouched.
    kept = [r for r in before if int(r["step"]) < 4]
    assert kept and [r for r in after if int(r["step"]) < 4] == kept


def test_ckpt_path_of_another_stage_is_refused(data, stage1_run, tmp_path):
    from training.resume import ResumeMismatchError

    _, ckpts = stage1_run
    with pytest.raises(ResumeMismatchError) as e:
        main(
            _args(
                STAGE2,
                data,
                tmp_path / "runs",
                "--model.vgg_weight",
                "0",
                "--model.init_generator",
                "null",
                "--ckpt_path",
                str(ckpts / "last.ckpt"),
            )
        )
    msg = str(e.value)
    assert str(ckpts / "last.ckpt") in msg
    assert "model.adv_weight=0.0 (config: 1.0)" in msg and "stage-1 checkpoint" in msg
    assert f"--model.init_generator {ckpts / 'last.ckpt'}" in msg
    assert not (tmp_path / "runs" / "stage2" / "checkpoints").exists()  # nothing trained


def test_ckpt_path_with_another_width_is_refused(data, stage1_run, tmp_path):
    from training.resume import ResumeMismatchError

    _, ckpts = stage1_run
    with pytest.raises(ResumeMismatchError, match=r"model\.width=4 \(config: 8\)"):
        main(_args(STAGE1, data, tmp_path / "runs", "--model.width", "8", "--ckpt_path", str(ckpts / "last.ckpt")))


def test_ckpt_path_may_change_a_speed_lever(data, stage1_run, tmp_path):
    """channels_last changes how a step runs, not what it computes: a resume may change it, and the
    config's value (not the checkpoint's) is the one used."""
    _, ckpts = stage1_run
    cli = main(
        _args(
            STAGE1,
            data,
            tmp_path / "runs",
            "--trainer.max_steps",
            "3",
            "--model.channels_last",
            "true",
            "--ckpt_path",
            str(ckpts / "last.ckpt"),
        )
    )
    assert cli.trainer.global_step == 3 and cli.model.hparams.channels_last is True


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"], ids=["empty", "truncated"])
def test_unreadable_ckpt_path_is_one_line_naming_the_file(data, stage1_run, tmp_path, content):
    from training.checkpoint_io import CheckpointFileError

    _, ckpts = stage1_run
    bad = tmp_path / "last.ckpt"
    if content:
        bad.write_bytes((ckpts / "last.ckpt").read_bytes()[:4096])
    else:
        bad.write_bytes(b"")
    with pytest.raises(CheckpointFileError, match=str(bad)):
        main(_args(STAGE1, data, tmp_path / "runs", "--ckpt_path", str(bad)))


@pytest.mark.slow  # several training commands
def test_command_line_errors_are_one_line(data, stage1_run, tmp_path):
    """`python -m training` ends a refused run with one "error:" line and exit status 2."""
    out, _ = stage1_run
    empty = tmp_path / "last.ckpt"
    empty.write_bytes(b"")
    for extra, expect in (
        (["--trainer.logger.init_args.save_dir", str(out)], "already holds a run"),
        (
            ["--trainer.logger.init_args.save_dir", str(tmp_path / "r"), "--ckpt_path", str(empty)],
            f"{empty}: empty checkpoint file",
        ),
    ):
        args = _args(STAGE1, data, out)
        p = subprocess.run([sys.executable, "-m", "training", *args, *extra], cwd=REPO, capture_output=True, text=True)
        assert p.returncode == 2, p.stderr[-2000:]
        last = p.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and expect in last, p.stderr[-2000:]
        assert "Traceback" not in p.stderr


def test_ckpt_path_last_resumes_the_folders_run_or_starts_one(data, tmp_path):
    """`--ckpt_path last` is the set-and-forget resume of a requeued job (docs/gpu_training.md): it
    starts a run in an empty folder and resumes the folder's last.ckpt when there is one."""
    out = tmp_path / "runs"
    cli = main(_args(STAGE1, data, out, "--ckpt_path", "last"))
    assert cli.trainer.global_step == 2
    cli = main(_args(STAGE1, data, out, "--ckpt_path", "last", "--trainer.max_steps", "3"))
    assert cli.trainer.global_step == 3
    assert torch.load(out / "stage1/checkpoints/last.ckpt", weights_only=True)["global_step"] == 3
