package org.bokehgan.demo

import android.content.Context
import android.graphics.Bitmap
import android.os.SystemClock
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.gpu.GpuDelegateFactory
import org.tensorflow.lite.nnapi.NnApiDelegate
import org.tensorflow.lite.support.common.FileUtil
import java.nio.ByteBuffer

/**
 * Runs the exported Bokeh-Loss GAN generator (Lee et al., AIM 2022: `G(image, depth) -> bokeh`)
 * with LiteRT, in the shape of Google's LiteRT samples: one helper wraps the interpreter, takes an
 * explicit accelerator, times each stage and is released with [cleanup].
 *
 * Nothing about the model is hard-coded: input size, tensor names, layout and value ranges come
 * from the bundled `manifest.json`, checked against `model_spec.json` ([ModelSpec]).
 *
 * A photo is rendered as `python -m eval.render` renders it ([ImageOps]): turned into the model's
 * orientation and back, scaled to fit and reflection-padded (never cropped), and the result has the
 * photo's own size, in-focus pixels from the photo, blurred ones from the output upsampled.
 *
 * A lens-conditioned export has a third input, `lens` = (d_f, K, dof); every render computes it
 * with the project's auto-focus ([AutoFocus], a port of `training.renderers.lens.auto_focus`) from
 * the depth at the model's scale; a tap sets d_f (median depth around it) and the aperture slider
 * sets K ([Result.lens] says which was used). [lensFor] falls back to the manifest's default when
 * there is no depth. A depth-only export (the paper's) gets image and depth only.
 *
 * Threading: create, use and clean up an instance on ONE thread. The GPU delegate binds its
 * OpenCL/OpenGL context to the thread that created it; calls from another thread fail or hang.
 */
