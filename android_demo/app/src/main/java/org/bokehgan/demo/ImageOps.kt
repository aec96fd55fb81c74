package org.bokehgan.demo

import android.graphics.Bitmap
import android.graphics.Color
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.ceil
import kotlin.math.log10
import kotlin.math.roundToInt

/** Pixel conversions between Bitmaps and the float32 NHWC tensors of the manifest, and small stats. */
object ImageOps {

    fun floatBuffer(elements: Int): ByteBuffer =
        ByteBuffer.allocateDirect(elements * 4).order(ByteOrder.nativeOrder())

    /** Centre-crop [src] to the aspect ratio of width×height, then resize (bilinear) to it. */
    fun fitTo(src: Bitmap, width: Int, height: Int): Bitmap {
        val scale = minOf(src.width.toFloat() / width, src.height.toFloat() / height)
        val cw = (width * scale).roundToInt().coerceIn(1, src.width)
        val ch = (height * scale).roundToInt().coerceIn(1, src.height)
        val cropped = Bitmap.createBitmap(src, (src.width - cw) / 2, (src.height - ch) / 2, cw, ch)
        return if (cw == width && ch == height) cropped else Bitmap.createScaledBitmap(cropped, width, height, true)
    }

    /** RGB -> lo + (hi - lo) * x / 255, NHWC, into [out] (rewound). */
    fun packRgb(bitmap: Bitmap, out: ByteBuffer, range: Pair<Float, Float>) {
        // The same affine map written as (x / 255 - mean) / std.
        val (lo, hi) = range
        packRgb(bitmap, out, mean = FloatArray(3) { -lo / (hi - lo) }, std = FloatArray(3) { 1f / (hi - lo) })
    }

    /** RGB -> (x / 255 - mean) / std, NHWC, into [out] (rewound). */
    fun packRgb(bitmap: Bitmap, out: ByteBuffer, mean: FloatArray, std: FloatArray) {
        val w = bitmap.width
        val h = bitmap.height
        val pixels = IntArray(w * h)
        bitmap.getPixels(pixels, 0, w, 0, 0, w, h)
        out.rewind()
        for (p in pixels) {
            out.putFloat((Color.red(p) / 255f - mean[0]) / std[0])
            out.putFloat((Color.green(p) / 255f - mean[1]) / std[1])
            out.putFloat((Color.blue(p) / 255f - mean[2]) / std[2])
        }
        out.rewind()
    }

    /** Grayscale (red channel of a gray bitmap) -> [lo, hi] floats, one channel, into [out]. */
    fun packGray(bitmap: Bitmap, out: ByteBuffer, range: Pair<Float, Float>) {
        val (lo, hi) = range
        val w = bitmap.width
        val h = bitmap.height
        val pixels = IntArray(w * h)
        bitmap.getPixels(pixels, 0, w, 0, 0, w, h)
        out.rewind()
        for (p in pixels) out.putFloat(lo + (hi - lo) * Color.red(p) / 255f)
        out.rewind()
    }

    /** NHWC floats (3 channels) -> Bitmap: clamp to [lo, hi], scale to 0..255 (the manifest's postprocess). */
    fun toBitmap(values: FloatArray, width: Int, height: Int, range: Pair<Float, Float>): Bitmap {
        val (lo, hi) = range
        fun byte(v: Float): Int = ((v.coerceIn(lo, hi) - lo) / (hi - lo) * 255f).roundToInt()
        val pixels = IntArray(width * height) { i ->
            Color.rgb(byte(values[3 * i]), byte(values[3 * i + 1]), byte(values[3 * i + 2]))
        }
        return Bitmap.createBitmap(pixels, width, height, Bitmap.Config.ARGB_8888)
    }

    /** One channel of relative disparity -> gray Bitmap, min-max normalised (1 = near = white). */
    fun disparityToBitmap(values: FloatArray, width: Int, height: Int): Bitmap {
        val min = values.min()
        val span = (values.max() - min).takeIf { it > 0f } ?: 1f
        val pixels = IntArray(width * height) { i ->
            val g = ((values[i] - min) / span * 255f).roundToInt()
            Color.rgb(g, g, g)
        }
        return Bitmap.createBitmap(pixels, width, height, Bitmap.Config.ARGB_8888)
    }

    /** PSNR (dB) between two outputs after clamping to [lo, hi]; data range hi - lo. */
    fun psnr(a: FloatArray, b: FloatArray, range: Pair<Float, Float>): Double {
        require(a.size == b.size) { "psnr: sizes differ (${a.size} vs ${b.size})" }
        val (lo, hi) = range
        var sum = 0.0
        for (i in a.indices) {
            val d = (a[i].coerceIn(lo, hi) - b[i].coerceIn(lo, hi)).toDouble()
            sum += d * d
        }
        val mse = sum / a.size
        return if (mse == 0.0) Double.POSITIVE_INFINITY else 10 * log10((hi - lo).toDouble().let { it * it } / mse)
    }

    fun maxAbsDiff(a: FloatArray, b: FloatArray): Float = a.indices.maxOf { kotlin.math.abs(a[it] - b[it]) }

    fun median(xs: List<Double>): Double {
        val s = xs.sorted()
        return if (s.size % 2 == 1) s[s.size / 2] else (s[s.size / 2 - 1] + s[s.size / 2]) / 2
    }

    /** Nearest-rank percentile, q in (0, 1]. */
    fun percentile(xs: List<Double>, q: Double): Double = xs.sorted()[(ceil(q * xs.size).toInt() - 1).coerceAtLeast(0)]
}
