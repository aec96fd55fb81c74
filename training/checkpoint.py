"""Load the generator from what training writes, for export and evaluation (no Lightning needed).

Accepts

* a Lightning checkpoint of ``training.module.BokehGAN`` (generator weights under
  ``state_dict["generator.*"]``, architecture in ``hyper_parameters``, the resolved CLI config under
  ``"config"``),
* a bare ``NAFNet`` state dict saved with ``torch.save``, optionally wrapped as
  ``{"generator": ..., "arch": ..., "config": ...}``,
* a ``model.safetensors`` written by ``save_generator_safetensors`` (weights, with the architecture
  and the training config as JSON in its metadata). Training writes one beside ``best.ckpt``
  (``training.callbacks.GeneratorSafetensors``).

PyTorch files are read with ``torch.load(weights_only=True)``: a checkpoint is a pickle, and a pickle
from someone else can run any code while it loads. The project's own checkpoints hold only tensors,
dicts, lists, tuples, numbers and strings (measured on stage-1 and stage-2 ``best.ckpt``/``last.ckpt``
and on the generator.pt the shipped model carried before its model.safetensors;
``tests/test_checkpoint_safety.py`` keeps it true), which torch's weights-only unpickler allows by
default, so no other type is allowlisted.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from common.hashing import file_sha256
from common.io import atomic_write
from training.model import NAFNet

ARCH_KEYS = ("width", "enc_blocks", "middle_blocks", "dec_blocks", "lens_input", "blur_prior")
SAFETENSORS_SUFFIX = ".safetensors"
SAFETENSORS_NAME = "model.safetensors"  # beside best.ckpt, and in an exported model's folder


@dataclass
class GeneratorCheckpoint:
    generator: NAFNet
    path: Path
    sha256: str
    arch: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)  # resolved training config, if recorded


class CheckpointLoadError(ValueError):
    """A model file that cannot be loaded as a generator: unreadable, untrusted or the wrong content.

    A ``ValueError``, as before it had a name, so callers that caught that still do; the training
    command catches this class to print one line instead of a traceback.
    """


class UntrustedCheckpointError(CheckpointLoadError):
    """A pickle that asks to build something other than tensors and plain containers on load."""


def _torch_load(path: Path, map_location: str) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch names a refused callable as "Unsupported global: GLOBAL builtins.exec", or, for a
        # module it blocks outright, "unsupported GLOBAL posix.system whose module posix is blocked".
        # Its own advice, to retry with weights_only=False, is exactly what must not be done with
        # such a file, so it is never repeated.
        found = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", str(e), flags=re.IGNORECASE)
        if found is None:  # junk, or a pickle opcode torch does not read: unreadable rather than unsafe
            reason = re.search(r"WeightsUnpickler error:\s*(.+)", str(e))
            raise CheckpointLoadError(
                f"{path}: not a readable weights-only PyTorch checkpoint "
                f"({reason.group(1) if reason else type(e).__name__})"
            ) from None
        raise UntrustedCheckpointError(
            f"{path}: not a trusted weights-only checkpoint: loading it would call `{found.group(1)}`, which no "
            f"checkpoint of this project does, so it was not loaded (a pickle can run any code this way). "
            f"Use a .ckpt written by `python -m training fit` or a {SAFETENSORS_NAME}; to convert a generator "
            f"you trust, load it yourself and write it with training.checkpoint.save_generator_safetensors."
        ) from None
    except Exception as e:  # a truncated or foreign file: say which one
        raise CheckpointLoadError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e


def _read_torch(path: Path, map_location: str) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    ckpt = _torch_load(path, map_location)
    if not isinstance(ckpt, dict):
        raise CheckpointLoadError(f"{path}: expected a checkpoint dict, got {type(ckpt).__name__}")
    if "state_dict" in ckpt:  # Lightning checkpoint
        hp = ckpt.get("hyper_parameters", {})
        arch = {k: hp[k] for k in ARCH_KEYS if k in hp}
        state = {k[len("generator.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("generator.")}
        if not state:
            raise CheckpointLoadError(f"{path}: Lightning checkpoint has no 'generator.*' weights")
    else:  # bare generator state dict, optionally wrapped as {"generator": ..., "arch": ..., "config": ...}
        state = ckpt.get("generator", ckpt)
        arch = dict(ckpt.get("arch", {}))
    return state, arch, ckpt.get("config", {}) or {}


def _read_safetensors(path: Path, map_location: str) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # truncated, or not a safetensors file at all
        raise CheckpointLoadError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from e
    try:
        arch = json.loads(meta.get("arch", "{}"))
        config = json.loads(meta.get("config", "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointLoadError(f"{path}: safetensors metadata 'arch'/'config' is not JSON ({e})") from e
    return state, arch, config


def _build(path: Path, state: dict[str, torch.Tensor], arch: dict[str, Any]) -> tuple[NAFNet, dict[str, Any]]:
    arch = dict(arch)
    for k in ("enc_blocks", "dec_blocks"):
        if k in arch:
            arch[k] = tuple(arch[k])
    if "intro.weight" not in state:
        raise CheckpointLoadError(f"{path}: no NAFNet generator weights in it (no 'intro.weight')")
    if "width" not in arch:  # infer from the intro conv so a bare state dict still loads
        arch["width"] = int(state["intro.weight"].shape[0])
    if "lens_input" not in arch:  # 6 input planes = RGB + depth + S + |S|
        arch["lens_input"] = int(state["intro.weight"].shape[1]) == 6
    if "blur_prior" not in arch:  # only a generator with the prior has its mixing conv
        arch["blur_prior"] = "mix.weight" in state
    gen = NAFNet(**arch)
    try:
        gen.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointLoadError(f"{path}: generator weights do not match NAFNet{arch}: {e}") from e
    return gen.eval(), arch


def load_generator(path: str | Path, map_location: str = "cpu") -> GeneratorCheckpoint:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path} (train one with `python -m training fit --config "
            f"training/configs/stage1.yaml`, or pass the path of a .ckpt, generator .pt or "
            f"{SAFETENSORS_NAME} file)"
        )
    read = _read_safetensors if path.suffix.lower() == SAFETENSORS_SUFFIX else _read_torch
    state, arch, config = read(path, map_location)
    gen, arch = _build(path, state, arch)
    return GeneratorCheckpoint(gen, path, file_sha256(path), arch, config)


def save_generator_safetensors(
    path: str | Path,
    generator: NAFNet,
    arch: dict[str, Any],
    config: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
) -> Path:
    """Write ``generator``'s weights to ``path`` (``model.safetensors``), atomically.

    The metadata holds JSON strings: ``arch`` (the ``NAFNet`` arguments ``load_generator`` builds it
    with), ``config`` (the resolved training config) and ``source`` (provenance, e.g. the checkpoint
    and its sha256). Written with ``atomic_write``: a reader never sees half a file, and a killed
    write leaves the previous one intact.
    """

    path = Path(path)
    # contiguous CPU copies: safetensors stores a flat buffer (channels_last or CUDA tensors are not)
    state = {k: v.detach().to("cpu").contiguous() for k, v in generator.state_dict().items()}
    # Refuse an arch that does not describe these weights (the file must load), and record it whole.
    _, arch = _build(path, state, arch)
    metadata = {
        "format": "pt",
        "arch": json.dumps(arch),
        "config": json.dumps(config or {}, default=str),
        "source": json.dumps(source or {}, default=str),
    }
    # Written by us rather than safetensors.torch.save_file, which creates the file private (0600).
    blob = _sorted_metadata(save(state, metadata=metadata))
    return atomic_write(path, lambda f: f.write(blob))


def _sorted_metadata(blob: bytes) -> bytes:
    """The same safetensors file with its metadata keys in sorted order.

    safetensors writes the metadata from a hash map whose order changes from one process to the
    next, so the same weights would get another sha256 on every write (and a manifest that cites it
    would look changed). The format is an 8-byte little-endian header length, a JSON header padded
    with spaces to a multiple of 8, then the tensor bytes, which do not move.
    """
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n :]
