package org.bokehgan.demo

import android.content.Context
import android.graphics.Bitmap
import android.os.SystemClock
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.support.common.FileUtil

/**
 * The depth of a photo that has none: MediaPipe's selfie segmentation (Apache-2.0), used as a
 * two-plane depth, person = near (disparity 1), the rest far (0), with the model's soft edge between.
 *
 * The asset is model_spec.json "matte_model", copied by the copyMatteModel Gradle task from
 * ../web_demo/matte/, where `python -m eval.matte prepare` writes it from the npm package
 * `@mediapipe/selfie_segmentation` (web_demo/setup.sh) or a mediapipe wheel. That step replaces the
 * MediaPipe custom op Convolution2DTransposeBias by the builtin TRANSPOSE_CONV, so the stock LiteRT
 * op resolver loads the file on every accelerator (eval/matte.py says why and how).
 *
 * Same shape as [DepthHelper]: one interpreter on the CPU (XNNPACK), [cleanup] when done, one thread.
 */
class MatteHelper(context: Context, private val spec: ModelSpec, numThreads: Int = BokehHelper.DEFAULT_THREADS) {

    private val interpreter: Interpreter
    private val inHeight: Int
    private val inWidth: Int
    var lastInferenceMs: Double = 0.0
        private set

    init {
        val model = FileUtil.loadMappedFile(context, spec.matteModel.asset)
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(numThreads).setUseXNNPACK(true))
        val input = interpreter.getInputTensor(0)
        val shape = input.shape()
        if (shape.size != 4 || shape[0] != 1 || shape[3] != 3 || input.dataType() != DataType.FLOAT32) {
            throw IllegalStateException(
                "${spec.matteModel.asset}: input is ${input.dataType()} ${shape.contentToString()}, expected FLOAT32 [1, h, w, 3]",
            )
        }
        inHeight = shape[1]
        inWidth = shape[2]
    }

    /** Person probability of [photo] at its own size, as disparity (1 = person = near). */
    fun matte(photo: Bitmap): DepthMap {
        // Squashed to the square input, RGB / 255, as MediaPipe's own graph feeds it.
        val resized = Bitmap.createScaledBitmap(photo, inWidth, inHeight, true)
        val input = ImageOps.floatBuffer(inHeight * inWidth * 3)
        ImageOps.packRgb(resized, input, spec.matteModel.range)
        val output = ImageOps.floatBuffer(inHeight * inWidth)
        val t0 = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, output)
        lastInferenceMs = (SystemClock.elapsedRealtimeNanos() - t0) / 1e6
        output.rewind()
        val values = FloatArray(inHeight * inWidth)
        output.asFloatBuffer().get(values)
        val full = ImageOps.resize(values, inHeight, inWidth, 1, photo.height, photo.width)
        for (i in full.indices) full[i] = full[i].coerceIn(0f, 1f)
        return DepthMap(full, photo.width, photo.height, "person matte")
    }

    fun cleanup() {
        interpreter.close()
    }
}
