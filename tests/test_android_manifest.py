"""The Android app (android_demo/) must agree with what the exporter writes.

The app cannot be built here (no Android SDK), so this test checks the contract it depends on:

* ``android_demo/app/src/main/assets/model_spec.json`` states what the app expects (asset names,
  tensor names ``image``/``depth``/``bokeh``, NHWC, float32, value ranges and normalisation, and the
  optional ``lens`` input of a lens-conditioned export, fed the manifest's default); the
  Kotlin code (``ModelSpec.kt``) reads it at run time and the ``copyModel`` Gradle task reads it
  for the file names, so it is the single statement of the app's expectations;
* every exported ``tflite_models/*/manifest.json`` in the repo, and a fixture export, must satisfy
  that spec; ``check_manifest`` below is an independent Python re-implementation of the checks in
  ``ExportManifest`` (Kotlin);
* the manifest's declared shapes must be those of the ``.tflite`` files' own tensors, read with the
  TFLite interpreter;
* ``AutoFocus.kt``, the app's port of ``training.renderers.lens.auto_focus`` (the lens fed to a
  lens model), states the same numbers as ``training/renderers/lens.py`` and is what the app calls;
  ``ImageOps.kt`` states eval/render.py's blend and tap constants; a tap sets d_f and the aperture
  slider K;
* ``model_spec.json`` "matte_model" is the file ``python -m eval.matte prepare`` writes (the one
  ``copyMatteModel`` copies): its tensors as the app reads them, and builtin ops only.
  Kotlin cannot run here: the port's numerics are checked through its twin
  ``web_demo/autofocus.js`` in ``tests/test_web.py``.

Mutated manifests prove that each check can fail.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tomllib
from pathlib import Path

import pytest

from tests.autofocus_constants import python_auto_focus_constants

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "android_demo" / "app"
SPEC_PATH = APP / "src" / "main" / "assets" / "model_spec.json"
KOTLIN_DIR = APP / "src" / "main" / "java"
GRADLE_APP = APP / "build.gradle.kts"
CATALOG = REPO / "android_demo" / "gradle" / "libs.versions.toml"
REPO_MANIFESTS = sorted((REPO / "tflite_models").glob("*/manifest.json"))


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def check_manifest(spec: dict, manifest: dict) -> list[str]:
    """Every way ``manifest`` disagrees with the app's ``spec``; empty when the app can run it."""
    problems: list[str] = []
    if manifest.get("format_version") != spec["manifest_format_version"]:
        problems.append(f"format_version {manifest.get('format_version')} != {spec['manifest_format_version']}")
    sizes = set()
    for kind, key in (("inputs", "normalisation"), ("outputs", "postprocess")):
        declared = {t.get("name"): t for t in manifest.get(kind) or []}
        for want in spec[kind]:
            name = want["name"]
            t = declared.get(name)
            if t is None:
                problems.append(f"{kind}: no tensor named {name!r} (has {sorted(declared)})")
                continue
            for field in ("layout", "dtype"):
                if t.get(field) != want[field]:
                    problems.append(f"{name}: {field} {t.get(field)!r}, app expects {want[field]!r}")
            if [float(v) for v in t.get("range", [])] != [float(v) for v in want["range"]]:
                problems.append(f"{name}: range {t.get('range')}, app expects {want['range']}")
            if _norm(t.get(key, "")) != _norm(want[key]):
                problems.append(f"{name}: {key} {t.get(key)!r}, app expects {want[key]!r}")
            shape = t.get("shape")
            if not (isinstance(shape, list) and len(shape) == 4 and shape[0] == 1 and shape[3] == want["channels"]):
                problems.append(f"{name}: shape {shape}, app expects [1, H, W, {want['channels']}]")
                continue
            if shape[1] % spec["size_multiple"] or shape[2] % spec["size_multiple"]:
                problems.append(f"{name}: {shape[1]}x{shape[2]} not a multiple of {spec['size_multiple']}")
            sizes.add((shape[1], shape[2]))
    if len(sizes) > 1:
        problems.append(f"inputs/outputs differ in size: {sorted(sizes)}")
    problems += check_lens(spec, manifest)
    variants = manifest.get("variants") or {}
    usable = [p for p in spec["precisions"] if p in variants]
    if not usable:
        problems.append(f"variants: none of {spec['precisions']} (has {sorted(variants)})")
    for p in usable:
        want_file = spec["model_file_pattern"].format(precision=p)
        if variants[p].get("file") != want_file:
            problems.append(f"variants.{p}.file {variants[p].get('file')!r}, copyModel copies {want_file!r}")
    if spec["default_precision"] not in variants:
        problems.append(f"default precision {spec['default_precision']} not exported (has {sorted(variants)})")
    return problems


