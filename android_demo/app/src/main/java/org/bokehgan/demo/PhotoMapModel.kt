package org.bokehgan.demo

import android.content.Context
import android.graphics.Bitmap
import android.os.SystemClock
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.support.common.FileUtil
import java.nio.ByteBuffer

/**
 * A photo → one-channel map model on the CPU (XNNPACK): the shape the user's depth model
 * ([DepthHelper]) and the person matte ([MatteHelper]) share. One FLOAT32 [1, h, w, 3] input the
 * photo is squashed to (no aspect preservation, as DPT's image processor and MediaPipe's graph do),
 * one output map [1, h', w'] or [1, h', w', 1]. Each caller packs the pixels its own way.
 * [cleanup] when done; one thread.
 */
class PhotoMapModel(context: Context, private val asset: String, numThreads: Int) {

    private val interpreter: Interpreter
    private val inHeight: Int
    private val inWidth: Int
    var lastInferenceMs: Double = 0.0
        private set

    init {
        val model = FileUtil.loadMappedFile(context, asset)
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(numThreads).setUseXNNPACK(true))
        val input = interpreter.getInputTensor(0)
        val shape = input.shape()
        if (shape.size != 4 || shape[0] != 1 || shape[3] != 3 || input.dataType() != DataType.FLOAT32) {
            throw IllegalStateException(
                "$asset: input is ${input.dataType()} ${shape.contentToString()}, expected FLOAT32 [1, h, w, 3] (NHWC)",
            )
        }
        inHeight = shape[1]
        inWidth = shape[2]
    }

    /** The output map of [photo] squashed to the input and packed by [pack], with its height and width. */
    fun run(photo: Bitmap, pack: (Bitmap, ByteBuffer) -> Unit): Triple<FloatArray, Int, Int> {
        val resized = Bitmap.createScaledBitmap(photo, inWidth, inHeight, true)
        val input = ImageOps.floatBuffer(inHeight * inWidth * 3)
        pack(resized, input)
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
        return Triple(values, outH, outW)
    }

    fun cleanup() {
        interpreter.close()
    }
}
