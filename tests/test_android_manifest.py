"""The Android app's contract with an exported model, checked on the files the app reads.

The app (android_demo/, not buildable here: no Android SDK) reads three things of a model, and each
test below reads them as the app does and checks that they agree with each other:

* ``android_demo/app/src/main/assets/model_spec.json`` (``ModelSpec.kt``): what the app feeds and
  reads, tensor names ``image``/``depth`` (+ the optional ``lens``) and ``bokeh``, NHWC float32 in
  [0, 1], the file names the ``copyModel`` Gradle task copies;
* ``tflite_models/<name>/manifest.json`` (``ExportManifest.kt``): the export's inputs in order,
  their shapes, the lens input's values and its default (fed when there is no depth map);
* the ``.tflite`` files themselves (``BokehHelper.checkTensors``), read with LiteRT's
  ``Interpreter``: the signature's tensors by name, their shapes and dtypes, and how many inputs
  there are (an unfed input fails inside the interpreter).

They run on every shipped model and on a fixture export written by the exporter's manifest code.
``test_each_check_can_fail`` breaks one thing at a time and expects the check for it to fail. The
Kotlin and Gradle sources are checked in ``tests/test_android_sources.py``.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SPEC_PATH = REPO / "android_demo" / "app" / "src" / "main" / "assets" / "model_spec.json"
SHIPPED = sorted(p.parent for p in (REPO / "tflite_models").glob("*/manifest.json"))


# ------------------------------------------------------------------ reading what the app reads


def tflite_tensors(path: Path) -> dict:
    """A .tflite file's tensors as the app finds them: by the first signature's names (else by tensor
    name without the converter's ``serving_default_`` and ``:0``), with shape and dtype, and how many
    inputs the interpreter has. Not their positions: the app feeds by name (a Keras-built file lists
    depth before image)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))

    def plain(tensor_name: str) -> str:
        return tensor_name.split(":")[0].removeprefix("serving_default_")

    def described(details: list[dict] | dict) -> dict:
        items = details.items() if isinstance(details, dict) else ((plain(d["name"]), d) for d in details)
        return {n: {"shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name} for n, d in items}

    signatures = it.get_signature_list()
    if signatures:
        runner = it.get_signature_runner(next(iter(signatures)))
        inputs, outputs = described(runner.get_input_details()), described(runner.get_output_details())
    else:
        inputs, outputs = described(it.get_input_details()), described(it.get_output_details())
    return {"inputs": inputs, "outputs": outputs, "count": len(it.get_input_details())}


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def _lens_entry(spec: dict, manifest: dict) -> dict | None:
    return next((t for t in manifest["inputs"] if t.get("name") == spec["lens_input"]["name"]), None)


# ------------------------------------------------------------------ the checks, one per agreement


def check_inputs_and_order(spec: dict, manifest: dict, model_dir: Path) -> None:
    """The manifest lists the spec's inputs in the spec's order (+ the lens last, for a lens export),
    each with the layout, dtype, range and normalisation the app feeds, and the output it reads."""
    assert manifest.get("format_version") == spec["manifest_format_version"], "format_version"
    names = [t.get("name") for t in manifest["inputs"]]
    want = [t["name"] for t in spec["inputs"]]
    if _lens_entry(spec, manifest) is not None:
        want.append(spec["lens_input"]["name"])
    assert names == want, f"inputs {names}, the app feeds {want}"
    assert [t.get("name") for t in manifest["outputs"]] == [t["name"] for t in spec["outputs"]], "outputs"
    for kind, key in (("inputs", "normalisation"), ("outputs", "postprocess")):
        for t, s in zip(manifest[kind], spec[kind]):
            for field in ("layout", "dtype"):
                assert t.get(field) == s[field], f"{t['name']}: {field} {t.get(field)!r}, app uses {s[field]!r}"
            assert [float(v) for v in t.get("range", [])] == [float(v) for v in s["range"]], f"{t['name']}: range"
            assert _norm(t.get(key, "")) == _norm(s[key]), f"{t['name']}: {key} {t.get(key)!r}"


def check_shapes(spec: dict, manifest: dict, model_dir: Path) -> None:
    """Image, depth and bokeh are [1, H, W, C] of one size, H and W multiples of the spec's."""
    by_name = {t["name"]: t for t in manifest["inputs"] + manifest["outputs"]}
    sizes = set()
    for s in spec["inputs"] + spec["outputs"]:
        shape = by_name[s["name"]]["shape"]
        assert len(shape) == 4 and shape[0] == 1 and shape[3] == s["channels"], f"{s['name']}: shape {shape}"
        assert shape[1] % spec["size_multiple"] == 0 and shape[2] % spec["size_multiple"] == 0, (
            f"{s['name']}: {shape[1]}x{shape[2]} not a multiple of {spec['size_multiple']}"
        )
        sizes.add((shape[1], shape[2]))
    assert len(sizes) == 1, f"inputs and outputs differ in size: {sorted(sizes)}"


def check_variants(spec: dict, manifest: dict, model_dir: Path) -> None:
    """Every variant is the file copyModel copies, and it is there; the app's default precision is one."""
    variants = manifest["variants"]
    assert spec["default_precision"] in variants, f"default precision {spec['default_precision']} not exported"
    for precision, v in variants.items():
        assert precision in spec["precisions"], f"variant {precision}: the app knows {spec['precisions']}"
        want = spec["model_file_pattern"].format(precision=precision)
        assert v["file"] == want, f"variants.{precision}.file {v['file']!r}, copyModel copies {want!r}"
        assert (model_dir / v["file"]).is_file(), f"{model_dir / v['file']}: missing"


def check_tflite(spec: dict, manifest: dict, model_dir: Path) -> None:
    """Each .tflite file has as many inputs as the manifest lists, and its inputs and output by name,
    with its shapes, all float32 (BokehHelper.checkTensors); the lens, when there is one, is [1, 1, 1, 3]."""
    for v in manifest["variants"].values():
        io = tflite_tensors(model_dir / v["file"])
        names = [t["name"] for t in manifest["inputs"]]
        assert io["count"] == len(names), f"{v['file']} has {io['count']} inputs, the manifest lists {names}"
        for kind in ("inputs", "outputs"):
            assert sorted(io[kind]) == sorted(t["name"] for t in manifest[kind]), f"{v['file']}: {kind} {io[kind]}"
            for t in manifest[kind]:
                got = io[kind][t["name"]]
                assert (got["shape"], got["dtype"]) == (t["shape"], "float32"), (
                    f"{v['file']}: {t['name']} is {got['dtype']}{got['shape']}, manifest float32{t['shape']}"
                )
        if spec["lens_input"]["name"] in io["inputs"]:
            assert io["inputs"][spec["lens_input"]["name"]]["shape"] == spec["lens_input"]["shape"]


def check_lens(spec: dict, manifest: dict, model_dir: Path) -> None:
    """A lens export's lens input is the tensor the app fills: layout, dtype, shape and the order of
    (d_f, K, dof); its default is the exporter's rule for the model's size (auto-focus's on a
    portrait: d_f 0.8, dof 0.1, K = 0.0163 W / (0.8 - 0.1)), within the ranges the app accepts."""
    from training.renderers.lens import default_lens

    lens = _lens_entry(spec, manifest)
    if lens is None:  # a depth-only export (the paper's): nothing more to agree on
        return
    want = spec["lens_input"]
    for field in ("layout", "dtype", "shape", "values"):
        assert lens.get(field) == want[field], f"lens: {field} {lens.get(field)!r}, the app feeds {want[field]!r}"
    d = lens.get("default")
    assert isinstance(d, list) and len(d) == 3 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in d), (
        f"lens: default {d!r}"
    )
    assert 0 <= d[0] <= 1 and d[1] >= 0 and 0 <= d[2] <= 0.5, f"lens: default {d} out of the app's ranges"
    _, H, W, _ = manifest["inputs"][0]["shape"]
    assert d == pytest.approx(list(default_lens((H, W))), abs=5e-5), f"lens: default {d} is not default_lens"
    assert d == pytest.approx([0.8, 0.0163 * W / 0.7, 0.1], abs=5e-5), f"lens: default {d} for width {W}"


CHECKS = (check_inputs_and_order, check_shapes, check_variants, check_tflite, check_lens)


# ------------------------------------------------------------------ the exports


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def fixture_export(tmp_path_factory) -> Path:
    from tests.fixture_model import build_fixture

    return build_fixture(tmp_path_factory.mktemp("export") / "fixture", size=(32, 48), precisions=("fp32", "fp16"))


@pytest.fixture(params=[*[p.name for p in SHIPPED], pytest.param("fixture", marks=pytest.mark.slow)])
def export(request) -> Path:
    """Each shipped model (tflite_models/<name>/), then a depth-only fixture export."""
    if request.param == "fixture":
        return request.getfixturevalue("fixture_export")
    return REPO / "tflite_models" / request.param


def _manifest(model_dir: Path) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())