def check_lens(spec: dict, manifest: dict) -> list[str]:
    """The optional lens input (``ExportManifest.readLens`` in Kotlin): absent, or what the app feeds."""
    want = spec["lens_input"]
    inputs = manifest.get("inputs") or []
    known = [t["name"] for t in spec["inputs"]] + [want["name"]]
    unknown = [t.get("name") for t in inputs if t.get("name") not in known]
    problems = [f"inputs: unknown {unknown}; the app feeds {known}"] if unknown else []
    lens = next((t for t in inputs if t.get("name") == want["name"]), None)
    if lens is None:  # a depth-only export
        return problems
    for field in ("layout", "dtype", "shape", "values"):
        if lens.get(field) != want[field]:
            problems.append(f"lens: {field} {lens.get(field)!r}, app feeds {want[field]!r}")
    d = lens.get("default")
    if not (
        isinstance(d, list)
        and len(d) == 3
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in d)
        and 0 <= d[0] <= 1
        and d[1] >= 0
        and 0 <= d[2] <= 0.5
    ):
        problems.append(f"lens: default {d!r} is not [d_f in [0, 1], K >= 0, dof in [0, 0.5]]")
    return problems


def check_tflite_agrees(manifest: dict, model_dir: Path) -> list[str]:
    """The .tflite files' own tensors (by signature name) must have the manifest's shapes and dtypes."""
    from tests.fixture_model import tflite_io_details

    problems = []
    for variant in (manifest.get("variants") or {}).values():
        path = model_dir / variant["file"]
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        io = tflite_io_details(path)
        for kind in ("inputs", "outputs"):
            actual = {t["name"]: t for t in io[kind]}
            for t in manifest[kind]:
                a = actual.get(t["name"])
                if a is None:
                    problems.append(f"{path.name}: no {kind[:-1]} named {t['name']!r} (has {sorted(actual)})")
                elif a["shape"] != t["shape"] or a["dtype"] != t["dtype"]:
                    problems.append(
                        f"{path.name}: {t['name']} is {a['dtype']}{a['shape']}, manifest {t['dtype']}{t['shape']}"
                    )
            if len(actual) != len(manifest[kind]):
                problems.append(f"{path.name}: {len(actual)} {kind}, manifest lists {len(manifest[kind])}")
    return problems


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def fixture_export(tmp_path_factory) -> Path:
    from tests.fixture_model import build_fixture

    return build_fixture(tmp_path_factory.mktemp("export") / "fixture", size=(32, 48), precisions=("fp32", "fp16"))


@pytest.fixture
def lens_manifest(fixture_export) -> dict:
    """The fixture's manifest as a lens-conditioned export's, lens entry from the exporter's own code."""
    from export.manifest import lens_spec
    from training.renderers.lens import default_lens

    manifest = json.loads((fixture_export / "manifest.json").read_text())
    manifest["inputs"].append(lens_spec("NHWC", default_lens((32, 48))))
    return manifest


# ------------------------------------------------------------------ the app's own files agree


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


def test_kotlin_reads_the_spec_and_hard_codes_no_tensor(spec):
    model_spec_kt = (KOTLIN_DIR / "org/bokehgan/demo/ModelSpec.kt").read_text()
    asset = re.search(r'const val ASSET\s*=\s*"([^"]+)"', model_spec_kt)
    assert asset and (APP / "src/main/assets" / asset.group(1)) == SPEC_PATH
    names = {t["name"] for t in spec["inputs"] + spec["outputs"]} | {spec["lens_input"]["name"]}
    for kt in KOTLIN_DIR.rglob("*.kt"):
        literals = set(re.findall(r'"([^"\\$]*)"', kt.read_text()))
        assert not literals & names, f"{kt.name} hard-codes tensor names {literals & names}: read them from ModelSpec"
        assert not any(re.fullmatch(r"[\w.-]+\.tflite", s) for s in literals), f"{kt.name} hard-codes a model file name"


