"""A tiny stand-in for an exported bokeh model, for tests and for trying the demos without training.

It has exactly the interface that ``python -m export`` gives the real generator (Bokeh-Loss GAN,
Lee et al., AIM 2022, §3.1: ``G(image, depth) -> bokeh``) and a manifest in the shared
``tflite_models/<name>/manifest.json`` schema, so the web page, the Android app and their tests
can be exercised on a machine that has no trained checkpoint:

* inputs ``image`` [1, H, W, 3] and ``depth`` [1, H, W, 1], float32 in [0, 1], NHWC
  (depth is normalised disparity, 1 = near);
* output ``bokeh`` [1, H, W, 3], float32, not clamped.

The network is not the GAN: it is a classical depth-weighted blur plus a small random
convolution branch, ``bokeh = image + (1 - depth) * (gauss(image) - image) + 0.05 * conv(conv([image,
depth]))``. The blur makes the output *look* like bokeh (far = blurred) so a screenshot says
something; the random branch makes sure CONV_2D, concatenation and the residual add of the real
graph are exercised and that a wrong input order or layout changes the output. It is converted as
an export is (``export.convert.save_serving``, ``export.tflite.convert_tflite``), int8 included.

``export_tiny_generator`` is the other fixture: the real pipeline (``python -m export``) on a
tiny randomly initialised NAFNet (25-60 s on two cores), for the tests of the real chain. With
``lens_input=True`` (``--lens``) the NAFNet is lens-conditioned, and the export has the third
input ``lens`` = (d_f, K, dof) with a ``default`` in its manifest, as a trained lens model has.

Usage::

    python -m tests.fixture_model --out /tmp/tflite_models/fixture --size 192x288
    python -m tests.fixture_model --out /tmp/tflite_models/tiny_lens --size 192x288 --lens
    python -m tests.fixture_model --out /tmp/tflite_models/fixture_lens --size 192x288 --blur-lens --name fixture_lens
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common.hashing import file_sha256
from common.io import atomic_write_bytes, atomic_write_text
from common.metrics import psnr_array
from common.paths import REPO
from common.sizes import parse_size
from export.command import export_command
from export.convert import save_serving
from export.gates import inspect_tflite

if TYPE_CHECKING:  # export.samples imports the training data code (lightning): seconds
    from export.samples import Sample

__all__ = [
    "build_depth_fixture",
    "build_fixture",
    "export_tiny_generator",
    "run_tflite",
    "tflite_io_details",
    "write_json_atomic",
]


def _gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    k2 = np.outer(g, g)
    return (k2 / k2.sum()).astype(np.float32)


def _build_keras(height: int, width: int, seed: int):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    image = tf.keras.Input(shape=(height, width, 3), batch_size=1, name="image")
    depth = tf.keras.Input(shape=(height, width, 1), batch_size=1, name="depth")

    # Fixed Gaussian, one per channel: DEPTHWISE_CONV_2D, which every TFLite delegate supports.
    # Mirror padding first, so the borders are not darkened by zeros.
    k = _gaussian_kernel(9, 3.0)
    padded = tf.keras.layers.Lambda(lambda t: tf.pad(t, [[0, 0], [4, 4], [4, 4], [0, 0]], "REFLECT"))(image)
    gauss = tf.keras.layers.DepthwiseConv2D(9, padding="valid", use_bias=False, name="gauss")
    blurred = gauss(padded)
    gauss.set_weights([np.repeat(k[:, :, None, None], 3, axis=2)])

    x = tf.keras.layers.Concatenate(axis=-1)([image, depth])  # (1, H, W, 4): RGB + depth
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.Conv2D(3, 3, padding="same")(x)

    far = tf.keras.layers.Lambda(lambda d: 1.0 - d)(depth)  # 1 = near, so far gets the blur
    blur_term = tf.keras.layers.Multiply()([far, tf.keras.layers.Subtract()([blurred, image])])
    refine = tf.keras.layers.Rescaling(0.05)(x)
    bokeh = tf.keras.layers.Add(name="bokeh")([image, blur_term, refine])
    return tf.keras.Model(inputs=[image, depth], outputs=bokeh)


# The lens fixture's blur levels: radius in pixels of the model's input, and the Gaussian sigma
# that stands in for a disk of that radius (a disk of radius R has the variance of a Gaussian of
# sigma R / 2). 12 px at 192x288 is the auto-focus blur of the far plane (0.0163 * 288 / 0.4).
LENS_FIXTURE_RADII = (0.0, 1.5, 3.0, 6.0, 12.0)


def _build_keras_lens(height: int, width: int):
    """A lens-conditioned stand-in: radius = K * max(|depth - d_f| - dof, 0) (the manifest's lens
    units), and the output blends Gaussian blur levels by that radius, piecewise linearly, so that
    the sharp region follows d_f and the blur grows with K (no learnt weights at all)."""
    import tensorflow as tf

    image = tf.keras.Input(shape=(height, width, 3), batch_size=1, name="image")
    depth = tf.keras.Input(shape=(height, width, 1), batch_size=1, name="depth")
    lens = tf.keras.Input(shape=(1, 1, 3), batch_size=1, name="lens")

    def radius(t):
        d, lens = t
        d_f, k, dof = lens[..., 0:1], lens[..., 1:2], lens[..., 2:3]  # (1, 1, 1, 1) each
        return k * tf.nn.relu(tf.abs(d - d_f) - dof)  # (1, H, W, 1) px

    r = tf.keras.layers.Lambda(radius, name="radius")([depth, lens])
    levels = [image]
    for i, rad in enumerate(LENS_FIXTURE_RADII[1:]):
        sigma = rad / 2.0
        half = int(np.ceil(3 * sigma))
        padded = tf.keras.layers.Lambda(lambda t, h=half: tf.pad(t, [[0, 0], [h, h], [h, h], [0, 0]], "REFLECT"))(image)
        conv = tf.keras.layers.DepthwiseConv2D(2 * half + 1, padding="valid", use_bias=False, name=f"blur{i}")
        levels.append(conv(padded))
        conv.set_weights([np.repeat(_gaussian_kernel(2 * half + 1, sigma)[:, :, None, None], 3, axis=2)])

    def blend(t):
        rad, *lv = t
        out = lv[0]
        for i in range(1, len(lv)):
            lo, hi = LENS_FIXTURE_RADII[i - 1], LENS_FIXTURE_RADII[i]
            w = tf.clip_by_value((rad - lo) / (hi - lo), 0.0, 1.0)
            out = out + w * (lv[i] - lv[i - 1])
        return out

    bokeh = tf.keras.layers.Lambda(blend, name="bokeh")([r, *levels])
    return tf.keras.Model(inputs=[image, depth, lens], outputs=bokeh)


def tflite_io_details(model_path: str | os.PathLike) -> dict:
    """Signature-level names, shapes and dtypes of a .tflite file, read with the TFLite interpreter.

    Returns ``{"inputs": [{"name", "tensor_name", "shape", "dtype"}...], "outputs": [...]}`` in
    the model's own tensor order. ``name`` is the signature key (what LiteRT's signature runners
    and the manifest use); when the file has no signature it falls back to the tensor name with
    the converter's ``serving_default_`` prefix and ``:0`` suffix removed.
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path))
    sigs = interp.get_signature_list()
    by_index: dict[int, str] = {}
    if sigs:
        key = next(iter(sigs))
        runner = interp.get_signature_runner(key)
        for kind, details in (("in", runner.get_input_details()), ("out", runner.get_output_details())):
            for sig_name, d in details.items():
                by_index[(kind, d["index"])] = sig_name

    def _clean(tensor_name: str) -> str:
        n = tensor_name.split(":")[0]
        return n[len("serving_default_") :] if n.startswith("serving_default_") else n

    out = {}
    for kind, details in (("in", interp.get_input_details()), ("out", interp.get_output_details())):
        out["inputs" if kind == "in" else "outputs"] = [
            {
                "name": by_index.get((kind, d["index"]), _clean(d["name"])),
                "tensor_name": d["name"],
                "shape": [int(s) for s in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name,
            }
            for d in details
        ]
    return out


def run_tflite(model_path: str | os.PathLike, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a .tflite file on named inputs with the Python TFLite interpreter (the reference)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path))
    sigs = interp.get_signature_list()
    if sigs:
        runner = interp.get_signature_runner(next(iter(sigs)))
        return {k: np.asarray(v) for k, v in runner(**inputs).items()}
    interp.allocate_tensors()
    io_details = tflite_io_details(model_path)
    for d, spec in zip(interp.get_input_details(), io_details["inputs"]):
        interp.set_tensor(d["index"], inputs[spec["name"]])
    interp.invoke()
    return {
        spec["name"]: interp.get_tensor(d["index"])
        for d, spec in zip(interp.get_output_details(), io_details["outputs"])
    }


