package org.bokehgan.demo

import android.content.Context
import android.graphics.Bitmap
import android.os.SystemClock
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.support.common.FileUtil

/**
 * Optional monocular depth for photos that come without a depth map: runs `depth.tflite` (a
 * DPT/MiDaS-style model placed beside the bokeh model in tflite_models/<name>/, copied by the
 * copyModel task) on the CPU.
 *
 * Bokeh-Loss GAN conditions the generator on DPT's prediction (§3.2). MiDaS-family models predict
 * relative disparity up to an unknown scale and shift, so the output is min-max normalised per
 * image to [0, 1], 1 = near: the training data's convention (see training/depth.py).
 * Input size and layout come from the .tflite file's own input tensor ([1, h, w, 3], NHWC); the
 * normalisation (mean/std) from model_spec.json.
 */
class DepthHelper(private val context: Context, private val spec: ModelSpec, numThreads: Int = BokehHelper.DEFAULT_THREADS) {

    private val interpreter: Interpreter
    private val inHeight: Int
    private val inWidth: Int
    var lastInferenceMs: Double = 0.0
        private set

    init {
        val model = FileUtil.loadMappedFile(context, spec.depthModel.asset)
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(numThreads).setUseXNNPACK(true))
        val input = interpreter.getInputTensor(0)
        val shape = input.shape()
        if (shape.size != 4 || shape[0] != 1 || shape[3] != 3 || input.dataType() != DataType.FLOAT32) {
            throw IllegalStateException(
                "${spec.depthModel.asset}: input is ${input.dataType()} ${shape.contentToString()}, expected FLOAT32 [1, h, w, 3] (NHWC)",
            )
        }
        inHeight = shape[1]
        inWidth = shape[2]
    }

    /** Disparity map for [photo], same size as [photo], gray, bright = near. */
    fun estimate(photo: Bitmap): Bitmap {
        // Squash to the model's input size as DPT's image processor does (no aspect preservation).
        val resized = Bitmap.createScaledBitmap(photo, inWidth, inHeight, true)
        val input = ImageOps.floatBuffer(inHeight * inWidth * 3)
        ImageOps.packRgb(resized, input, spec.depthModel.mean, spec.depthModel.std)
        val outShape = interpreter.getOutputTensor(0).shape()  // [1, h, w] or [1, h, w, 1]
        val outH = outShape[1]
        val outW = outShape[2]
        val output = ImageOps.floatBuffer(outH * outW)
        val t0 = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, output)
        lastInferenceMs = (SystemClock.elapsedRealtimeNanos() - t0) / 1e6
        output.rewind()
        val values = FloatArray(outH * outW)
        output.asFloatBuffer().get(values)
        val disparity = ImageOps.disparityToBitmap(values, outW, outH)
        return Bitmap.createScaledBitmap(disparity, photo.width, photo.height, true)
    }

    fun cleanup() {
        interpreter.close()
    }

    companion object {
        fun isBundled(context: Context, spec: ModelSpec): Boolean =
            context.assets.list("")?.contains(spec.depthModel.asset) == true
    }
}