def test_kotlin_auto_focus_constants_are_pythons():
    """AutoFocus.kt's constants == training/renderers/lens.py's (AUTO_FOCUS_QUANTILE, the 2nd
    percentile, AUTO_BLUR_FRACTION, AUTO_DOF, the 0.1 floor of the spread, the 1,000,000 sample cap)."""
    kt = (KOTLIN_DIR / "org/bokehgan/demo/AutoFocus.kt").read_text()
    assert "training.renderers.lens.auto_focus" in kt, "AutoFocus.kt must name the Python function it mirrors"
    consts = {
        m.group(1): float(m.group(2).replace("_", "").rstrip("fF"))
        for m in re.finditer(r"const val (\w+)\s*=\s*([0-9._]+[fF]?)\s*$", kt, re.M)
    }
    py = {k.upper(): v for k, v in python_auto_focus_constants().items()}
    assert consts == py, f"AutoFocus.kt {consts} != lens.py {py}"
    # The quantiles are Float (torch computes them in float32 on a float32 tensor).
    assert re.search(r"const val FOCUS_QUANTILE\s*=\s*[0-9.]+f\b", kt) and re.search(
        r"const val FAR_QUANTILE\s*=\s*[0-9.]+f\b", kt
    )


def test_app_feeds_auto_focus_with_the_manifest_default_as_fallback():
    """BokehHelper computes the lens with AutoFocus from the packed depth map and falls back to the
    manifest's default; the screen names the source of the lens it shows."""
    helper = (KOTLIN_DIR / "org/bokehgan/demo/BokehHelper.kt").read_text()
    activity = (KOTLIN_DIR / "org/bokehgan/demo/MainActivity.kt").read_text()
    assert "AutoFocus.lens(" in helper and "manifest.lensDefault" in helper
    assert 'AUTO_FOCUS("auto-focus")' in helper and 'MANIFEST_DEFAULT("manifest default")' in helper
    assert "lens.source.label" in activity and "r.lens" in activity
    # the same source labels as the web page (web_demo/main.js LENS_TAP, LENS_SLIDER)
    web = (REPO / "web_demo" / "main.js").read_text()
    for label in ("tap-to-focus", "aperture slider"):
        assert f'"{label}"' in helper and f"'{label}'" in web, label
    # a tap sets d_f from the depth at the photo's resolution, the slider sets K
    assert "ImageOps.tapDisparity(depth.values" in helper and "strength?.let { values[1] = it }" in helper


def test_gradle_copy_task_takes_file_names_from_the_spec():
    text = GRADLE_APP.read_text()
    assert 'file("src/main/assets/model_spec.json")' in text
    for key in (
        "manifest_asset",
        "model_file_pattern",
        "precisions",
        "default_precision",
        "depth_model",
        "matte_model",
        "asset",
        "source_dir",
        "prepare",
    ):
        assert f'["{key}"]' in text, f"copyModel does not read {key} from model_spec.json"
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    hard = re.findall(r'"([^"$]*\.(?:tflite|json))"', code)
    assert hard == ["src/main/assets/model_spec.json"], f"hard-coded file names in build.gradle.kts: {hard}"
    assert re.search(r'tasks\.named\("preBuild"\)\s*\{\s*dependsOn\(copyModel, copyMatteModel\)', text), (
        "copyModel and copyMatteModel not wired before preBuild"
    )
    assert 'providers.gradleProperty("bokehModel")' in text and 'providers.gradleProperty("bokehPrecision")' in text


def test_kotlin_photo_constants_are_eval_renders():
    """ImageOps.kt's blend and tap constants == eval/render.py's (the web page's photo.js is checked
    against the Python functions themselves in tests/test_web.py)."""
    from eval import render as er

    kt = (KOTLIN_DIR / "org/bokehgan/demo/ImageOps.kt").read_text()
    consts = {m.group(1): float(m.group(2)) for m in re.finditer(r"const val (\w+)\s*=\s*([0-9.]+)\s*$", kt, re.M)}
    assert consts == {
        "SHARP_RADIUS_LO": er.SHARP_RADIUS[0],
        "SHARP_RADIUS_HI": er.SHARP_RADIUS[1],
        "FOCUS_WINDOW": er.FOCUS_WINDOW,
    }, consts
    for fn in ("fun modelFrame(", "fun rot90(", "fun resize(", "fun reflectPad(", "fun tapDisparity(", "fun blend("):
        assert fn in kt, fn
    assert "Math.rint" in kt, "Python's round() is half-to-even: Kotlin's roundToInt() is not"