def write_json_atomic(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def _gpu_run(path: Path, precision: str, probe: Sample) -> dict:
    """The export's GPU-run gate on the fixture file too (export/gpu_run.py), on the probe input."""
    from export.gpu_run import find_vulkan, gate_tflite, gpu_run_entry

    device, why = find_vulkan()
    if device is None:
        return gpu_run_entry(None, skipped=why)
    return gate_tflite(path, precision, [(probe.image, probe.depth)], device, num_threads=1)


def _skipped_gpu_run() -> dict:
    from export.gpu_run import gpu_run_entry

    return gpu_run_entry(None, skipped="lens fixture, for the browser tests: the GPU-run gate is not spent on it")


def build_fixture(
    out_dir: str | os.PathLike,
    size: tuple[int, int] = (192, 288),
    name: str = "fixture",
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8"),
    seed: int = 0,
    lens: bool = False,
) -> Path:
    """Build the stand-in model at ``size`` (H, W), convert it, write ``manifest.json``; return out_dir.
    ``lens=True``: the lens-conditioned stand-in (inputs image, depth, lens; ``_build_keras_lens``).

    The conversion is the exporter's own: the Keras model is saved as a SavedModel with the
    export's signature (``export.convert.save_serving``) and converted by
    ``export.tflite.convert_tflite``, int8 included (int8 kernels with float32 I/O, calibrated on
    ``export.tflite.representative_dataset``), so a fixture file is what an export makes."""
    from export.manifest import build_manifest, variant_entry, write_manifest
    from export.samples import Sample
    from export.tflite import FILE_NAMES, convert_tflite, representative_dataset
    from training.renderers.lens import default_lens

    height, width = size
    if height % 16 or width % 16:
        raise ValueError(f"size {height}x{width}: H and W must be multiples of 16, as for the generator")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = _build_keras_lens(height, width) if lens else _build_keras(height, width, seed)
    lens_default = default_lens((height, width)) if lens else None
    nchw = (0, 3, 1, 2)

    def sample(r: np.random.Generator) -> Sample:
        """Random image and depth (drawn NHWC), kept NCHW as the exporter's samples are."""
        image = r.random((1, height, width, 3), dtype=np.float32).transpose(nchw)
        depth = r.random((1, height, width, 1), dtype=np.float32).transpose(nchw)
        lens_arr = np.array(lens_default or (0.0, 0.0, 0.0), np.float32).reshape(1, 3, 1, 1)
        return Sample("random", np.ascontiguousarray(image), np.ascontiguousarray(depth), lens_arr)

    probe = sample(np.random.default_rng(seed))
    inputs = next(representative_dataset([probe], "NHWC", lens)())  # named, NHWC: the model's inputs
    keras_out = model(inputs).numpy()
    # The fixture's weights are too small for dynamic-range quantisation to touch them, hence
    # calibration on random inputs (a fixture has no data set behind it).
    calib_rng = np.random.default_rng(seed + 1)
    representative = representative_dataset([sample(calib_rng) for _ in range(4)], "NHWC", lens)

    variants = {}
    with tempfile.TemporaryDirectory(prefix="fixture_saved_model-") as saved_model:
        save_serving(model, saved_model)
        for precision in precisions:
            # The exporter's int8 settings as they are: per-tensor weights, and its float ops (RSQRT)
            # are not in this graph. Against TF's per-channel default the op census and the parity
            # were the same, and the file smaller.
            content = convert_tflite(saved_model, precision, representative)
            path = out / FILE_NAMES[precision]
            atomic_write_bytes(path, content)
            got = run_tflite(path, inputs)["bokeh"]
            # The exporter's own flatbuffer inspection (op census, Flex ops, rank, the analyzer's GPU
            # verdict on the graph the delegate sees), so a fixture's manifest says what an export's would.
            insp = inspect_tflite(content)
            variants[precision] = variant_entry(
                file=path.name,
                size_bytes=len(content),
                sha256=file_sha256(path),
                precision=precision,
                # No PyTorch model behind a fixture: parity is measured against the Keras model.
                psnr_db=psnr_array(np.clip(got, 0, 1), np.clip(keras_out, 0, 1)),  # capped by variant_entry
                max_abs_diff=float(np.max(np.abs(got - keras_out))),
                gpu_compatible=insp.gpu_compatible,
                flex_ops=insp.flex_ops,
                max_tensor_rank=insp.max_tensor_rank,
                op_census=insp.op_census,
                # The lens fixture is for the browser tests only: the GPU-run gate is not spent on it.
                gpu_run=_gpu_run(path, precision, probe) if not lens else _skipped_gpu_run(),
            )

    # The exporter's own manifest code, so the fixture follows the shared schema by construction
    # (export.manifest.write_manifest validates the keys and writes atomically).
    manifest = build_manifest(
        name,
        source={
            "checkpoint": "",
            "checkpoint_sha256": "",
            "arch": {
                "fixture": "Gaussian blur levels blended by the lens's blur radius"
                if lens
                else "depth-weighted Gaussian blur + random 2-conv branch",
                "seed": seed,
            },
            "training_config": {},
        },
        size=(height, width),
        layout="NHWC",
        converter="tf.lite.TFLiteConverter (fixture)",
        variants=variants,
        # No ONNX stage behind a fixture; the keys stay so the schema check still applies.
        onnx={"file": None, "sha256": None, "max_abs_diff_vs_pytorch": None},
        lens_default=lens_default,
    )
    write_manifest(out, manifest)
    return out


def export_tiny_generator(
    out_dir: str | os.PathLike,
    size: tuple[int, int] = (192, 288),
    precisions: tuple[str, ...] = ("fp32", "fp16"),
    parity_data: str | os.PathLike = REPO / "web_demo" / "samples",
    seed: int = 0,
    converter: str = "onnx2tf",
    lens_input: bool = False,
) -> Path:
    """``python -m export`` on a tiny random generator (training.model.NAFNet, width 4, one block per level).

    ``converter="onnx-tf"`` gives an NCHW model, onnx2tf (the exporter's default) an NHWC one.
    ``lens_input=True`` builds ``NAFNet(..., lens_input=True)``: the export then takes a third input
    ``lens`` and its manifest gives the default lens (the exporter's, ``default_lens(size)``).
    """
    import subprocess

    import torch

    from training.model import NAFNet

    out = Path(out_dir)
    torch.manual_seed(seed)
    arch = {
        "width": 4,
        "enc_blocks": (1, 1, 1, 1),
        "middle_blocks": 1,
        "dec_blocks": (1, 1, 1, 1),
        "lens_input": lens_input,
    }
    gen = NAFNet(**arch)
    # NAFNet starts as the identity (block scales beta = gamma = 0, zero ending conv): an untrained
    # export would return the photo unchanged and a comparison of outputs would prove nothing.
    with torch.no_grad():
        for pname, param in gen.named_parameters():
            if pname.endswith(("beta", "gamma")):
                param.normal_(0.0, 0.5)
            elif pname == "ending.weight":
                param.normal_(0.0, 0.05)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = out.parent / f".{out.name}_generator.pt"
    torch.save({"generator": gen.state_dict(), "arch": arch}, ckpt)
    cmd = export_command(
        ckpt, size, out, precisions=precisions, parity_data=parity_data, parity_samples=1, converter=converter
    )
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    ckpt.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"python -m export failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return out


DEPTH_FIXTURE_INPUT = (96, 144)  # (h, w) of the depth fixture's input; its output is half that


def build_depth_fixture(path: str | os.PathLike, size: tuple[int, int] = DEPTH_FIXTURE_INPUT) -> Path:
    """A user's depth .tflite, in the contract the page and the app read (web_demo/depth.js
    DEPTH_MODEL, model_spec.json "depth_model"): float32 [1, h, w, 3] normalised RGB in, one
    [1, h/2, w/2] map out, bigger = nearer. Not a depth estimator: a fixed function of the pixels
    (a colour projection, 2×2 average-pooled) that makes a wrong normalisation, layout or resize
    visible in the map the page derives from it."""
    import tensorflow as tf

    h, w = size
    x = tf.keras.Input(shape=(h, w, 3), batch_size=1, name="image")
    proj = tf.keras.layers.Conv2D(1, 1, use_bias=True, name="proj")
    y = tf.keras.layers.AveragePooling2D(2)(proj(x))
    y = tf.keras.layers.Reshape((h // 2, w // 2), name="disparity")(y)
    proj.set_weights([np.array([1.0, 0.5, -0.75], np.float32).reshape(1, 1, 3, 1), np.array([0.3], np.float32)])
    model = tf.keras.Model(x, y)
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, content)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder, e.g. /tmp/tflite_models/fixture")
    ap.add_argument("--size", type=parse_size, default=(192, 288), help="HxW, multiples of 16")
    ap.add_argument(
        "--name",
        default="fixture",
        help="manifest name of the TF-built stand-in (a --lens export is named after its --out folder)",
    )
    ap.add_argument(
        "--lens",
        action="store_true",
        help="instead of the stand-in, export a tiny random lens-conditioned NAFNet with the real "
        "exporter (inputs image, depth, lens; fp32 and fp16; about a minute)",
    )
    ap.add_argument(
        "--blur-lens",
        action="store_true",
        help="the TF-built lens stand-in: inputs image, depth, lens; Gaussian blur levels blended by "
        "the lens's blur radius, so tap-to-focus and the strength slider visibly act (seconds)",
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.lens:
        out = export_tiny_generator(args.out, args.size, lens_input=True)
    else:
        out = build_fixture(
            args.out,
            args.size,
            args.name,
            lens=args.blur_lens,
            precisions=("fp32", "fp16") if args.blur_lens else ("fp32", "fp16", "int8"),
        )
    print(out / "manifest.json")


if __name__ == "__main__":
    main()
