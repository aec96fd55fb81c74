"""A killed checkpoint save never costs the previous checkpoint.

The probe: with $TMPDIR on another filesystem than runs/, `kill -9` during a save left a 0-byte
last.ckpt (Lightning's fsspec transaction writes a temp file in $TMPDIR and then *copies* it over
the checkpoint) and a 13 MB orphan in $TMPDIR. Here a subprocess saves a good checkpoint, then is
killed (os._exit, as SIGKILL: no cleanup runs) at a chosen point of the next save, with $TMPDIR on
/dev/shm (tmpfs) and the checkpoint on the test's tmp_path. The CheckpointIO under test is the one
`python -m training` gives the trainer by default (its `trainer.plugins`).
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

# Saves step 1, arms the kill, saves step 2. KILL_ON: "target" = the moment the checkpoint's own
# path is opened for writing (where a copy-based move truncates it); "first" = the first file the
# save opens for writing (a temp file, wherever the class puts it).
SCRIPT = r"""
import builtins, importlib, os, sys, torch
module, name = sys.argv[1].rsplit(".", 1)
io = getattr(importlib.import_module(module), name)()
path, kill_on = sys.argv[2], sys.argv[3]
payload = lambda step: {"global_step": step, "state_dict": {"w": torch.full((250_000,), float(step))}}
io.save_checkpoint(payload(1), path)
real_open = builtins.open
def killing_open(file, mode="r", *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    if "w" in mode and (kill_on == "first" or os.path.abspath(str(file)) == os.path.abspath(path)):
        os._exit(137)
    return f
builtins.open = killing_open
io.save_checkpoint(payload(2), path)
print("saved without being killed")
"""


def _default_checkpoint_io(capsys) -> str:
    """The class path of the CheckpointIO that `python -m training fit` wires by default."""
    from training.__main__ import main

    with pytest.raises(SystemExit):
        main(["fit", "--config", str(REPO / "training/configs/stage1.yaml"), "--print_config"])
    plugins = yaml.safe_load(capsys.readouterr().out)["trainer"].get("plugins") or []
    paths = [p["class_path"] for p in (plugins if isinstance(plugins, list) else [plugins]) if isinstance(p, dict)]
    io_paths = [p for p in paths if "CheckpointIO" in p]
    return io_paths[0] if io_paths else "lightning.pytorch.plugins.io.TorchCheckpointIO"  # Lightning's own default


@pytest.fixture
def tmpdir_elsewhere(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's tmp_path")
    made = subprocess.run(["mktemp", "-d", "-p", str(shm)], capture_output=True, text=True, check=True)
    d = Path(made.stdout.strip())
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


def _run(io_class: str, path: Path, kill_on: str, tmpdir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, io_class, str(path), kill_on],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _step(path: Path) -> int:
    ckpt = torch.load(path, weights_only=True)
    assert torch.equal(ckpt["state_dict"]["w"], torch.full((250_000,), float(ckpt["global_step"])))  # whole
    return ckpt["global_step"]


@pytest.mark.slow  # a training subprocess killed mid-save, twice
@pytest.mark.parametrize("kill_on", ["target", "first"])
def test_a_kill_during_a_save_leaves_a_whole_checkpoint_and_no_orphan(capsys, tmp_path, tmpdir_elsewhere, kill_on):
    io_class = _default_checkpoint_io(capsys)
    path = tmp_path / "checkpoints" / "last.ckpt"
    p = _run(io_class, path, kill_on, tmpdir_elsewhere)
    assert p.returncode in (0, 137), p.stderr[-2000:]
    # The file is the old checkpoint or the new one, whole; never empty or cut short.
    assert path.stat().st_size > 0, f"{io_class}: a kill during the save left a 0-byte {path.name}"
    assert _step(path) in (1, 2)
    # Nothing was left in $TMPDIR (the probe found a 13 MB orphan there after every kill)...
    assert not list(tmpdir_elsewhere.iterdir()), f"{io_class} left {list(tmpdir_elsewhere.iterdir())} in $TMPDIR"
    # ...and the resume that loads it, in another process, cleans up what the killed save left beside it.
    module, name = io_class.rsplit(".", 1)
    io = getattr(importlib.import_module(module), name)()
    assert io.load_checkpoint(path)["global_step"] in (1, 2)
    assert sorted(q.name for q in path.parent.iterdir()) == ["last.ckpt"]
    io.save_checkpoint({"global_step": 3, "state_dict": {"w": torch.full((250_000,), 3.0)}}, path)
    assert _step(path) == 3
    assert sorted(q.name for q in path.parent.iterdir()) == ["last.ckpt"]


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from common.io import atomic_write

    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and sorted(q.name for q in tmp_path.iterdir()) == ["f.bin"]


def test_atomic_write_removes_only_dead_writers_temps(tmp_path):
    import socket

    from common.io import atomic_write

    path = tmp_path / "last.ckpt"
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".last.ckpt.tmp-{host}-{int(dead.stdout)}"  # its writer has exited
    other_host = tmp_path / f".last.ckpt.tmp-{host}x-1"  # another machine's writer: not ours to judge
    running = tmp_path / f".last.ckpt.tmp-{host}-{os.getppid()}"  # pytest's parent: alive
    for f in (stale, other_host, running):
        f.write_bytes(b"x")
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new"
    assert not stale.exists() and other_host.exists() and running.exists()
