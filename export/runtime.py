"""One way to run the generator, whatever form it is in: ``load_runner(path)``.

Evaluation, the CPU benchmark, the export gates and the web/Android tests all call

    runner = load_runner("tflite_models/<name>/bokeh_fp32.tflite", num_threads=2)
    bokeh = runner(image, depth)  # (1, 3, H, W) float32 [0, 1], (1, 1, H, W) -> (1, 3, H, W)
    bokeh = runner(image, depth, lens)  # a lens-conditioned model: lens (1, 3, 1, 1) = (d_f, K, dof)

and get the same NCHW float32 interface from

* a ``.tflite`` file: the LiteRT interpreter (``ai_edge_litert``; ``tf.lite.Interpreter`` if it
  is missing) with the XNNPACK CPU delegate, which both apply by default to float and int8 models;
* a ``.onnx`` file: ONNX Runtime on the CPU;
* a checkpoint (``.ckpt`` / ``.pt``) or ``model.safetensors``: PyTorch, through
  ``training.checkpoint.load_generator``.

When a ``manifest.json`` lies beside the file, the runner takes the model's name, layout and
precision from it; otherwise it reads the layout off the input tensors. The output is returned as
the network computes it, not clamped. ``runner.lens_input`` says whether the model reads a lens; a
depth-only model (the paper's) ignores one, so one call serves both kinds in an evaluation. The
lens may be given as the array or as a ``training.renderers.lens.LensParams`` (anything with
``network_input()``), which is what a classical renderer behind the same interface
(``eval.runners``) needs. ``runner.source`` says where the model came from, for reports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from common.hashing import file_sha256
from export.manifest import MANIFEST_NAME, read_manifest

__all__ = ["Runner", "load_runner", "TFLiteRunner", "OnnxRunner", "TorchRunner"]

TFLITE_SUFFIXES = (".tflite",)
ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors")


class Runner:
    """Common interface: ``runner(image, depth[, lens]) -> bokeh``, all NCHW float32 numpy arrays."""

    lens_input: bool = False
    name: str
    precision: str
    input_size: tuple[int, int] | None  # (H, W) the model was exported for; None = any multiple of 16
    backend: str  # e.g. "LiteRT 2.3.0 (XNNPACK)"
    num_threads: int
    source: dict[str, Any]  # where the model came from: {"kind", "path", "sha256", ...}, for reports

    def __call__(self, image: np.ndarray, depth: np.ndarray, lens: Any = None) -> np.ndarray:
        return self.to_nchw(self.invoke(self.prepare(self.inputs(image, depth, lens))))

    def inputs(self, image: np.ndarray, depth: np.ndarray, lens: Any = None) -> dict[str, np.ndarray]:
        """Checked NCHW float32 inputs by graph name (the lens only for a model that reads one)."""
        image, depth = np.asarray(image, np.float32), np.asarray(depth, np.float32)
        self._check(image, depth)
        named = {"image": image, "depth": depth}
        if self.lens_input:
            if lens is None:
                raise ValueError(
                    f"{self.name}: this model takes a lens input (d_f, K, dof); pass lens, e.g. "
                    "auto_focus(depth) from training.renderers.lens or the manifest's default"
                )
            if hasattr(lens, "network_input"):  # a LensParams: the three values a network reads
                lens = lens.network_input()
            lens = np.asarray(lens, np.float32)
            if lens.size != 3:
                raise ValueError(f"{self.name}: lens must hold 3 values (d_f, K, dof), got shape {lens.shape}")
            lens = lens.reshape(1, 3, 1, 1)
            d_f, k, dof = lens.ravel().tolist()
            if not np.isfinite(lens).all() or not 0.0 <= d_f <= 1.0 or k < 0 or not 0.0 <= dof <= 0.5:
                raise ValueError(
                    f"{self.name}: lens must be (d_f in [0, 1], K >= 0, dof in [0, 0.5]), got {[d_f, k, dof]}"
                )
            named["lens"] = lens
        return named

    # The three steps of a call, apart so that a benchmark can time ``invoke`` alone.
    def prepare(self, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Named NCHW arrays → the runtime's own inputs (layout, container)."""
        return inputs

    def invoke(self, inputs: dict[str, Any]) -> Any:
        """One inference on prepared inputs; the output in the runtime's own form."""
        raise NotImplementedError

    def to_nchw(self, output: Any) -> np.ndarray:
        return output

    def _check(self, image: np.ndarray, depth: np.ndarray) -> None:
        if image.ndim != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"{self.name}: image must be (1, 3, H, W), got {image.shape}")
        if depth.shape != (1, 1, *image.shape[2:]):
            raise ValueError(
                f"{self.name}: depth must be (1, 1, {image.shape[2]}, {image.shape[3]}), got {depth.shape}"
            )
        if self.input_size is not None and tuple(image.shape[2:]) != tuple(self.input_size):
            h, w = self.input_size
            raise ValueError(
                f"{self.name}: this model was exported for {h}x{w} inputs, got {image.shape[2]}x{image.shape[3]}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.precision}, {self.input_size}, {self.backend})"


def _file_source(kind: str, path: Path, num_threads: int) -> dict[str, Any]:
    return {"kind": kind, "path": str(path), "sha256": file_sha256(path), "threads": num_threads}


def _manifest_beside(path: Path) -> dict[str, Any] | None:
    return read_manifest(path.parent) if (path.parent / MANIFEST_NAME).is_file() else None


class TFLiteRunner(Runner):
    def __init__(self, path: str | Path, num_threads: int = 2, layout: str | None = None) -> None:
        path = Path(path)
        try:
            from ai_edge_litert import __version__ as litert_version
            from ai_edge_litert.interpreter import Interpreter

            self.backend = f"LiteRT {litert_version} (ai-edge-litert, XNNPACK)"
        except ImportError:  # the LiteRT wheel is optional: TensorFlow ships an older interpreter
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
            self.backend = f"TensorFlow Lite {tf.__version__} (XNNPACK)"
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{path}: not a loadable TFLite model ({e})") from e
        self.num_threads = num_threads
        sigs = self.interpreter.get_signature_list()
        if len(sigs) != 1:
            raise ValueError(f"{path}: expected one signature (image, depth -> bokeh), found {list(sigs)}")
        self._key = next(iter(sigs))
        names = sorted(sigs[self._key]["inputs"])
        if names not in (["depth", "image"], ["depth", "image", "lens"]):
            raise ValueError(f"{path}: inputs are {sigs[self._key]['inputs']}, expected image, depth (and lens)")
        self.lens_input = "lens" in names
        self._runner = self.interpreter.get_signature_runner(self._key)
        self._out_name = sigs[self._key]["outputs"][0]
        image_shape = tuple(self._runner.get_input_details()["image"]["shape"])

        manifest = _manifest_beside(path)
        variant = next((v for v in (manifest or {}).get("variants", {}).values() if v["file"] == path.name), None)
        self.name = manifest["name"] if manifest else path.parent.name or path.stem
        if layout is None:
            layout = manifest["inputs"][0]["layout"] if manifest else ("NHWC" if image_shape[-1] == 3 else "NCHW")
        self.layout = layout
        self.input_size = tuple(int(x) for x in (image_shape[1:3] if layout == "NHWC" else image_shape[2:4]))
        m = re.search(r"(fp32|fp16|int8)", path.name)
        self.precision = variant["precision"] if variant else (m.group(1) if m else "fp32")
        self.source = _file_source("tflite", path, num_threads)

    def prepare(self, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if self.layout == "NHWC":
            return {k: np.ascontiguousarray(v.transpose(0, 2, 3, 1)) for k, v in inputs.items()}
        return {k: np.ascontiguousarray(v) for k, v in inputs.items()}

    def invoke(self, inputs: dict[str, Any]) -> np.ndarray:
        return self._runner(**inputs)[self._out_name]

    def to_nchw(self, output: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(output.transpose(0, 3, 1, 2)) if self.layout == "NHWC" else output


class OnnxRunner(Runner):
    def __init__(
        self, path: str | Path, num_threads: int = 2, flush_denormals: bool = False, spin: bool = True
    ) -> None:
        import onnxruntime as ort

        path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        if flush_denormals:
            options.add_session_config_entry("session.set_denormal_as_zero", "1")
        if not spin:  # idle threads sleep instead of spinning: better when other work shares the cores
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a loadable ONNX model ({e})") from e
        self.backend = f"ONNX Runtime {ort.__version__} (CPU)"
        self.num_threads = num_threads
        manifest = _manifest_beside(path)
        self.name = manifest["name"] if manifest else path.stem
        self.precision = "fp32"
        shape = {i.name: i.shape for i in self.session.get_inputs()}
        if set(shape) not in ({"image", "depth"}, {"image", "depth", "lens"}):
            raise ValueError(f"{path}: inputs are {sorted(shape)}, expected image, depth (and lens)")
        self.lens_input = "lens" in shape
        h, w = shape["image"][2:4]
        self.input_size = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self._out_name = self.session.get_outputs()[0].name
        self.source = _file_source("onnx", path, num_threads)

    def invoke(self, inputs: dict[str, Any]) -> np.ndarray:
        return self.session.run([self._out_name], inputs)[0]


class TorchRunner(Runner):
    def __init__(self, path: str | Path, num_threads: int = 2, flush_denormals: bool = False) -> None:
        # Only here: a TFLite or ONNX runner's process (eval.benchmark's timing worker) must not load torch.
        import torch  # noqa: PLC0415

        from training.checkpoint import load_generator  # noqa: PLC0415

        self.checkpoint = load_generator(path)
        self.generator = self.checkpoint.generator.eval()
        torch.set_num_threads(num_threads)  # process-wide: PyTorch has no per-model thread pool
        if flush_denormals:
            torch.set_flush_denormal(True)  # process-wide as well
        self.backend = f"PyTorch {torch.__version__} (CPU)"
        self.num_threads = num_threads
        self.name = Path(path).stem
        self.precision = "fp32"
        self.input_size = None
        self.lens_input = bool(self.generator.lens_input)
        ck = self.checkpoint
        self.source = {"kind": "checkpoint", "path": str(ck.path), "sha256": ck.sha256, "arch": dict(ck.arch)}

    def _check(self, image: np.ndarray, depth: np.ndarray) -> None:
        super()._check(image, depth)
        m = self.generator.multiple
        if image.shape[2] % m or image.shape[3] % m:
            raise ValueError(f"{self.name}: height and width must be multiples of {m}, got {image.shape[2:]}")

    def prepare(self, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch  # noqa: PLC0415

        return {k: torch.from_numpy(v) for k, v in inputs.items()}

    def invoke(self, inputs: dict[str, Any]) -> Any:
        import torch  # noqa: PLC0415

        with torch.inference_mode():
            return self.generator(inputs["image"], inputs["depth"], inputs.get("lens"))

    def to_nchw(self, output: Any) -> np.ndarray:
        return output.numpy()


def load_runner(path: str | Path, num_threads: int = 2, flush_denormals: bool = False, spin: bool = True) -> Runner:
    """A runner for a ``.tflite``, ``.onnx``, PyTorch checkpoint or ``.safetensors`` file (chosen by suffix).

    ``flush_denormals`` treats subnormal floats as zero in ONNX Runtime and PyTorch, as XNNPACK
    always does (it runs every operator with ``PTHREADPOOL_FLAG_DISABLE_DENORMALS``). Subnormal
    arithmetic is ~100x slower on x86, so latency comparisons should set it; results differ only
    below 1.2e-38. ``spin=False`` stops ONNX Runtime's worker threads from spinning while they wait
    (PyTorch's OpenMP threads read ``OMP_WAIT_POLICY=PASSIVE`` from the environment at start-up).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in TFLITE_SUFFIXES:
        return TFLiteRunner(path, num_threads)
    if suffix in ONNX_SUFFIXES:
        return OnnxRunner(path, num_threads, flush_denormals, spin)
    if suffix in CHECKPOINT_SUFFIXES:
        return TorchRunner(path, num_threads, flush_denormals)
    raise ValueError(f"{path}: unknown model type {suffix!r} (expected .tflite, .onnx, .ckpt, .pt or .safetensors)")