class BokehHelper(
    private val context: Context,
    val accelerator: Accelerator = Accelerator.CPU,
    /** XNNPACK threads for [Accelerator.CPU] (also used by ops a delegate leaves on the CPU). */
    val numThreads: Int = DEFAULT_THREADS,
    /** Which bundled variant; null = the first of the spec's order (fp32, fp16, int8) in the APK. */
    precision: String? = null,
    /**
     * GPU only: let the delegate compute in fp16 (its default, and the fast path on phones). fp16
     * kernels can differ from the CPU result; the app's "Compare GPU vs CPU" measures by how much.
     */
    val gpuPrecisionLossAllowed: Boolean = true,
) {
    enum class Accelerator { CPU, GPU, NNAPI }

    data class Timings(val preprocessMs: Double, val inferenceMs: Double, val postprocessMs: Double) {
        val totalMs: Double get() = preprocessMs + inferenceMs + postprocessMs
    }

    /** Where the lens fed to a lens model came from. */
    enum class LensSource(val label: String) {
        AUTO_FOCUS("auto-focus"),
        MANIFEST_DEFAULT("manifest default"),
        TAP("tap-to-focus"),
        SLIDER("aperture slider"),
        TAP_AND_SLIDER("tap-to-focus + aperture slider"),
    }

    /** The lens fed to a lens-conditioned model: (d_f, K, dof) and its source. */
    class Lens(val values: FloatArray, val source: LensSource)

    /** A tap ([focusX], [focusY]: fractions of the photo) and the aperture slider's K; null = auto-focus's. */
    data class Controls(val focusX: Float? = null, val focusY: Float? = null, val strength: Float? = null)

    class Result(
        /** The photo, and the result at the photo's own size. */
        val input: Bitmap,
        val bokeh: Bitmap,
        /** Raw model output, NHWC float32, for comparing accelerators. */
        val output: FloatArray,
        val timings: Timings,
        /** The lens this render fed; null for a depth-only model. */
        val lens: Lens?,
    ) {
        /** Time spent getting the depth (file, depth model or matte), set by the caller; 0 when cached. */
        var depthMs: Double = 0.0
    }

    data class Benchmark(
        val accelerator: Accelerator,
        val numThreads: Int,
        val precision: String,
        val height: Int,
        val width: Int,
        val warmup: Int,
        val runs: Int,
        val medianMs: Double,
        val p90Ms: Double,
    )

    val spec: ModelSpec = ModelSpec.load(context)
    val manifest: ExportManifest = ExportManifest.load(context, spec)
    val precision: String = precision ?: manifest.bundledPrecisions.first()
    val height: Int get() = manifest.height
    val width: Int get() = manifest.width
    /** The manifest's default (d_f, K, dof), fed when there is no depth map; null for a depth-only model. */
    val defaultLens: FloatArray? get() = manifest.lensDefault

    private var interpreter: Interpreter? = null
    private var gpuDelegate: GpuDelegate? = null
    private var nnApiDelegate: NnApiDelegate? = null
    private var signatureKey: String? = null

    // Direct buffers, allocated once: NHWC float32, sizes from the manifest.
    private val imageBuffer: ByteBuffer = ImageOps.floatBuffer(height * width * spec.image.channels)
    private val depthBuffer: ByteBuffer = ImageOps.floatBuffer(height * width * spec.depth.channels)
    private val outputBuffer: ByteBuffer = ImageOps.floatBuffer(height * width * spec.output.channels)
    // 3 floats (same order NHWC or NCHW), refilled by each preprocess() with that input's lens.
    private val lensBuffer: ByteBuffer? = manifest.lensDefault?.let { ImageOps.floatBuffer(it.size) }

    init {
        require(this.precision in manifest.bundledPrecisions) {
            "precision ${this.precision} is not bundled (have ${manifest.bundledPrecisions}); rebuild with -PbokehPrecision=${this.precision}"
        }
        setup()
    }

    private fun setup() {
        val options = Interpreter.Options().setNumThreads(numThreads)
        when (accelerator) {
            Accelerator.CPU -> options.setUseXNNPACK(true)
            Accelerator.GPU -> {
                val compatibility = CompatibilityList()
                try {
                    if (!compatibility.isDelegateSupportedOnThisDevice) {
                        throw UnsupportedOperationException("the LiteRT GPU delegate does not support this device")
                    }
                    val gpuOptions: GpuDelegateFactory.Options = compatibility.bestOptionsForThisDevice
                    gpuOptions.setPrecisionLossAllowed(gpuPrecisionLossAllowed)
                    gpuOptions.setInferencePreference(GpuDelegateFactory.Options.INFERENCE_PREFERENCE_SUSTAINED_SPEED)
                    gpuDelegate = GpuDelegate(gpuOptions).also { options.addDelegate(it) }
                } finally {
                    compatibility.close()
                }
            }
            Accelerator.NNAPI -> {
                // Deprecated from Android 15 but still the route to many vendors' NPUs/DSPs.
                nnApiDelegate = NnApiDelegate().also { options.addDelegate(it) }
            }
        }
        val model = FileUtil.loadMappedFile(context, spec.modelFile(precision))
        val interp = Interpreter(model, options)
        interpreter = interp
        signatureKey = interp.signatureKeys.firstOrNull()
        checkTensors(interp)
    }

    /** The .tflite file's own tensors must be what the manifest says (name, shape, float32). */
    private fun checkTensors(interp: Interpreter) {
        val file = spec.modelFile(precision)
        val inputNames = listOfNotNull(spec.image.name, spec.depth.name, spec.lens.name.takeIf { lensBuffer != null })
        // A lens model described by a depth-only manifest (or the reverse) would run with an unfed input.
        if (interp.inputTensorCount != inputNames.size) {
            throw IllegalStateException(
                "$file has ${interp.inputTensorCount} inputs, ${spec.manifestAsset} lists ${inputNames.size}: $inputNames",
            )
        }
        val expected = mutableListOf(
            Triple(spec.image.name, true, intArrayOf(1, height, width, spec.image.channels)),
            Triple(spec.depth.name, true, intArrayOf(1, height, width, spec.depth.channels)),
            Triple(spec.output.name, false, intArrayOf(1, height, width, spec.output.channels)),
        )
        if (lensBuffer != null) expected += Triple(spec.lens.name, true, spec.lens.shape)
        for ((name, isInput, shape) in expected) {
            val tensor = tensor(interp, name, isInput)
            if (!tensor.shape().contentEquals(shape) || tensor.dataType() != DataType.FLOAT32) {
                throw IllegalStateException(
                    "$file: tensor \"$name\" is ${tensor.dataType()} ${tensor.shape().contentToString()}, " +
                        "${spec.manifestAsset} says FLOAT32 ${shape.contentToString()}",
                )
            }
        }
    }

    /** Input buffers by tensor name; the lens only for a lens-conditioned model. */
    private fun inputBuffers(): Map<String, ByteBuffer> {
        val inputs = mutableMapOf(spec.image.name to imageBuffer, spec.depth.name to depthBuffer)
        lensBuffer?.let {
            it.rewind()  // read from the start on every run
            inputs[spec.lens.name] = it
        }
        return inputs
    }

    private fun tensor(interp: Interpreter, name: String, isInput: Boolean): Tensor {
        val key = signatureKey
        if (key != null) {
            return if (isInput) interp.getInputTensorFromSignature(name, key) else interp.getOutputTensorFromSignature(name, key)
        }
        // No signature (older converters): match tensor names like "serving_default_image:0".
        val count = if (isInput) interp.inputTensorCount else interp.outputTensorCount
        val candidates = (0 until count).map { if (isInput) interp.getInputTensor(it) else interp.getOutputTensor(it) }
        return candidates.firstOrNull { it.name().removePrefix("serving_default_").substringBefore(':') == name }
            ?: throw IllegalStateException("${spec.modelFile(precision)}: no tensor named \"$name\"")
    }

    /**
     * The lens for a depth map at the model's scale (row-major, [contentWidth] columns, the padding
     * left out): [AutoFocus] on it, with the tap's d_f ([tapDisparity]) and the slider's K replacing
     * their own; the manifest's default when [depthValues] is null. Null for a depth-only model.
     */
    fun lensFor(depthValues: FloatArray?, contentWidth: Int = width, tapDisparity: Float? = null,
                strength: Float? = null): Lens? {
        val fallback = manifest.lensDefault ?: return null
        if (depthValues == null || depthValues.isEmpty()) return Lens(fallback.copyOf(), LensSource.MANIFEST_DEFAULT)
        val values = AutoFocus.lens(depthValues, contentWidth)
        tapDisparity?.let { values[0] = it }
        strength?.let { values[1] = it }
        val source = when {
            tapDisparity != null && strength != null -> LensSource.TAP_AND_SLIDER
            tapDisparity != null -> LensSource.TAP
            strength != null -> LensSource.SLIDER
            else -> LensSource.AUTO_FOCUS
        }
        return Lens(values, source)
    }

    /**
     * The photo and its depth in the model's frame, packed into the input buffers, and the lens
     * (filled into its buffer for a lens model). Returns the frame and the lens the blend uses
     * (auto-focus's for a depth-only model, as eval.render does).
     */
    private fun preprocess(photo: Bitmap, depth: DepthMap, controls: Controls): Pair<ImageOps.Frame, FloatArray> {
        val f = ImageOps.modelFrame(photo.height, photo.width, height, width)
        val rgb = ImageOps.rgbFloats(ImageOps.toFrame(photo, f))
        val turned = if (f.turn) ImageOps.rot90(depth.values, depth.height, depth.width, 1, 1) else depth.values
        val (dh, dw) = if (f.turn) depth.width to depth.height else depth.height to depth.width
        val content = ImageOps.resize(turned, dh, dw, 1, f.ch, f.cw)
        for (i in content.indices) content[i] = content[i].coerceIn(0f, 1f)
        ImageOps.putFloats(ImageOps.reflectPad(rgb, f.ch, f.cw, 3, height, width, f.top, f.left), imageBuffer, spec.image.range)
        ImageOps.putFloats(ImageOps.reflectPad(content, f.ch, f.cw, 1, height, width, f.top, f.left), depthBuffer, spec.depth.range)
        val tap = if (controls.focusX != null && controls.focusY != null) {
            ImageOps.tapDisparity(depth.values, depth.height, depth.width, controls.focusX, controls.focusY)
        } else null
        val lens = lensFor(content, f.cw, tap, controls.strength)
        lensBuffer?.let { buffer ->
            buffer.rewind()
            checkNotNull(lens).values.forEach { buffer.putFloat(it) }
            buffer.rewind()
        }
        val blendLens = lens?.values ?: AutoFocus.lens(content, f.cw).also { v -> tap?.let { v[0] = it } }
        lastLens = lens
        return f to blendLens
    }

    /** The lens the last [render] or [benchmark] fed (null for a depth-only model). */
    var lastLens: Lens? = null
        private set

    private fun runModel() {
        val interp = checkNotNull(interpreter) { "BokehHelper used after cleanup()" }
        outputBuffer.rewind()
        val key = signatureKey
        val buffers = inputBuffers()
        if (key != null) {
            interp.runSignature(buffers, mapOf(spec.output.name to outputBuffer), key)
        } else {
            val inputs = arrayOfNulls<Any>(interp.inputTensorCount)
            for (i in 0 until interp.inputTensorCount) {
                val n = interp.getInputTensor(i).name().removePrefix("serving_default_").substringBefore(':')
                inputs[i] = buffers[n] ?: throw IllegalStateException(
                    "${spec.modelFile(precision)}: input \"$n\" is none of ${buffers.keys}",
                )
            }
            interp.runForMultipleInputsOutputs(inputs, mapOf(0 to outputBuffer))
        }
    }

    /** Render bokeh for [photo] at its own size with its [depth] (DepthMap: file, depth model or matte). */
    fun render(photo: Bitmap, depth: DepthMap, controls: Controls = Controls()): Result {
        val t0 = SystemClock.elapsedRealtimeNanos()
        val (f, blendLens) = preprocess(photo, depth, controls)
        val lens = lastLens
        val t1 = SystemClock.elapsedRealtimeNanos()
        runModel()
        val t2 = SystemClock.elapsedRealtimeNanos()
        outputBuffer.rewind()
        val output = FloatArray(height * width * spec.output.channels)
        outputBuffer.asFloatBuffer().get(output)
        // Back to the photo: cut the padding, turn back, upsample (bilinear), keep the photo where sharp.
        val cut = ImageOps.cutOutput(output, width, f, spec.output.range)
        val out = if (f.turn) ImageOps.rot90(cut, f.ch, f.cw, 3, -1) else cut
        val (oh, ow) = if (f.turn) f.cw to f.ch else f.ch to f.cw
        val up = Bitmap.createScaledBitmap(ImageOps.toBitmap01(out, ow, oh), photo.width, photo.height, true)
        val bokeh = ImageOps.blend(photo, up, depth.values, blendLens, f.scale)
        val t3 = SystemClock.elapsedRealtimeNanos()
        return Result(photo, bokeh, output, Timings(ms(t1 - t0), ms(t2 - t1), ms(t3 - t2)), lens)
    }

    /** Inference latency only: [runs] timed runs after [warmup] untimed ones, on the same inputs. */
    fun benchmark(photo: Bitmap, depth: DepthMap, controls: Controls = Controls(), warmup: Int = 3, runs: Int = 20): Benchmark {
        preprocess(photo, depth, controls)
        repeat(warmup) { runModel() }
        val times = List(runs) {
            val t0 = SystemClock.elapsedRealtimeNanos()
            runModel()
            ms(SystemClock.elapsedRealtimeNanos() - t0)
        }
        return Benchmark(
            accelerator, numThreads, precision, height, width, warmup, runs,
            ImageOps.median(times), ImageOps.percentile(times, 0.9),
        )
    }

    /** Release the interpreter and delegates. Call on the thread that created this helper. */
    fun cleanup() {
        interpreter?.close()
        interpreter = null
        gpuDelegate?.close()
        gpuDelegate = null
        nnApiDelegate?.close()
        nnApiDelegate = null
    }

    private fun ms(nanos: Long): Double = nanos / 1e6

    companion object {
        val DEFAULT_THREADS: Int = Runtime.getRuntime().availableProcessors().coerceIn(1, 4)
    }
}
