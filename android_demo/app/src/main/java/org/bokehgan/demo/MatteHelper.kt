package org.bokehgan.demo

import android.content.Context
import android.graphics.Bitmap

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
 * Runs through [PhotoMapModel], as [DepthHelper] does: [cleanup] when done, one thread.
 */
class MatteHelper(context: Context, private val spec: ModelSpec, numThreads: Int = BokehHelper.DEFAULT_THREADS) {

    private val model = PhotoMapModel(context, spec.matteModel.asset, numThreads)
    val lastInferenceMs: Double
        get() = model.lastInferenceMs

    /** Person probability of [photo] at its own size, as disparity (1 = person = near). */
    fun matte(photo: Bitmap): DepthMap {
        // RGB / 255 on the squashed square input, as MediaPipe's own graph feeds it.
        val (values, h, w) = model.run(photo) { bitmap, input -> ImageOps.packRgb(bitmap, input, spec.matteModel.range) }
        val full = ImageOps.resize(values, h, w, 1, photo.height, photo.width)
        for (i in full.indices) full[i] = full[i].coerceIn(0f, 1f)
        return DepthMap(full, photo.width, photo.height, "person matte")
    }

    fun cleanup() {
        model.cleanup()
    }
}
