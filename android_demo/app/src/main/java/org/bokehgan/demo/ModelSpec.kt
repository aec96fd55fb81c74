package org.bokehgan.demo

import android.content.Context
import org.json.JSONArray
import org.json.JSONObject

/** One tensor as the app expects it (from assets/model_spec.json). */
data class TensorSpec(
    val name: String,
    val channels: Int,
    val layout: String,
    val dtype: String,
    val range: Pair<Float, Float>,
    /** "normalisation" for inputs, "postprocess" for outputs: the manifest must say the same. */
    val convention: String,
)

/**
 * The optional third input of a lens-conditioned export (from model_spec.json "lens_input"):
 * [values] (d_f, K, dof) in this order, in a tensor of [shape]. A depth-only export has none.
 */
data class LensSpec(val name: String, val layout: String, val dtype: String, val shape: IntArray, val values: List<String>)

/** The optional monocular depth model (DPT/MiDaS-style) bundled as depth.tflite. */
data class DepthModelSpec(val asset: String, val mean: FloatArray, val std: FloatArray)

/** The person-matte model (MediaPipe selfie segmentation), the depth of a photo that has none. */
data class MatteModelSpec(val asset: String, val range: Pair<Float, Float>)

/**
 * What the app expects of an exported model: asset names, tensor names, layout, dtype, value
 * ranges. Read from `assets/model_spec.json`, the file that the `copyModel` Gradle task and
 * `tests/test_android_manifest.py` read too, so the three cannot drift apart silently.
 */
class ModelSpec private constructor(json: JSONObject) {
    val manifestAsset: String = json.getString("manifest_asset")
    val manifestFormatVersion: Int = json.getInt("manifest_format_version")
    private val modelFilePattern: String = json.getString("model_file_pattern")
    val precisions: List<String> = json.getJSONArray("precisions").strings()
    val sizeMultiple: Int = json.getInt("size_multiple")
    val inputs: List<TensorSpec> = json.getJSONArray("inputs").objects().map { it.tensorSpec("normalisation") }
    val outputs: List<TensorSpec> = json.getJSONArray("outputs").objects().map { it.tensorSpec("postprocess") }
    val lens: LensSpec = json.getJSONObject("lens_input").let {
        LensSpec(it.getString("name"), it.getString("layout"), it.getString("dtype"),
                 it.getJSONArray("shape").ints(), it.getJSONArray("values").strings())
    }
    val depthModel: DepthModelSpec = json.getJSONObject("depth_model").let {
        DepthModelSpec(it.getString("asset"), it.getJSONArray("input_mean").floats(), it.getJSONArray("input_std").floats())
    }
    val matteModel: MatteModelSpec = json.getJSONObject("matte_model").let {
        val range = it.getJSONArray("input_range").floats()
        MatteModelSpec(it.getString("asset"), range[0] to range[1])
    }

    val image: TensorSpec get() = inputs.first { it.channels == 3 }
    val depth: TensorSpec get() = inputs.first { it.channels == 1 }
    val output: TensorSpec get() = outputs.single()

    fun modelFile(precision: String): String = modelFilePattern.replace("{precision}", precision)

    companion object {
        const val ASSET = "model_spec.json"

        fun load(context: Context): ModelSpec =
            ModelSpec(JSONObject(context.assets.open(ASSET).bufferedReader().use { it.readText() }))
    }
}

/**
 * The exporter's `manifest.json` (bundled by the `copyModel` task), checked against [ModelSpec]
 * when it is read: a model that does not match what the app feeds fails here with a message
 * naming the file and the field, not later with a shape error inside the interpreter.
 */
class ExportManifest private constructor(json: JSONObject, spec: ModelSpec, bundledFiles: Set<String>) {
    val name: String = json.optString("name", "?")
    val converter: String = json.optString("converter", "?")
    val height: Int
    val width: Int
    /** Precisions whose .tflite file is in the APK, in the spec's order. */
    val bundledPrecisions: List<String>
    /**
     * Whether the exporter saw the file run fully on LiteRT's GPU accelerator
     * (manifest.variants[precision].gpu_run.status == "passed"); where that run was skipped, the
     * static analyzer's verdict (gpu_compatible) stands in.
     */
    val gpuCompatible: Map<String, Boolean>
    /**
     * The lens a lens-conditioned export is fed: its manifest's `default` (d_f, K, dof), checked.
     * Null for a depth-only export (the paper's), which has no lens input.
     */
    val lensDefault: FloatArray?