# ------------------------------------------------------------------ the app's spec


def test_spec_states_the_shared_conventions(spec):
    """model_spec.json against the shared manifest conventions (written out independently here)."""
    inputs = {t["name"]: t for t in spec["inputs"]}
    assert set(inputs) == {"image", "depth"} and [t["name"] for t in spec["outputs"]] == ["bokeh"]
    assert inputs["image"]["channels"] == 3 and inputs["depth"]["channels"] == 1
    for t in spec["inputs"] + spec["outputs"]:
        assert (t["layout"], t["dtype"], t["range"]) == ("NHWC", "float32", [0, 1]), t
    assert spec["model_file_pattern"].format(precision="fp16") == "bokeh_fp16.tflite"
    assert spec["manifest_asset"] == "manifest.json"
    assert spec["precisions"] == ["fp32", "fp16", "int8"]
    assert spec["default_precision"] in spec["precisions"]
    lens = spec["lens_input"]
    assert (lens["name"], lens["optional"], lens["layout"], lens["dtype"]) == ("lens", True, "NHWC", "float32")
    assert lens["shape"] == [1, 1, 1, 3] and lens["values"] == ["d_f", "K", "dof"]


def test_spec_lens_is_what_the_exporter_writes(spec):
    from export.manifest import lens_spec

    exported = lens_spec("NHWC", (0.8, 35.77, 0.1))
    assert {k: exported[k] for k in ("name", "layout", "dtype", "shape", "values")} == {
        k: spec["lens_input"][k] for k in ("name", "layout", "dtype", "shape", "values")
    }


