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
 * A lens-conditioned export has a third input, `lens` = (d_f, K, dof); every render computes it
 * with the project's auto-focus ([AutoFocus], a port of `training.renderers.lens.auto_focus`) from
 * the depth map as fed, and [lensFor] falls back to the manifest's default without a depth map
 * ([Result.lens] says which was used). A depth-only export (the paper's) gets image and depth only.
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
    }

    /** The lens fed to a lens-conditioned model: (d_f, K, dof) and its source. */
    class Lens(val values: FloatArray, val source: LensSource)

    class Result(
        /** The photo and depth map as the model saw them (cropped and resized to its input size). */
        val input: Bitmap,
        val depth: Bitmap,
        val bokeh: Bitmap,
        /** Raw model output, NHWC float32, for comparing accelerators. */
        val output: FloatArray,
        val timings: Timings,
        /** The lens this render fed; null for a depth-only model. */
        val lens: Lens?,
    )

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
    private val packedDepth = FloatArray(height * width * spec.depth.channels)  // auto-focus reads it

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
     * The lens for a depth map given as the model is fed it (row-major height×width floats):
     * [AutoFocus] on it, or the manifest's default when [depthValues] is null (no depth map).
     * Null for a depth-only model.
     */
    fun lensFor(depthValues: FloatArray?): Lens? {
        val fallback = manifest.lensDefault ?: return null
        if (depthValues == null || depthValues.isEmpty()) return Lens(fallback.copyOf(), LensSource.MANIFEST_DEFAULT)
        return Lens(AutoFocus.lens(depthValues, width), LensSource.AUTO_FOCUS)
    }

    /** Crop/resize and pack the inputs (and the lens) into the input buffers; returns the fitted bitmaps. */
    private fun preprocess(photo: Bitmap, depth: Bitmap): Triple<Bitmap, Bitmap, Lens?> {
        val fittedPhoto = ImageOps.fitTo(photo, width, height)
        val fittedDepth = ImageOps.fitTo(depth, width, height)
        ImageOps.packRgb(fittedPhoto, imageBuffer, spec.image.range)
        ImageOps.packGray(fittedDepth, depthBuffer, spec.depth.range)
        val lens = lensBuffer?.let { buffer ->
            // Auto-focus on the depth exactly as packed (one channel: NHWC is row-major H×W).
            depthBuffer.asFloatBuffer().get(packedDepth)
            depthBuffer.rewind()
            checkNotNull(lensFor(packedDepth)).also { chosen ->
                buffer.rewind()
                chosen.values.forEach { buffer.putFloat(it) }
                buffer.rewind()
            }
        }
        return Triple(fittedPhoto, fittedDepth, lens)
    }

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

    /** Render bokeh for [photo] with its [depth] map (grayscale, bright = near). */
    fun render(photo: Bitmap, depth: Bitmap): Result {
        val t0 = SystemClock.elapsedRealtimeNanos()
        val (fittedPhoto, fittedDepth, lens) = preprocess(photo, depth)
        val t1 = SystemClock.elapsedRealtimeNanos()
        runModel()
        val t2 = SystemClock.elapsedRealtimeNanos()
        outputBuffer.rewind()
        val output = FloatArray(height * width * spec.output.channels)
        outputBuffer.asFloatBuffer().get(output)
        val bokeh = ImageOps.toBitmap(output, width, height, spec.output.range)
        val t3 = SystemClock.elapsedRealtimeNanos()
        return Result(fittedPhoto, fittedDepth, bokeh, output, Timings(ms(t1 - t0), ms(t2 - t1), ms(t3 - t2)), lens)
    }

    /** Inference latency only: [runs] timed runs after [warmup] untimed ones, on the same inputs. */
    fun benchmark(photo: Bitmap, depth: Bitmap, warmup: Int = 3, runs: Int = 20): Benchmark {
        preprocess(photo, depth)
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