    init {
        val where = spec.manifestAsset
        fun fail(msg: String): Nothing = throw IllegalStateException("$where: $msg")

        val version = json.optInt("format_version", -1)
        if (version != spec.manifestFormatVersion) {
            fail("format_version $version, the app reads ${spec.manifestFormatVersion}")
        }
        val sizes = mutableSetOf<Pair<Int, Int>>()
        fun check(list: JSONArray?, expected: TensorSpec, conventionKey: String) {
            val t = list?.objects()?.firstOrNull { it.optString("name") == expected.name }
                ?: fail("no tensor named \"${expected.name}\"")
            val label = "tensor \"${expected.name}\""
            if (t.optString("layout") != expected.layout) fail("$label: layout ${t.optString("layout")}, the app feeds ${expected.layout}")
            if (t.optString("dtype") != expected.dtype) fail("$label: dtype ${t.optString("dtype")}, the app feeds ${expected.dtype}")
            val range = t.optJSONArray("range")?.floats()
            if (range == null || range.size != 2 || range[0] != expected.range.first || range[1] != expected.range.second) {
                fail("$label: range ${t.opt("range")}, the app uses [${expected.range.first}, ${expected.range.second}]")
            }
            if (t.optString(conventionKey).normalised() != expected.convention.normalised()) {
                fail("$label: $conventionKey \"${t.optString(conventionKey)}\", the app does \"${expected.convention}\"")
            }
            val shape = t.optJSONArray("shape")?.ints() ?: fail("$label: no shape")
            // NHWC, batch 1 (the layout check above makes this the only case).
            if (shape.size != 4 || shape[0] != 1 || shape[3] != expected.channels) {
                fail("$label: shape ${shape.contentToString()}, expected [1, H, W, ${expected.channels}]")
            }
            if (shape[1] % spec.sizeMultiple != 0 || shape[2] % spec.sizeMultiple != 0) {
                fail("$label: ${shape[1]}x${shape[2]} is not a multiple of ${spec.sizeMultiple}")
            }
            sizes += shape[1] to shape[2]
        }
        spec.inputs.forEach { check(json.optJSONArray("inputs"), it, "normalisation") }
        // An input the app does not know would be left unfed and fail inside the interpreter.
        val known = spec.inputs.map { it.name } + spec.lens.name
        val unknown = json.optJSONArray("inputs")?.objects()?.map { it.optString("name") }.orEmpty() - known.toSet()
        if (unknown.isNotEmpty()) fail("unknown input(s) $unknown; the app feeds $known (the last one optional)")
        lensDefault = json.optJSONArray("inputs")?.objects()?.firstOrNull { it.optString("name") == spec.lens.name }
            ?.let { readLens(it, spec.lens, ::fail) }
        spec.outputs.forEach { check(json.optJSONArray("outputs"), it, "postprocess") }
        if (sizes.size != 1) fail("inputs and outputs differ in size: $sizes")
        height = sizes.single().first
        width = sizes.single().second

        val variants = json.optJSONObject("variants") ?: fail("no variants")
        bundledPrecisions = spec.precisions.filter { p ->
            val v = variants.optJSONObject(p) ?: return@filter false
            if (v.optString("file") != spec.modelFile(p)) {
                fail("variants.$p.file is \"${v.optString("file")}\", the app looks for \"${spec.modelFile(p)}\"")
            }
            spec.modelFile(p) in bundledFiles
        }
        if (bundledPrecisions.isEmpty()) {
            fail("none of ${spec.precisions.map(spec::modelFile)} is in the APK's assets (run the copyModel task)")
        }
        gpuCompatible = bundledPrecisions.associateWith {
            val v = variants.getJSONObject(it)
            val run = v.optJSONObject("gpu_run")
            if (run != null && run.optString("status") == "passed") true else v.optBoolean("gpu_compatible", true)
        }
    }

    companion object {
        /** The lens entry's default, after checking it is the tensor the app feeds (see [LensSpec]). */
        private fun readLens(t: JSONObject, expected: LensSpec, fail: (String) -> Nothing): FloatArray {
            val label = "input \"${expected.name}\""
            if (t.optString("layout") != expected.layout) fail("$label: layout ${t.optString("layout")}, the app feeds ${expected.layout}")
            if (t.optString("dtype") != expected.dtype) fail("$label: dtype ${t.optString("dtype")}, the app feeds ${expected.dtype}")
            val shape = t.optJSONArray("shape")?.ints()
            if (shape == null || !shape.contentEquals(expected.shape)) {
                fail("$label: shape ${shape?.contentToString()}, the app feeds ${expected.shape.contentToString()}")
            }
            val values = t.optJSONArray("values")?.strings()
            if (values != expected.values) fail("$label: values $values, the app feeds ${expected.values}")
            val d = t.optJSONArray("default")?.floats()
            // d_f and dof are disparities in [0, 1] and [0, 0.5]; K a blur radius in pixels, >= 0.
            val ok = d != null && d.size == 3 && d.all { it.isFinite() } &&
                d[0] in 0f..1f && d[1] >= 0f && d[2] in 0f..0.5f
            if (!ok) fail("$label: default ${t.opt("default")} is not [d_f in [0, 1], K >= 0, dof in [0, 0.5]]")
            return d!!
        }

        fun load(context: Context, spec: ModelSpec): ExportManifest {
            val text = try {
                context.assets.open(spec.manifestAsset).bufferedReader().use { it.readText() }
            } catch (e: java.io.IOException) {
                throw IllegalStateException(
                    "${spec.manifestAsset} is not in the APK: build with -PbokehModel=<folder of tflite_models/>", e,
                )
            }
            val files = context.assets.list("")?.toSet().orEmpty()
            return ExportManifest(JSONObject(text), spec, files)
        }
    }
}

private fun String.normalised(): String = trim().lowercase().replace(Regex("\\s+"), " ")

private fun JSONArray.objects(): List<JSONObject> = (0 until length()).map { getJSONObject(it) }
private fun JSONArray.strings(): List<String> = (0 until length()).map { getString(it) }
private fun JSONArray.ints(): IntArray = IntArray(length()) { getInt(it) }
private fun JSONArray.floats(): FloatArray = FloatArray(length()) { getDouble(it).toFloat() }

private fun JSONObject.tensorSpec(conventionKey: String): TensorSpec {
    val range = getJSONArray("range").floats()
    return TensorSpec(
        name = getString("name"),
        channels = getInt("channels"),
        layout = getString("layout"),
        dtype = getString("dtype"),
        range = range[0] to range[1],
        convention = getString(conventionKey),
    )
}
