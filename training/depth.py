"""Write DPT disparity maps for a dataset: ``python -m training.depth --data ROOT``.

Bokeh-Loss GAN (§3.2) conditions the generator on a depth map from DPT (Ranftl et al.), the model
pre-trained on the MIX 5 datasets; ``transformers`` ships it as ``Intel/dpt-hybrid-midas``.
For every ``<split>/original/<id>.{jpg,png}`` under ROOT (ROOT itself, ``ROOT/train``,
``ROOT/val``, AIM 2020's ``ROOT/Training``, ...) this writes ``<split>/depth/<id>.png``: a 16-bit
grayscale PNG of per-image min-max normalised disparity, bright = near (``training.data``'s
convention).

Why the raw output is already disparity: the MiDaS models are trained with a scale- and
shift-invariant loss on *inverse* depth, so the prediction is relative disparity (large = near)
up to an unknown scale and shift. Min-max normalisation per image removes exactly that unknown and
maps the scene to [0, 1] with 1 = nearest, the same convention as EBB!'s ``original_depth``.

The weights are loaded only from a local folder or the local Hugging Face cache; nothing is
downloaded. Preprocessing is done here (torchvision does not import in this project, and the
fast DPT image processor needs it): the settings come from the model's
``preprocessor_config.json`` when present, else ``DPTImageProcessor``'s defaults (384×384,
bicubic, mean = std = 0.5). transformers' DPT reshapes ViT tokens into a square grid, so the
image is resized to a square like the processor does, not to MiDaS's aspect-preserving size.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from training.data import BadSampleError, image_files, load_rgb, write_depth_png

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Intel/dpt-hybrid-midas"
DEFAULT_LOCAL_DIR = "weights/dpt-hybrid-midas"  # /weights/ is git-ignored


class DepthModelMissing(FileNotFoundError):
    """The DPT weights are not on this machine."""


@dataclass(frozen=True)
class DPTPreprocess:
    """What ``DPTImageProcessor`` does, without torchvision: resize, /255, (x - mean) / std."""

    height: int = 384
    width: int = 384
    keep_aspect_ratio: bool = False
    ensure_multiple_of: int = 1
    resample: int = int(Image.Resampling.BICUBIC)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @classmethod
    def from_json(cls, path: str | Path | None) -> DPTPreprocess:
        if path is None or not Path(path).is_file():
            return cls()
        cfg = json.loads(Path(path).read_text())
        size = cfg.get("size", 384)
        if isinstance(size, int):  # old configs store a single side
            h = w = size
        else:
            h, w = size.get("height", 384), size.get("width", 384)
        d = cls()
        return cls(
            height=h,
            width=w,
            keep_aspect_ratio=bool(cfg.get("keep_aspect_ratio", d.keep_aspect_ratio)),
            ensure_multiple_of=int(cfg.get("ensure_multiple_of", d.ensure_multiple_of)),
            resample=int(cfg.get("resample", d.resample)),
            mean=tuple(cfg.get("image_mean", d.mean)),
            std=tuple(cfg.get("image_std", d.std)),
        )

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Same rule as transformers' ``get_resize_output_image_size``."""
        sh, sw = self.height / h, self.width / w
        if self.keep_aspect_ratio:  # scale as little as possible
            if abs(1 - sw) < abs(1 - sh):
                sh = sw
            else:
                sw = sh
        m = self.ensure_multiple_of
        return max(m, round(sh * h / m) * m), max(m, round(sw * w / m) * m)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """PIL RGB → (3, h, w) normalised model input."""
        oh, ow = self.output_size(img.height, img.width)
        arr = np.asarray(img.resize((ow, oh), resample=self.resample), dtype=np.float32) / 255.0
        arr = (arr - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _missing_message(model: str, reason: str) -> str:
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE) / f"models--{model.replace('/', '--')}"
    return (
        f"DPT weights {model!r} not found locally ({reason}). Nothing is downloaded at run time.\n"
        f"Expected either a folder passed as --model (holding config.json, model.safetensors or "
        f"pytorch_model.bin, preprocessor_config.json) or the Hugging Face cache entry {cache}.\n"
        f"On a machine with internet, fetch it with\n"
        f"    hf download {model} --local-dir {DEFAULT_LOCAL_DIR}\n"
        f"(older huggingface_hub: huggingface-cli download {model} --local-dir {DEFAULT_LOCAL_DIR}),\n"
        f"copy that folder here and run: python -m training.depth --data ROOT --model {DEFAULT_LOCAL_DIR}"
    )


