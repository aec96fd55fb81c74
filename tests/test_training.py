"""The two Lightning stages, run for real from the shipped YAML configs, shrunk to CPU size."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import LENS, QUICK, REFUSED, REPO, STAGE1, STAGE2, TINY_CLI, CodePayload, tiny_fit_args
from tests.kill_callback import RecordStartGenerator
from training.__main__ import main


def _print_config(config: str, capsys) -> dict:
    with pytest.raises(SystemExit):
        main(["fit", "--config", config, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


def test_print_config_stage1_has_the_papers_numbers(capsys):
    cfg = _print_config(STAGE1, capsys)
    m, d, t = cfg["model"], cfg["data"], cfg["trainer"]
    # Bokeh-Loss GAN §4.1 and eq. 4, typed from the paper.
    assert (m["lr"], tuple(m["betas"])) == (1e-4, (0.0, 0.9))
    assert (d["batch_size"], d["crop_size"], t["max_epochs"]) == (2, 1024, 60)
    assert (m["l1_weight"], m["ssim_weight"], m["edge_diff_weight"], m["back_blur_weight"], m["fore_edge_weight"]) == (
        0.5,
        0.05,
        0.005,
        0.1,
        0.005,
    )
    assert (m["vgg_weight"], m["adv_weight"]) == (0.0, 0.0)
    assert (m["width"], tuple(m["enc_blocks"]), m["middle_blocks"], tuple(m["dec_blocks"])) == (
        8,
        (2, 2, 2, 20),
        2,
        (2, 2, 2, 2),
    )


def test_print_config_stage2_has_the_papers_numbers(capsys):
    cfg = _print_config(STAGE2, capsys)
    m, d, t = cfg["model"], cfg["data"], cfg["trainer"]
    # §4.1, §3.3 and eq. 5.
    assert (m["lr"], m["disc_lr"], tuple(m["betas"])) == (1e-4, 1e-4, (0.0, 0.9))
    assert (d["batch_size"], d["crop_size"], t["max_epochs"]) == (2, 1024, 60)
    assert (m["l1_weight"], m["vgg_weight"], m["ssim_weight"], m["adv_weight"]) == (0.5, 0.1, 0.05, 1.0)
    assert (tuple(m["disc_depths"]), m["gp_weight"]) == ((3, 5), 1.0)
    assert m["edge_diff_weight"] == m["back_blur_weight"] == m["fore_edge_weight"] == 0.0
    assert m["init_generator"].endswith("stage1/checkpoints/best.ckpt")


def _fit(config, root, out, *extra):
    return main(tiny_fit_args(config, root, out, *extra))


def test_both_stages_fit_from_the_shipped_configs(tiny_dataset, tmp_path):
    out = tmp_path / "runs"
    cli1 = _fit(STAGE1, tiny_dataset, out)
    assert cli1.trainer.global_step == 4
    ckpt_dir = out / "stage1" / "checkpoints"
    assert (ckpt_dir / "best.ckpt").is_file() and (ckpt_dir / "last.ckpt").is_file()
    assert (out / "stage1" / "config.yaml").is_file()  # resolved config next to the checkpoints
    ckpt = torch.load(ckpt_dir / "best.ckpt", weights_only=True)
    assert ckpt["config"]["model"]["l1_weight"] == 0.5  # ...and inside each checkpoint
    logged = cli1.trainer.logged_metrics
    for key in (
        "train/l1",
        "train/ssim",
        "train/fore_edge",
        "train/edge_diff",
        "train/back_blur",
        "val/psnr",
        "val/ssim",
        "val/l1",
    ):
        assert key in logged, key
    assert list((out / "stage1" / "samples").glob("*.png"))

    cli2 = _fit(
        STAGE2,
        tiny_dataset,
        out,
        "--model.init_generator",
        str(ckpt_dir / "best.ckpt"),
        "--model.vgg_weight",
        "0",
        # Manual optimisation counts a generator and a critic step per batch: 8 = 4 batches.
        "--trainer.max_steps",
        "8",
        "--trainer.callbacks+=tests.kill_callback.RecordStartGenerator",
    )
    # Stage 2 started from the stage-1 generator, not from scratch: the generator the stage-2 run
    # held at its first step is, tensor for tensor, the one in stage 1's best checkpoint...
    s1 = {k.removeprefix("generator."): v for k, v in ckpt["state_dict"].items() if k.startswith("generator.")}
    (start,) = [c for c in cli2.trainer.callbacks if isinstance(c, RecordStartGenerator)]
    assert start.weights is not None and start.weights.keys() == s1.keys()
    for k, v in s1.items():
        torch.testing.assert_close(start.weights[k], v, rtol=0, atol=0, msg=k)
    # ...which a from-scratch generator is not (so the comparison above can fail), and stage 2 trained it.
    from training.module import BokehGAN

    scratch = BokehGAN(width=4, enc_blocks=(1, 1, 1, 1), dec_blocks=(1, 1, 1, 1), middle_blocks=1).generator
    assert any(not torch.equal(v, s1[k]) for k, v in scratch.state_dict().items())
    assert any(not torch.equal(v, s1[k]) for k, v in cli2.model.generator.state_dict().items())
    logged = cli2.trainer.logged_metrics
    for key in ("train/l1", "train/ssim", "train/g_adv", "train/d_wgan", "train/gp", "val/psnr"):
        assert key in logged, key
    assert "train/vgg" not in logged and "train/fore_edge" not in logged
    assert cli2.model.discriminator is not None


def test_vgg_term_without_weights_names_the_file(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.delenv("BOKEH_VGG19_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth"):
        from training.module import BokehGAN

        BokehGAN(width=4, enc_blocks=(1, 1, 1, 1), dec_blocks=(1, 1, 1, 1), middle_blocks=1, vgg_weight=0.1)


def test_every_parameter_of_generator_and_both_critics_gets_a_gradient():
    from training.losses import critic_loss, generator_adversarial_loss, gradient_penalty
    from training.module import BokehGAN

    m = BokehGAN(
        width=4,
        enc_blocks=(1, 1, 1, 1),
        dec_blocks=(1, 1, 1, 1),
        middle_blocks=1,
        adv_weight=1.0,
        edge_diff_weight=0.005,
        fore_edge_weight=0.005,
        back_blur_weight=0.1,
    )
    with torch.no_grad():  # non-zero beta/gamma, else the blocks' inner weights get no gradient
        for name, p in m.generator.named_parameters():
            if name.endswith(("beta", "gamma")) or name.startswith("ending."):
                p.fill_(0.5)
    batch = {"image": torch.rand(2, 3, 64, 64), "depth": torch.rand(2, 1, 64, 64), "target": torch.rand(2, 3, 64, 64)}
    fake = m.generator(batch["image"], batch["depth"])
    d = critic_loss(m._critic(batch["image"], batch["target"]), m._critic(batch["image"], fake.detach()))
    gp = gradient_penalty(m.discriminator, batch["target"], fake.detach(), batch["image"])
    (d + gp).backward()
    assert len(m.discriminator.critics) == 2
    no_grad = [n for n, p in m.discriminator.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not no_grad, no_grad
    terms = m.generator_losses(batch, fake)
    terms["g_adv"] = generator_adversarial_loss(m._critic(batch["image"], fake))
    assert set(terms) == {"l1", "ssim", "fore_edge", "edge_diff", "back_blur", "g_adv"}
    m._weighted(terms).backward()
    no_grad = [n for n, p in m.generator.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not no_grad, no_grad


@pytest.mark.slow  # a training subprocess, killed and resumed
def test_killed_run_resumes_at_the_saved_step(tiny_dataset, tmp_path):
    out, log = tmp_path / "runs", tmp_path / "steps.log"
    env = {**os.environ, "BOKEH_STEP_LOG": str(log)}
    base = [
        sys.executable,
        "-m",
        "training",
        "fit",
        "--config",
        STAGE1,
        "--config",
        QUICK,
        *TINY_CLI,
        "--data.root",
        str(tiny_dataset),
        "--data.crop_size",
        "64",
        "--data.batch_size",
        "2",
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--trainer.max_steps",
        "6",
        "--trainer.enable_progress_bar",
        "false",
        # last.ckpt every 2 steps; the data set has 3 batches per epoch, so step 4 is mid-epoch.
        "--trainer.callbacks.init_args.every_n_train_steps",
        "2",
        "--trainer.callbacks+=tests.kill_callback.RecordStartStep",
    ]
    killed = subprocess.run(
        [*base, "--trainer.callbacks+=tests.kill_callback.KillAtStep", "--trainer.callbacks.init_args.step", "5"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == 137, killed.stderr[-3000:]
    last = out / "stage1" / "checkpoints" / "last.ckpt"
    saved_step = torch.load(last, weights_only=True)["global_step"]
    assert saved_step == 4
    resumed = subprocess.run([*base, "--ckpt_path", str(last)], env=env, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert log.read_text().split("\n")[:3] == ["start 0", f"start {saved_step}", "end 6"]


def test_lens_conditioned_model_trains_through_both_stages(tmp_path):
    # Synthetic data with lens/<id>.json (refocused, with sharp bands), the paper's two stages
    # plus lens.yaml, with bf16 autocast, channels_last and the cosine decay of cpu_fast/phone.
    from training import synth

    root = tmp_path / "data"
    synth.generate(root, 4, 2, (64, 96), seed=3, progress=False, refocus_prob=0.5, dof_max=0.2)
    out = tmp_path / "runs"
    fast = [
        "--config",
        LENS,
        "--trainer.precision",
        "bf16-mixed",
        "--model.channels_last",
        "true",
        "--model.lr_decay_steps",
        "4",
        "--data.cache",
        "true",
        "--data.num_workers",
        "0",
    ]
    cli1 = _fit(STAGE1, root, out, *fast)
    assert cli1.model.generator.lens_input and cli1.trainer.global_step == 4
    batch = next(iter(cli1.datamodule.train_dataloader()))
    assert batch["lens"].shape == (2, 3, 1, 1)
    # The cosine schedule reached its floor (1 % of the learning rate) at the last step.
    assert cli1.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.01, rel=1e-6)
    best = out / "stage1" / "checkpoints" / "best.ckpt"
    cli2 = _fit(
        STAGE2,
        root,
        out,
        *fast,
        "--model.init_generator",
        str(best),
        "--model.vgg_weight",
        "0",
        "--trainer.max_steps",
        "8",
    )
    assert cli2.model.generator.lens_input and "train/g_adv" in cli2.trainer.logged_metrics
    # A depth-only stage 2 refuses a lens stage-1 generator, naming both settings.
    with pytest.raises(ValueError, match="lens_input"):
        from training.module import BokehGAN

        BokehGAN(width=4, enc_blocks=(1, 1, 1, 1), dec_blocks=(1, 1, 1, 1), middle_blocks=1, init_generator=str(best))


@pytest.mark.slow  # a training subprocess
def test_command_line_run_does_not_warn_about_args():
    """`python -m training` lets LightningCLI read sys.argv: handing it sys.argv[1:] as ``args`` too
    made every run print LightningCLI's "args parameter is intended to run from within Python"."""
    p = subprocess.run(
        [sys.executable, "-m", "training", "fit", "--help"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert p.returncode == 0 and "--model.lens_input" in p.stdout
    assert "args parameter is intended" not in p.stderr, p.stderr[-500:]


@pytest.mark.slow  # a training subprocess
def test_sigterm_stops_at_the_next_step_saving_last_ckpt(tiny_dataset, tmp_path):
    """Lightning's own handling of SIGTERM ended a fit with exit status 0 and no checkpoint of the
    steps since the last periodic save; training.callbacks.GracefulStop saves last.ckpt and exits 143."""
    import signal
    import time

    out, progress = tmp_path / "runs", tmp_path / "progress"
    cmd = [
        sys.executable,
        "-m",
        "training",
        "fit",
        "--config",
        STAGE1,
        "--config",
        QUICK,
        *TINY_CLI,
        "--data.root",
        str(tiny_dataset),
        "--data.crop_size",
        "64",
        "--data.batch_size",
        "2",
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--trainer.max_steps",
        "100000",
        "--trainer.max_epochs",
        "100000",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.callbacks+=tests.kill_callback.RecordProgress",
    ]
    env = {**os.environ, "BOKEH_PROGRESS": str(progress)}
    p = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 600
        while not (progress.is_file() and int(progress.read_text().split()[1]) >= 2):
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()[-3000:] if p.poll() else "slow"
            time.sleep(0.2)
        at = int(progress.read_text().split()[1])
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 143, err[-3000:]
    step = torch.load(out / "stage1" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert at <= step <= at + 2, (at, step)  # the next batch boundary, saved on the way out


def _fit_command(tiny_dataset, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "training",
        *tiny_fit_args(STAGE1, tiny_dataset, tmp_path / "runs", *extra, max_steps=1),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)


def _assert_one_line_error(p: subprocess.CompletedProcess, *words: str) -> None:
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(w in last for w in words), last


@pytest.mark.slow  # three training subprocesses
def test_a_bad_init_generator_or_sample_is_one_line_from_the_command(tiny_dataset, tmp_path):
    """Probe rows 1 and 5 re-run: an untrusted --model.init_generator and a bad training sample
    were refused safely but ended the command in a traceback with exit status 1."""
    from PIL import Image

    crafted = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"note": CodePayload(tmp_path / "RAN", "exec")}}, crafted)
    p = _fit_command(tiny_dataset, tmp_path, "--model.init_generator", str(crafted))
    _assert_one_line_error(p, str(crafted), REFUSED)
    assert not (tmp_path / "RAN").exists()

    missing = tmp_path / "nowhere.ckpt"
    _assert_one_line_error(_fit_command(tiny_dataset, tmp_path, "--model.init_generator", str(missing)), str(missing))

    # In val, which the sanity check reads whole before the first step: a training image is read
    # only when its random batch comes up.
    bomb = tiny_dataset / "val" / "original" / "0.png"
    Image.new("RGB", (10000, 10000)).save(bomb, optimize=True)
    _assert_one_line_error(_fit_command(tiny_dataset, tmp_path, "--overwrite", "true"), str(bomb), "100 Mpx")
