package org.bokehgan.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Color
import kotlin.math.abs

/** A depth map at the photo's size: disparity in [0, 1] (1 = near), row-major, and where it came from. */
class DepthMap(val values: FloatArray, val width: Int, val height: Int, val source: String) {
    companion object {
        /**
         * A grayscale depth map the user picked (bright = near; the red channel, 8 bits), at the
         * photo's size. Another aspect ratio is refused, as training.data.read_depth refuses it.
         */
        fun fromBitmap(depth: Bitmap, photoWidth: Int, photoHeight: Int): DepthMap {
            val ratio = photoHeight.toDouble() / photoWidth
            if (abs(depth.height.toDouble() / depth.width - ratio) > 0.02 * ratio) {
                throw IllegalArgumentException(
                    "the depth map is ${depth.width}×${depth.height} but the photo is $photoWidth×$photoHeight; " +
                        "aspect ratios differ (the map must be of the photo as displayed)",
                )
            }
            val pixels = IntArray(depth.width * depth.height)
            depth.getPixels(pixels, 0, depth.width, 0, 0, depth.width, depth.height)
            val gray = FloatArray(pixels.size) { Color.red(pixels[it]) / 255f }
            val values = ImageOps.resize(gray, depth.height, depth.width, 1, photoHeight, photoWidth)
            return DepthMap(values, photoWidth, photoHeight, "depth map")
        }
    }
}

/**
 * A user's monocular depth model, `depth.tflite` (MiDaS v2.1 small, Depth Anything V2 small): placed
 * beside the bokeh model in tflite_models/<name>/ and copied by the copyModel task, it is preferred
 * to the person matte. Its contract is model_spec.json "depth_model" (the web page reads the same):
 * one float32 [1, h, w, 3] input, the photo squashed to h×w and normalised with the spec's mean and
 * std; one output map of relative disparity, min-max normalised per photo to [0, 1], 1 = near (the
 * training data's convention, see training/depth.py), resized to the photo.
 */
class DepthHelper(context: Context, private val spec: ModelSpec, numThreads: Int = BokehHelper.DEFAULT_THREADS) {

    private val model = PhotoMapModel(context, spec.depthModel.asset, numThreads)
    val lastInferenceMs: Double
        get() = model.lastInferenceMs

    /** Disparity of [photo] at its own size. */
    fun estimate(photo: Bitmap): DepthMap {
        val (values, h, w) = model.run(photo) { bitmap, input ->
            ImageOps.packRgb(bitmap, input, spec.depthModel.mean, spec.depthModel.std)
        }
        val disparity = ImageOps.resize(ImageOps.minMax(values), h, w, 1, photo.height, photo.width)
        return DepthMap(disparity, photo.width, photo.height, "depth model")
    }

    fun cleanup() {
        model.cleanup()
    }

    companion object {
        fun isBundled(context: Context, spec: ModelSpec): Boolean =
            context.assets.list("")?.contains(spec.depthModel.asset) == true
    }
}
