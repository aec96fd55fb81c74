"""Load the generator from what training writes, for export and evaluation (no Lightning needed).

Accepts either a Lightning checkpoint of ``training.module.BokehGAN`` (generator weights under
``state_dict["generator.*"]``, architecture in ``hyper_parameters``, the resolved CLI config under
``"config"``) or a bare ``NAFNet`` state dict saved with ``torch.save``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from training.model import NAFNet

ARCH_KEYS = ("width", "enc_blocks", "middle_blocks", "dec_blocks", "lens_input")


@dataclass
class GeneratorCheckpoint:
    generator: NAFNet
    path: Path
    sha256: str
    arch: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)  # resolved training config, if recorded


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_generator(path: str | Path, map_location: str = "cpu") -> GeneratorCheckpoint:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path} (train one with `python -m training fit --config "
            f"training/configs/stage1.yaml`, or pass the path of a .ckpt / generator .pt file)"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # a truncated or foreign file: say which one
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, got {type(ckpt).__name__}")

    if "state_dict" in ckpt:  # Lightning checkpoint
        hp = ckpt.get("hyper_parameters", {})
        arch = {k: hp[k] for k in ARCH_KEYS if k in hp}
        state = {k[len("generator."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("generator.")}
        if not state:
            raise ValueError(f"{path}: Lightning checkpoint has no 'generator.*' weights")
        config = ckpt.get("config", {}) or {}
    else:  # bare generator state dict, optionally wrapped as {"state_dict_generator": ..., "arch": ...}
        state = ckpt.get("generator", ckpt)
        arch = dict(ckpt.get("arch", {}))
        config = ckpt.get("config", {}) or {}
    for k in ("enc_blocks", "dec_blocks"):
        if k in arch:
            arch[k] = tuple(arch[k])
    if "width" not in arch:  # infer from the intro conv so a bare state dict still loads
        arch["width"] = int(state["intro.weight"].shape[0])
    if "lens_input" not in arch and "intro.weight" in state:  # 6 input planes = RGB + depth + S + |S|
        arch["lens_input"] = int(state["intro.weight"].shape[1]) == 6
    gen = NAFNet(**arch)
    try:
        gen.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: generator weights do not match NAFNet{arch}: {e}") from e
    gen.eval()
    return GeneratorCheckpoint(gen, path, file_sha256(path), arch, config)
