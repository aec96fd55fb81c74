"""``manifest.json``: what an exported model is, where it came from and what the gates measured.

The Android demo, the web demo and the evaluation read this file instead of hard-coding shapes,
layouts or normalisation (format: the shared conventions of the project, ``format_version`` 1).
Layout and shape are those of the TFLite file's own input tensors: NHWC ``[1, H, W, C]`` from
onnx2tf, NCHW ``[1, C, H, W]`` from onnx-tf.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.io import atomic_write_text

__all__ = [
    "MANIFEST_NAME",
    "FORMAT_VERSION",
    "io_spec",
    "variant_entry",
    "build_manifest",
    "write_manifest",
    "read_manifest",
    "validate_manifest",
]

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
PSNR_CAP_DB = 999.0  # identical outputs have infinite PSNR, which JSON cannot hold

TOP_KEYS = {"format_version", "name", "created", "source", "inputs", "outputs", "converter", "variants", "onnx"}
SOURCE_KEYS = {"checkpoint", "checkpoint_sha256", "arch", "training_config"}
VARIANT_KEYS = {
    "file",
    "size_bytes",
    "sha256",
    "precision",
    "parity",
    "gpu_compatible",
    "flex_ops",
    "max_tensor_rank",
    "op_census",
    "gpu_run",
}
ONNX_KEYS = {"file", "sha256", "max_abs_diff_vs_pytorch"}


def _shape(channels: int, size: tuple[int, int], layout: str) -> list[int]:
    h, w = size
    return [1, h, w, channels] if layout == "NHWC" else [1, channels, h, w]


def lens_spec(layout: str, default: tuple[float, float, float]) -> dict:
    """The ``lens`` input of a lens-conditioned model: its three values, their units and a default."""
    return {
        "name": "lens",
        "shape": [1, 1, 1, 3] if layout == "NHWC" else [1, 3, 1, 1],
        "layout": layout,
        "dtype": "float32",
        "values": ["d_f", "K", "dof"],
        "units": {
            "d_f": "focal disparity, in the depth input's units: [0, 1], 1 = near",
            "K": "blur radius in pixels of this model's input, per unit of disparity; radius = "
            "K * max(|depth - d_f| - dof, 0) (BokehMe eq. 1 when dof = 0); 0 = no blur",
            "dof": "half-width of the sharp band around d_f, in disparity, [0, 0.5]",
        },
        "default": [round(float(v), 4) for v in default],
        "auto_focus": "training.renderers.lens.auto_focus(depth): d_f = 90th percentile of disparity, dof = 0.1, "
        "K = 0.0163 * width / (d_f - 2nd percentile - dof); tap-to-focus sets d_f to the depth there",
    }


def io_spec(
    size: tuple[int, int], layout: str, lens_default: tuple[float, float, float] | None = None
) -> tuple[list[dict], list[dict]]:
    """The ``inputs`` and ``outputs`` entries for a model of ``size`` = (H, W) in ``layout``; with
    ``lens_default`` the model has the lens input too."""
    common = {"layout": layout, "dtype": "float32", "range": [0, 1]}
    inputs = [
        {"name": "image", "shape": _shape(3, size, layout), **common, "normalisation": "RGB / 255, no mean or std"},
        {"name": "depth", "shape": _shape(1, size, layout), **common, "normalisation": "disparity in [0, 1], 1 = near"},
    ]
    if lens_default is not None:
        inputs.append(lens_spec(layout, lens_default))
    outputs = [{"name": "bokeh", "shape": _shape(3, size, layout), **common, "postprocess": "clamp to [0, 1], * 255"}]
    return inputs, outputs


def variant_entry(
    file: str,
    size_bytes: int,
    sha256: str,
    precision: str,
    psnr_db: float,
    max_abs_diff: float,
    gpu_compatible: bool,
    flex_ops: list[str],
    max_tensor_rank: int,
    op_census: dict[str, int],
    gpu_run: dict,
) -> dict:
    """One file's entry. ``gpu_compatible`` is TensorFlow's static analyzer; ``gpu_run`` is the run on
    LiteRT's GPU accelerator (export.gpu_run): device, backend, parity with the CPU, or why skipped."""
    return {
        "file": file,
        "size_bytes": int(size_bytes),
        "sha256": sha256,
        "precision": precision,
        "parity": {"psnr_db_vs_pytorch": round(min(psnr_db, PSNR_CAP_DB), 2), "max_abs_diff": float(max_abs_diff)},
        "gpu_compatible": bool(gpu_compatible),
        "flex_ops": list(flex_ops),
        "max_tensor_rank": int(max_tensor_rank),
        "op_census": dict(op_census),
        "gpu_run": dict(gpu_run),
    }


def build_manifest(
    name: str,
    source: dict[str, Any],
    size: tuple[int, int],
    layout: str,
    converter: str,
    variants: dict[str, dict],
    onnx: dict[str, Any],
    lens_default: tuple[float, float, float] | None = None,
) -> dict[str, Any]:
    inputs, outputs = io_spec(size, layout, lens_default)
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {
            k: source.get(k, {} if k in ("arch", "training_config") else "")
            for k in ("checkpoint", "checkpoint_sha256", "arch", "training_config")
        },
        "inputs": inputs,
        "outputs": outputs,
        "converter": converter,
        "variants": variants,
        "onnx": onnx,
    }


def validate_manifest(m: dict[str, Any]) -> None:
    """Raise ValueError unless ``m`` has exactly the keys of format_version 1."""

    def same(keys: set[str], obj: dict, where: str) -> None:
        if set(obj) != keys:
            raise ValueError(f"manifest {where}: keys {sorted(obj)} != {sorted(keys)}")

    same(TOP_KEYS, m, "top level")
    if m["format_version"] != FORMAT_VERSION:
        raise ValueError(f"manifest format_version {m['format_version']} != {FORMAT_VERSION}")
    same(SOURCE_KEYS, m["source"], "source")
    same(ONNX_KEYS, m["onnx"], "onnx")
    for key, v in m["variants"].items():
        same(VARIANT_KEYS, v, f"variants.{key}")
        same({"psnr_db_vs_pytorch", "max_abs_diff"}, v["parity"], f"variants.{key}.parity")
    names = [i["name"] for i in m["inputs"]]
    if names not in (["image", "depth"], ["image", "depth", "lens"]) or [o["name"] for o in m["outputs"]] != ["bokeh"]:
        raise ValueError("manifest: inputs must be [image, depth] or [image, depth, lens] and outputs [bokeh]")
    if names[-1] == "lens":
        lens = m["inputs"][-1]
        d = lens.get("default", [])
        if len(d) != 3 or not 0 <= d[0] <= 1 or d[1] < 0 or not 0 <= d[2] <= 0.5:
            raise ValueError(
                f"manifest: the lens input needs a default [d_f in [0, 1], K >= 0, dof in [0, 0.5]], got {d}"
            )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (tuple, set)):
        return list(obj)
    return str(obj)  # paths and other objects in a training config


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``directory/manifest.json`` atomically (``common.io``)."""
    validate_manifest(manifest)
    directory = Path(directory)
    text = json.dumps(manifest, indent=2, default=_json_default, allow_nan=False) + "\n"
    return atomic_write_text(directory / MANIFEST_NAME, text)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    try:
        validate_manifest(manifest)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from e
    return manifest