def test_app_depth_sources_in_order():
    """A photo is enough: the picked depth map, else the bundled depth.tflite, else the person matte."""
    activity = (KOTLIN_DIR / "org/bokehgan/demo/MainActivity.kt").read_text()
    body = activity[activity.index("private fun depthFor(") :]
    order = [body.index(k) for k in ("DepthMap.fromBitmap(", "DepthHelper.isBundled(", "MatteHelper(")]
    assert order == sorted(order), "depth sources out of order"
    matte = (KOTLIN_DIR / "org/bokehgan/demo/MatteHelper.kt").read_text()
    assert "spec.matteModel.asset" in matte and "ImageOps.resize(" in matte
    # save and share at the photo's resolution (the result bitmap, not the model's)
    assert "MediaStore.Images.Media.EXTERNAL_CONTENT_URI" in activity and "Intent.ACTION_SEND" in activity
    manifest = (APP / "src/main/AndroidManifest.xml").read_text()
    assert "androidx.core.content.FileProvider" in manifest and "${applicationId}.files" in manifest
    assert '"$packageName.files"' in activity


def test_spec_matte_model_is_the_prepared_file(spec):
    """model_spec.json "matte_model" names what `python -m eval.matte prepare` writes, and that file
    (the one copyMatteModel copies) is what the app reads: float32 [1, h, w, 3] in [0, 1], one
    [1, h, w, 1] map out, and only builtin ops, so that LiteRT's stock op resolver loads it without
    XNNPACK's MediaPipe-op path (it runs here on the reference kernels, no delegate)."""
    import numpy as np

    from eval.matte import MATTE_DIR, MATTE_FILE, NPM_SOURCE, op_census, prepare

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


def test_version_catalog_pins_every_version():
    catalog = tomllib.loads(CATALOG.read_text())
    versions = catalog["versions"]
    for section in ("libraries", "plugins"):
        for alias, entry in catalog[section].items():
            ref = entry.get("version", {}).get("ref") if isinstance(entry.get("version"), dict) else None
            assert ref in versions or isinstance(entry.get("version"), str), f"{section}.{alias} has no pinned version"
            if ref:
                assert re.fullmatch(r"\d+(\.\d+)+", versions[ref]), f"{ref} = {versions[ref]!r} is not an exact version"
    modules = {e["module"]: e["version"]["ref"] for e in catalog["libraries"].values()}
    litert = [f"com.google.ai.edge.litert:{a}" for a in ("litert", "litert-gpu", "litert-gpu-api", "litert-support")]
    assert all(m in modules for m in litert), "the four LiteRT artifacts must be in the catalog"
    assert len({modules[m] for m in litert}) == 1, "LiteRT artifacts must share one version"
    deps = re.findall(r"implementation\(([^)]*)\)", GRADLE_APP.read_text())
    assert deps and all(d.startswith("libs.") for d in deps), f"dependencies outside the catalog: {deps}"


# ------------------------------------------------------------------ manifests agree with the app


def test_fixture_export_satisfies_the_app(spec, fixture_export):
    manifest = json.loads((fixture_export / "manifest.json").read_text())
    assert check_manifest(spec, manifest) == []
    assert check_tflite_agrees(manifest, fixture_export) == []