def test_a_shipped_lens_model_is_there_to_bundle():
    """copyModel bundles ../tflite_models/<bokehModel> (without -PbokehModel, the only folder there
    with a manifest): there is one, and eval.render's default model, a lens export, is among them."""
    from eval.render import DEFAULT_MODEL

    assert SHIPPED, "no tflite_models/*/manifest.json: the app has no model to bundle"
    assert DEFAULT_MODEL.parent in SHIPPED
    assert [t["name"] for t in _manifest(DEFAULT_MODEL.parent)["inputs"]] == ["image", "depth", "lens"]


# ------------------------------------------------------------------ spec, manifest and .tflite agree


def test_manifest_inputs_are_the_apps_in_its_order(spec, export):
    check_inputs_and_order(spec, _manifest(export), export)


def test_manifest_shapes_are_one_size_the_app_can_feed(spec, export):
    check_shapes(spec, _manifest(export), export)


def test_variants_are_the_files_copy_model_copies(spec, export):
    check_variants(spec, _manifest(export), export)


def test_tflite_tensors_are_the_manifests(spec, export):
    check_tflite(spec, _manifest(export), export)


def test_lens_input_and_default_are_what_the_app_feeds(spec, export):
    check_lens(spec, _manifest(export), export)


# Each breaks one agreement of a real export (a depth-only fixture, or the shipped lens model) and
# names the check that must then fail, with a word of its message.
BREAKS = {
    "input renamed": ("fixture", lambda m: m["inputs"][1].update(name="disparity"), check_inputs_and_order, "inputs"),
    "inputs swapped": ("fixture", lambda m: m["inputs"].reverse(), check_inputs_and_order, "inputs"),
    "NCHW layout": ("fixture", lambda m: m["inputs"][0].update(layout="NCHW"), check_inputs_and_order, "layout"),
    "range [-1, 1]": ("fixture", lambda m: m["inputs"][0].update(range=[-1, 1]), check_inputs_and_order, "range"),
    "mean/std normalisation": (
        "fixture",
        lambda m: m["inputs"][0].update(normalisation="(RGB / 255 - 0.5) / 0.5"),
        check_inputs_and_order,
        "normalisation",
    ),
    "float16 output": ("fixture", lambda m: m["outputs"][0].update(dtype="float16"), check_inputs_and_order, "dtype"),
    "size not multiple of 16": (
        "fixture",
        lambda m: [t["shape"].__setitem__(1, 40) for t in m["inputs"] + m["outputs"]],
        check_shapes,
        "multiple",
    ),
    "sizes differ": ("fixture", lambda m: m["outputs"][0]["shape"].__setitem__(2, 64), check_shapes, "differ"),
    "variant file renamed": (
        "fixture",
        lambda m: m["variants"]["fp16"].update(file="model_fp16.tflite"),
        check_variants,
        "copyModel",
    ),
    "no default precision": ("fixture", lambda m: m["variants"].pop("fp16"), check_variants, "default precision"),
    "manifest of another size": (
        "fixture",
        lambda m: [t["shape"].__setitem__(1, 64) for t in m["inputs"] + m["outputs"]],
        check_tflite,
        "bokeh_fp32.tflite: image is float32[1, 32, 48, 3]",
    ),
    "output renamed": ("fixture", lambda m: m["outputs"][0].update(name="output_0"), check_tflite, "outputs"),
    "lens left out": ("shipped", lambda m: m["inputs"].pop(), check_tflite, "has 3 inputs"),
    "lens values reordered": (
        "shipped",
        lambda m: m["inputs"][2].update(values=["K", "d_f", "dof"]),
        check_lens,
        "values",
    ),
    "NCHW lens": ("shipped", lambda m: m["inputs"][2].update(layout="NCHW", shape=[1, 3, 1, 1]), check_lens, "layout"),
    "no default": ("shipped", lambda m: m["inputs"][2].pop("default"), check_lens, "default None"),
    "two default values": ("shipped", lambda m: m["inputs"][2]["default"].pop(), check_lens, "default"),
    "d_f out of range": ("shipped", lambda m: m["inputs"][2]["default"].__setitem__(0, 1.5), check_lens, "ranges"),
    "default of another width": (
        "shipped",
        lambda m: m["inputs"][2]["default"].__setitem__(1, 0.0163 * 1024 / 0.7),
        check_lens,
        "default_lens",
    ),
    "unknown input": ("shipped", lambda m: m["inputs"].append({"name": "aperture"}), check_inputs_and_order, "inputs"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_check_can_fail(spec, fixture_export, name):
    which, edit, check, words = BREAKS[name]
    if which == "shipped":
        from eval.render import DEFAULT_MODEL

        model_dir = DEFAULT_MODEL.parent
    else:
        model_dir = fixture_export
    broken = copy.deepcopy(_manifest(model_dir))
    check(spec, copy.deepcopy(broken), model_dir)  # the real export passes
    edit(broken)
    with pytest.raises(AssertionError) as failure:
        check(spec, broken, model_dir)
    assert words in str(failure.value), failure.value


# ------------------------------------------------------------------ the matte model


def test_spec_matte_model_is_the_prepared_file(spec):
    """model_spec.json "matte_model" names what `python -m eval.matte prepare` writes, and that file
    (the one copyMatteModel copies) is what the app reads: float32 [1, h, w, 3] in [0, 1], one
    [1, h, w, 1] map out, and only builtin ops, so that LiteRT's stock op resolver loads it without
    XNNPACK's MediaPipe-op path (it runs here on the reference kernels, no delegate)."""
    from eval.matte import MATTE_DIR, MATTE_FILE, NPM_SOURCE, prepare
    from export.gates import op_census

    m = spec["matte_model"]
    assert m["asset"] == MATTE_FILE and REPO / m["source_dir"] == MATTE_DIR
    assert m["prepare"] == "python -m eval.matte prepare"
    assert (m["input_layout"], m["input_dtype"], m["input_range"]) == ("NHWC", "float32", [0, 1])
    if not NPM_SOURCE.is_file():
        pytest.skip(f"missing {NPM_SOURCE.relative_to(REPO)}: run `bash web_demo/setup.sh`")
    path = prepare()
    assert path == REPO / m["source_dir"] / m["asset"]
    census = op_census(path.read_bytes())
    assert "TRANSPOSE_CONV" in census and all(name.isupper() for name in census), census
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    n, h, w, c = (int(v) for v in inp["shape"])
    assert (n, c, inp["dtype"]) == (1, 3, np.float32) and list(out["shape"]) == [1, h, w, 1], (inp, out)
    it.set_tensor(inp["index"], np.full((1, h, w, 3), 0.5, np.float32))
    it.invoke()
    y = it.get_tensor(out["index"])
    assert np.isfinite(y).all() and 0.0 <= y.min() and y.max() <= 1.0


# ------------------------------------------------------------------ the real exporter


@pytest.mark.slow
@pytest.mark.parametrize("lens_input", [False, True], ids=["depth_only", "lens"])
def test_real_tiny_export_satisfies_the_app(spec, tmp_path, lens_input):
    """The real exporter (python -m export, onnx2tf) on a tiny random generator, end to end."""
    from tests.fixture_model import export_tiny_generator

    out = export_tiny_generator(tmp_path / "tiny", size=(64, 96), precisions=("fp32", "fp16"), lens_input=lens_input)
    manifest = _manifest(out)
    assert [t["name"] for t in manifest["inputs"]][2:] == (["lens"] if lens_input else [])
    for check in CHECKS:
        check(spec, manifest, out)
