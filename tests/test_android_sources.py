"""The Android app's sources (android_demo/), read as text: the app cannot be built here (no
Android SDK), so these tests check what can be read off its Kotlin and Gradle files.

* the Kotlin takes every tensor name from ``model_spec.json`` (``ModelSpec.kt``) and the
  ``copyModel`` Gradle task every file name, so ``tests/test_android_manifest.py``, which checks
  that spec against the exported models, speaks for the app;
* ``AutoFocus.kt``, the app's port of ``training.renderers.lens.auto_focus`` (the lens fed to a
  lens model), states the same numbers as ``training/renderers/lens.py`` and is what the app calls;
  ``ImageOps.kt`` states ``eval.render``'s blend and tap constants; a tap sets d_f and the aperture
  slider K; the depth sources come in their documented order;
* the Gradle version catalog pins every dependency.

Kotlin cannot run here: the ports' numerics are checked through their twins ``web_demo/autofocus.js``
and ``web_demo/photo.js`` in ``tests/test_web_modules.py``.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from tests.autofocus_constants import python_auto_focus_constants

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "android_demo" / "app"
SPEC_PATH = APP / "src" / "main" / "assets" / "model_spec.json"
KOTLIN_DIR = APP / "src" / "main" / "java"
GRADLE_APP = APP / "build.gradle.kts"
CATALOG = REPO / "android_demo" / "gradle" / "libs.versions.toml"


def read_spec() -> dict:
    return json.loads(SPEC_PATH.read_text())


def test_kotlin_reads_the_spec_and_hard_codes_no_tensor():
    spec = read_spec()
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
    # the same source labels as the web page (web_demo/render.js LENS_TAP, LENS_SLIDER)
    web = (REPO / "web_demo" / "render.js").read_text()
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
    """ImageOps.kt's blend and tap constants == eval.render's (the web page's photo.js is checked
    against the Python functions themselves in tests/test_web_modules.py)."""
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