MUTATIONS = {
    "input renamed": (lambda m: m["inputs"][1].update(name="disparity"), "no tensor named 'depth'"),
    "NCHW layout": (lambda m: m["inputs"][0].update(layout="NCHW", shape=[1, 3, 32, 48]), "layout 'NCHW'"),
    "range [-1, 1]": (lambda m: m["inputs"][0].update(range=[-1, 1]), "range [-1, 1]"),
    "mean/std normalisation": (
        lambda m: m["inputs"][0].update(normalisation="(RGB / 255 - 0.5) / 0.5"),
        "normalisation",
    ),
    "size not multiple of 16": (
        lambda m: [t["shape"].__setitem__(1, 40) for t in m["inputs"] + m["outputs"]],
        "not a multiple of 16",
    ),
    "sizes differ": (lambda m: m["outputs"][0]["shape"].__setitem__(2, 64), "differ in size"),
    "float16 output": (lambda m: m["outputs"][0].update(dtype="float16"), "dtype 'float16'"),
    "variant file renamed": (lambda m: m["variants"]["fp16"].update(file="model_fp16.tflite"), "copyModel copies"),
    "no default precision": (lambda m: m["variants"].pop("fp16"), "default precision fp16"),
}


def test_lens_manifest_satisfies_the_app(spec, lens_manifest):
    assert check_manifest(spec, lens_manifest) == []


LENS_MUTATIONS = {
    "no default": (lambda m: m["inputs"][2].pop("default"), "lens: default None"),
    "d_f out of range": (lambda m: m["inputs"][2]["default"].__setitem__(0, 1.5), "lens: default [1.5"),
    "two values": (lambda m: m["inputs"][2]["default"].pop(), "lens: default"),
    "values reordered": (lambda m: m["inputs"][2].update(values=["K", "d_f", "dof"]), "lens: values"),
    "NCHW lens": (lambda m: m["inputs"][2].update(layout="NCHW", shape=[1, 3, 1, 1]), "lens: layout 'NCHW'"),
    "unknown input": (lambda m: m["inputs"].append({"name": "aperture"}), "unknown ['aperture']"),
}


@pytest.mark.parametrize("mutation", sorted(LENS_MUTATIONS))
def test_mismatched_lens_is_reported(spec, lens_manifest, mutation):
    edit, expected = LENS_MUTATIONS[mutation]
    bad = copy.deepcopy(lens_manifest)
    edit(bad)
    problems = check_manifest(spec, bad)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mismatched_manifest_is_reported(spec, fixture_export, mutation):
    manifest = json.loads((fixture_export / "manifest.json").read_text())
    edit, expected = MUTATIONS[mutation]
    bad = copy.deepcopy(manifest)
    edit(bad)
    problems = check_manifest(spec, bad)
    assert any(expected in p for p in problems), problems


def test_manifest_shape_must_match_tflite_tensors(fixture_export):
    manifest = json.loads((fixture_export / "manifest.json").read_text())
    bad = copy.deepcopy(manifest)
    for t in bad["inputs"] + bad["outputs"]:
        t["shape"][1] = 64  # a manifest for another export size
    problems = check_tflite_agrees(bad, fixture_export)
    assert any("bokeh_fp32.tflite: image is float32[1, 32, 48, 3]" in p for p in problems), problems
    renamed = copy.deepcopy(manifest)
    renamed["outputs"][0]["name"] = "output_0"
    assert any("no output named 'output_0'" in p for p in check_tflite_agrees(renamed, fixture_export))


@pytest.mark.skipif(not REPO_MANIFESTS, reason="no tflite_models/*/manifest.json exported yet (python -m export)")
@pytest.mark.parametrize("manifest_path", REPO_MANIFESTS, ids=[p.parent.name for p in REPO_MANIFESTS])
def test_repo_exports_satisfy_the_app(spec, manifest_path):
    manifest = json.loads(manifest_path.read_text())
    assert check_manifest(spec, manifest) == [], f"{manifest_path}"
    assert check_tflite_agrees(manifest, manifest_path.parent) == [], f"{manifest_path}"


@pytest.mark.slow
@pytest.mark.parametrize("lens_input", [False, True], ids=["depth_only", "lens"])
def test_real_tiny_export_satisfies_the_app(spec, tmp_path, lens_input):
    """The real exporter (python -m export, onnx2tf) on a tiny random generator, end to end."""
    from tests.fixture_model import export_tiny_generator

    out = export_tiny_generator(tmp_path / "tiny", size=(64, 96), precisions=("fp32", "fp16"), lens_input=lens_input)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [t["name"] for t in manifest["inputs"]][2:] == (["lens"] if lens_input else [])
    assert check_manifest(spec, manifest) == []
    assert check_tflite_agrees(manifest, out) == []
