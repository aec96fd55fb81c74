import os
import shlex
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# The stage configs as a user passes them to `python -m training`, and the CLI overrides for a
# width-4 generator with one block a level: the training, run-folder, DDP and checkpoint tests share them.
STAGE1, STAGE2, QUICK, LENS = (
    str(REPO / "training" / "configs" / f"{n}.yaml") for n in ("stage1", "stage2", "quick", "lens")
)
TINY_CLI = [
    "--model.width",
    "4",
    "--model.enc_blocks",
    "[1, 1, 1, 1]",
    "--model.dec_blocks",
    "[1, 1, 1, 1]",
    "--model.middle_blocks",
    "1",
]


def tiny_fit_args(config, root, out, *extra: str, max_steps: int = 4) -> list[str]:
    """``fit`` arguments for a tiny-generator run of ``config`` + quick.yaml on ``root`` (64-px crops,
    batch 2), logging under ``out``; ``extra`` comes last, so it overrides any of these."""
    return ["fit", "--config", str(config), "--config", QUICK, *TINY_CLI, "--data.root", str(root),
            "--data.crop_size", "64", "--data.batch_size", "2", "--trainer.logger.init_args.save_dir", str(out),
            "--trainer.max_steps", str(max_steps), "--trainer.enable_progress_bar", "false", *extra]  # fmt: skip


# Two cores on every machine: keep torch from oversubscribing them when tests run.
torch.set_num_threads(min(2, os.cpu_count() or 1))


# Module fixtures that build something expensive once (a full export; Chromium and the models it
# serves): every test that uses one is marked slow. `make test` (not slow, not gpu) then stays under
# 3 minutes on 2 cores; `make test-slow` runs the rest, and `.ci/run` runs both.
SLOW_FIXTURES = {"exported", "models_dir", "server"}
# The web demo's fixtures (models_dir, server, ...), shared by tests/test_web_*.py and built once a session.
pytest_plugins = ("tests.web_fixtures",)


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def write_pairs(split_dir, n: int, height: int = 64, width: int = 96, seed: int = 0) -> None:
    """A tiny paired data set in the project's split layout (original/, bokeh/, depth/).

    Independent of training.synth on purpose: the training tests must not depend on the scene
    generator being right. The 'bokeh' target is a box blur of the photo where the depth is far.
    """
    from pathlib import Path

    import numpy as np
    from PIL import Image
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(seed)
    root = Path(split_dir)
    for sub in ("original", "bokeh", "depth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(n):
        img = rng.random((height, width, 3)) * 0.5 + 0.25 * np.sin(xx / (3 + i))[..., None]
        img = np.clip(img, 0, 1)
        cy, cx = rng.integers(height // 4, 3 * height // 4), rng.integers(width // 4, 3 * width // 4)
        near = ((yy - cy) ** 2 + (xx - cx) ** 2) < (min(height, width) // 4) ** 2
        depth = np.where(near, 0.9, 0.2)
        blurred = uniform_filter(img, size=(7, 7, 1))
        target = np.where(near[..., None], img, blurred)
        Image.fromarray((img * 255).astype(np.uint8)).save(root / "original" / f"{i}.png")
        Image.fromarray((target * 255).astype(np.uint8)).save(root / "bokeh" / f"{i}.png")
        Image.fromarray((depth * 65535).astype(np.uint16)).save(root / "depth" / f"{i}.png")


@pytest.fixture
def tiny_dataset(tmp_path):
    root = tmp_path / "data"
    write_pairs(root / "train", 6, seed=1)
    write_pairs(root / "val", 2, seed=2)
    return root


# A checkpoint is a pickle, and a pickle can call any function while it loads.
REFUSED = "not a trusted weights-only checkpoint"


class CodePayload:
    """Pickles as a call of exec or os.system that creates the marker file."""

    def __init__(self, marker: Path, call: str) -> None:
        self.marker = str(marker)
        self.call = call

    def __reduce__(self):
        if self.call == "os.system":  # torch words a refused module ("posix is blocked") differently
            return (os.system, (f"touch {shlex.quote(self.marker)}",))
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture(params=["zip", "bare_pickle", "zip_os_system"])
def crafted(request, tmp_path):
    """(path, marker): a Lightning-looking checkpoint whose hyper-parameters run code on load."""
    marker = tmp_path / "PAYLOAD_RAN"
    call = "os.system" if request.param.endswith("os_system") else "exec"
    ckpt = {
        "state_dict": {"generator.intro.weight": torch.zeros(8, 6, 3, 3)},
        "hyper_parameters": {"width": 8, "lens_input": True, "note": CodePayload(marker, call)},
    }
    path = tmp_path / f"crafted_{request.param}.ckpt"
    torch.save(ckpt, path, _use_new_zipfile_serialization=request.param != "bare_pickle")
    return path, marker


# The export tests' (test_export*.py) tiny generator, its checkpoint and a data folder to calibrate
# and check it on. Module fixtures: each module that uses one builds its own, in seconds.
TINY_ARCH = {"width": 4, "enc_blocks": (1, 1, 1, 1), "middle_blocks": 1, "dec_blocks": (1, 1, 1, 1)}


def tiny_generator(seed: int = 0):
    """A width-4 NAFNet with one block a level that is not the identity (export.compare.non_identity_)."""
    from export.compare import non_identity_
    from training.model import NAFNet

    torch.manual_seed(seed)
    return non_identity_(NAFNet(**TINY_ARCH)).eval()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A split folder like the dataset's: smooth RGB PNGs and 16-bit disparity PNGs (1 = near),
    at a size other than the export size so that the loader has to resize and crop."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("data") / "val"
    (root / "original").mkdir(parents=True)
    (root / "depth").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:112] / 80.0
    for i in range(5):
        rgb = np.stack([np.sin(3 * xx + i), np.cos(2 * yy + i), xx * yy], -1) * 0.4 + 0.5
        rgb = np.clip(rgb + rng.normal(0, 0.03, rgb.shape), 0, 1)
        Image.fromarray((rgb * 255).astype(np.uint8)).save(root / "original" / f"{i}.png")
        disparity = np.clip(1.0 - yy + 0.05 * i, 0, 1)
        Image.fromarray((disparity * 65535).astype(np.uint16)).save(root / "depth" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny_generator.pt"
    # The architecture rides along with the weights: load_generator infers only the width from a
    # state dict, and this one has one block per stage.
    torch.save({"generator": tiny_generator().state_dict(), "arch": TINY_ARCH}, path)
    return path