def load_dpt(model: str = DEFAULT_MODEL, device: str = "cpu") -> tuple[torch.nn.Module, DPTPreprocess]:
    """DPTForDepthEstimation from a local folder or the local HF cache, and its preprocessing."""
    from transformers import DPTForDepthEstimation

    path = Path(model)
    if model == DEFAULT_MODEL and (Path(DEFAULT_LOCAL_DIR) / "config.json").is_file():
        path = Path(DEFAULT_LOCAL_DIR)  # where the missing-weights message tells users to put it
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise DepthModelMissing(_missing_message(model, f"{path / 'config.json'} does not exist"))
        source: str = str(path)
        pre_cfg: str | None = str(path / "preprocessor_config.json")
    elif path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise DepthModelMissing(_missing_message(model, f"{model} is not a model folder"))
    else:
        from huggingface_hub import try_to_load_from_cache

        source = model
        found = try_to_load_from_cache(model, "preprocessor_config.json")
        pre_cfg = found if isinstance(found, str) else None
    try:
        net = DPTForDepthEstimation.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as e:
        raise DepthModelMissing(_missing_message(model, f"{type(e).__name__}: {str(e).splitlines()[0]}")) from e
    return net.to(device).eval(), DPTPreprocess.from_json(pre_cfg)


def original_folders(root: Path) -> list[Path]:
    """Every split folder under ``root`` that holds an ``original/`` folder (root and one level down)."""
    cands = [root] + sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [c for c in cands if (c / "original").is_dir()]


def pending(root: Path) -> Iterator[tuple[Path, Path]]:
    """(image, depth png) pairs still to do; a finished png is never recomputed."""
    for split in original_folders(root):
        for img in image_files(split / "original"):
            out = split / "depth" / f"{img.stem}.png"
            if not out.exists():
                yield img, out


def normalise_disparity(pred: torch.Tensor) -> torch.Tensor:
    """Per-image min-max to [0, 1], 1 = near (DPT-MiDaS predicts relative inverse depth)."""
    lo = pred.amin(dim=(-2, -1), keepdim=True)
    hi = pred.amax(dim=(-2, -1), keepdim=True)
    # A constant map (no depth cue) becomes all zeros rather than a division by zero.
    return ((pred - lo) / (hi - lo).clamp_min(1e-12)).clamp(0.0, 1.0)


@torch.no_grad()
def predict_disparity(
    net: torch.nn.Module, pre: DPTPreprocess, images: list[Image.Image], device: str
) -> list[torch.Tensor]:
    """Normalised disparity (H, W) at each image's own size."""
    x = torch.stack([pre(im) for im in images]).to(device)  # (B, 3, 384, 384)
    pred = net(pixel_values=x).predicted_depth  # (B, h', w') relative inverse depth
    out = []
    for p, im in zip(pred, images):
        # bicubic back to full size as MiDaS does; normalise after, so overshoot stays in [0, 1]
        up = F.interpolate(p[None, None].float(), size=(im.height, im.width), mode="bicubic", align_corners=False)
        out.append(normalise_disparity(up[0, 0]).cpu())
    return out


def run(
    data: str | Path, model: str = DEFAULT_MODEL, batch_size: int = 1, device: str = "cpu", skip_bad: bool = False
) -> dict[str, int]:
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root} is not a folder")
    if not original_folders(root):
        raise FileNotFoundError(f"no original/ folder in {root} or its subfolders (e.g. {root}/Training/original)")
    todo = list(pending(root))
    total = sum(len(image_files(split / "original")) for split in original_folders(root))
    stats = {"written": 0, "bad": 0, "already_done": total - len(todo)}
    if not todo:
        return stats
    net, pre = load_dpt(model, device)
    # Square model inputs batch together regardless of the image sizes.
    bar = tqdm(total=len(todo), desc="DPT depth", unit="img")
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        images, outs = [], []
        for img_path, out in chunk:
            try:
                images.append(load_rgb(img_path))
                outs.append(out)
            except BadSampleError as e:
                if not skip_bad:
                    raise
                stats["bad"] += 1
                tqdm.write(f"skipping {e}")
        if images:
            for out, disp in zip(outs, predict_disparity(net, pre, images, device)):
                write_depth_png(out, disp)
                stats["written"] += 1
        bar.update(len(chunk))
    bar.close()
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write 16-bit DPT disparity maps (bright = near) to <split>/depth/.")
    p.add_argument("--data", required=True, help="dataset root (folders with original/ at ROOT or one level down)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="local model folder or a model id in the local HF cache")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable/non-RGB images instead of stopping")
    a = p.parse_args(argv)
    try:
        stats = run(a.data, a.model, a.batch_size, a.device, a.skip_bad)
    except (DepthModelMissing, BadSampleError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"depth maps written: {stats['written']}, already done: {stats['already_done']}, bad images skipped: {stats['bad']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
