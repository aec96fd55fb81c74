"""The models an evaluation compares, all behind ``export.runtime.Runner``'s one interface.

``runner(image, depth, lens) -> bokeh`` on NCHW float32 arrays, with ``runner.lens_input``,
``runner.name`` and ``runner.source``. ``export.runtime.load_runner`` gives it for a checkpoint,
an ONNX file or a TFLite file; this module adds the two that are not networks:

* ``RendererRunner``: a classical renderer of the related papers (``training.renderers``:
  scatter, layered, blend). It reads a lens; given a full ``LensParams`` (a synthetic scene's
  ``<split>/lens/<id>.json`` also holds gamma and the aperture), it renders with all of it;
  given the network's three values (d_f, K, dof), with the project's defaults for the rest.
* ``IdentityRunner``: output = input, the score a model must beat to have learnt anything.

``load_runners`` names and loads a mix of them, in table order, for ``eval.evaluate.evaluate``::

    runners = load_runners(checkpoint="last.ckpt", tflite=["bokeh_fp16.tflite"],
                           renderers=["scatter"], identity=True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.runtime import Runner, load_runner
from training.renderers import get_renderer
from training.renderers.lens import LensParams

__all__ = ["IdentityRunner", "RendererRunner", "load_runners", "split_name"]


class IdentityRunner(Runner):
    """Output = input: the floor any bokeh model must beat (its PSNR is that of doing nothing)."""

    lens_input = False

    def __init__(self) -> None:
        self.name, self.precision, self.input_size = "identity", "fp32", None
        self.backend, self.num_threads = "numpy", 1
        self.source = {"kind": "identity"}

    def invoke(self, inputs: dict[str, Any]) -> np.ndarray:
        return inputs["image"].copy()


class RendererRunner(Runner):
    """A classical renderer from ``training.renderers``; it takes the image's lens."""

    lens_input = True

    def __init__(self, name: str) -> None:
        self.renderer = get_renderer(name)
        self.name, self.precision, self.input_size = name, "fp32", None
        self.backend, self.num_threads = "PyTorch (classical renderer)", torch.get_num_threads()
        self.source = {"kind": "renderer", "name": name}

    def __call__(self, image: np.ndarray, depth: np.ndarray, lens: Any = None) -> np.ndarray:
        named = self.inputs(image, depth, lens)  # checks the shapes and the lens values
        if not isinstance(lens, LensParams):
            d_f, k, dof = (float(v) for v in named["lens"].ravel())
            lens = LensParams(K=k, d_f=d_f, dof=dof)
        with torch.inference_mode():
            out = self.renderer.render(torch.from_numpy(named["image"]), torch.from_numpy(named["depth"]), lens)
        return out.float().numpy()


def split_name(spec: str | os.PathLike) -> tuple[str | None, str]:
    """``NAME=PATH`` → (NAME, PATH); a plain path → (None, path)."""
    s = str(spec)
    if "=" in s and not Path(s).exists():
        name, path = s.split("=", 1)
        if name and "/" not in name and os.sep not in name:
            return name, path
    return None, s


def _default_name(kind: str, path: str, count: int) -> str:
    """The table name of an unnamed file: "pytorch" / "onnx" when it is the only one of its kind,
    else "<kind>_<stem>"; a TFLite file by its precision ("tflite_fp16" for ``bokeh_fp16.tflite``)."""
    stem = Path(path).stem
    if kind == "tflite":
        return "tflite_" + stem.removeprefix("bokeh_")
    return kind if count == 1 else f"{kind}_{stem}"


def _as_list(x: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    if x is None:
        return []
    return [str(x)] if isinstance(x, (str, os.PathLike)) else [str(v) for v in x]


def load_runners(
    checkpoint: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    onnx: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    tflite: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    renderers: Sequence[str] = (),
    identity: bool = False,
    num_threads: int | None = None,
) -> dict[str, Runner]:
    """The named runners, in table order: checkpoint(s) ("pytorch"), ONNX ("onnx"), TFLite
    ("tflite_fp32" for ``bokeh_fp32.tflite``, else "tflite_<stem>"), renderers (by name),
    identity. Any path may be given as ``NAME=PATH`` to choose its name. A missing or unreadable
    file raises FileNotFoundError / ValueError naming it, before anything is evaluated."""
    threads = num_threads or torch.get_num_threads()
    runners: dict[str, Runner] = {}

    def add(name: str, runner: Runner) -> None:
        if name in runners:
            raise ValueError(f"two models are named {name!r}; name them with NAME=PATH")
        runners[name] = runner

    for kind, specs in (("pytorch", _as_list(checkpoint)), ("onnx", _as_list(onnx)), ("tflite", _as_list(tflite))):
        for spec in specs:
            name, path = split_name(spec)
            add(name or _default_name(kind, path, len(specs)), load_runner(path, threads))
    for r in renderers:
        add(r, RendererRunner(r))
    if identity:
        add("identity", IdentityRunner())
    return runners
