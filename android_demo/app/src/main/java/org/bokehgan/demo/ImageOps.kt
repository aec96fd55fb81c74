package org.bokehgan.demo

import android.graphics.Bitmap
import android.graphics.Color
import android.graphics.Matrix
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs
import kotlin.math.ceil
import kotlin.math.log10
import kotlin.math.roundToInt

/**
 * Pixel conversions between Bitmaps and the float32 NHWC tensors of the manifest, the photo <-> model
 * geometry and full-resolution blend of `python -m eval.render` (as web_demo/photo.js ports them;
 * tests/test_android_sources.py checks the constants), and small stats.
 */
object ImageOps {

    /** eval/render/frame.py SHARP_RADIUS: photo pixels kept below the first blur radius (px), model output above the second. */
    const val SHARP_RADIUS_LO = 0.5
    const val SHARP_RADIUS_HI = 1.5
    /** eval/render/frame.py FOCUS_WINDOW: tap-to-focus takes the median depth in a square this share of the short side. */
    const val FOCUS_WINDOW = 0.02

    fun floatBuffer(elements: Int): ByteBuffer =
        ByteBuffer.allocateDirect(elements * 4).order(ByteOrder.nativeOrder())

    /** Where a photo goes in the model's input (eval.render.model_frame): turned by 90° if its
     *  orientation differs, scaled to fit ([scale] model px per photo px), reflection-padded. */
    data class Frame(val turn: Boolean, val scale: Double, val ch: Int, val cw: Int, val top: Int, val left: Int)

    fun modelFrame(photoHeight: Int, photoWidth: Int, modelHeight: Int, modelWidth: Int): Frame {
        val turn = (photoHeight > photoWidth && modelWidth > modelHeight) || (photoWidth > photoHeight && modelHeight > modelWidth)
        val h = if (turn) photoWidth else photoHeight
        val w = if (turn) photoHeight else photoWidth
        val scale = minOf(modelHeight.toDouble() / h, modelWidth.toDouble() / w)
        // Math.rint rounds half to even, as Python's round() does.
        val ch = minOf(modelHeight, maxOf(1, Math.rint(h * scale).toInt()))
        val cw = minOf(modelWidth, maxOf(1, Math.rint(w * scale).toInt()))
        return Frame(turn, scale, ch, cw, (modelHeight - ch) / 2, (modelWidth - cw) / 2)
    }

    /** The photo in the model's frame: turned counter-clockwise (np.rot90 k=1) if needed, scaled (bilinear) to cw×ch. */
    fun toFrame(photo: Bitmap, f: Frame): Bitmap {
        val turned = if (f.turn) {
            Bitmap.createBitmap(photo, 0, 0, photo.width, photo.height, Matrix().apply { postRotate(-90f) }, true)
        } else photo
        return if (turned.width == f.cw && turned.height == f.ch) turned else Bitmap.createScaledBitmap(turned, f.cw, f.ch, true)
    }

    /** np.rot90(a, k) of an h×w×c array (row-major), k = 1 (counter-clockwise) or -1; the result is w×h×c. */
    fun rot90(src: FloatArray, h: Int, w: Int, c: Int, k: Int): FloatArray {
        val out = FloatArray(h * w * c)
        for (i in 0 until w) for (j in 0 until h) {
            val s = if (k == 1) (j * w + (w - 1 - i)) * c else ((h - 1 - j) * w + i) * c
            val d = (i * h + j) * c
            for (q in 0 until c) out[d + q] = src[s + q]
        }
        return out
    }

    /** h×w×c -> hOut×wOut×c, bilinear with antialiasing (torch interpolate antialias=True), rows then columns. */
    fun resize(src: FloatArray, h: Int, w: Int, c: Int, hOut: Int, wOut: Int): FloatArray {
        if (h == hOut && w == wOut) return src.copyOf()
        val (colStart, colW) = aaWeights(w, wOut)
        val tmp = FloatArray(h * wOut * c)
        for (y in 0 until h) for (x in 0 until wOut) for (q in 0 until c) {
            var acc = 0.0
            colW[x].forEachIndexed { j, wt -> acc += wt * src[(y * w + colStart[x] + j) * c + q] }
            tmp[(y * wOut + x) * c + q] = acc.toFloat()
        }
        val (rowStart, rowW) = aaWeights(h, hOut)
        val out = FloatArray(hOut * wOut * c)
        for (y in 0 until hOut) for (x in 0 until wOut) for (q in 0 until c) {
            var acc = 0.0
            rowW[y].forEachIndexed { j, wt -> acc += wt * tmp[((rowStart[y] + j) * wOut + x) * c + q] }
            out[(y * wOut + x) * c + q] = acc.toFloat()
        }
        return out
    }

    private fun aaWeights(inSize: Int, outSize: Int): Pair<IntArray, Array<DoubleArray>> {
        val scale = inSize.toDouble() / outSize
        val support = if (scale >= 1) scale else 1.0
        val invScale = if (scale >= 1) 1 / scale else 1.0
        val starts = IntArray(outSize)
        val weights = Array(outSize) { i ->
            val center = scale * (i + 0.5)
            val xmin = maxOf((center - support + 0.5).toInt(), 0)
            val size = minOf((center + support + 0.5).toInt(), inSize) - xmin
            starts[i] = xmin
            val wt = DoubleArray(size) { j -> maxOf(0.0, 1 - abs((j + xmin - center + 0.5) * invScale)) }
            val total = wt.sum()
            if (total > 0) for (j in wt.indices) wt[j] /= total
            wt
        }
        return starts to weights
    }

    /** np.pad(mode="reflect") of an h×w×c array into hOut×wOut×c, the content at (top, left). */
    fun reflectPad(src: FloatArray, h: Int, w: Int, c: Int, hOut: Int, wOut: Int, top: Int, left: Int): FloatArray {
        if (h == hOut && w == wOut) return src
        fun reflect(p: Int, n: Int): Int {
            if (n == 1) return 0
            val period = 2 * (n - 1)
            val m = ((p % period) + period) % period
            return if (m < n) m else period - m
        }
        val out = FloatArray(hOut * wOut * c)
        for (y in 0 until hOut) {
            val sy = reflect(y - top, h)
            for (x in 0 until wOut) {
                val sx = reflect(x - left, w)
                for (q in 0 until c) out[(y * wOut + x) * c + q] = src[(sy * w + sx) * c + q]
            }
        }
        return out
    }

    /** Tap to focus at fractions (x, y): the median disparity around it (eval.render._tap_disparity). */
    fun tapDisparity(depth: FloatArray, h: Int, w: Int, x: Float, y: Float): Float {
        val half = maxOf(1, Math.rint(FOCUS_WINDOW * minOf(h, w) / 2).toInt())
        val cy = minOf(Math.rint(y.coerceIn(0f, 1f) * (h - 1.0)).toInt(), h - 1)
        val cx = minOf(Math.rint(x.coerceIn(0f, 1f) * (w - 1.0)).toInt(), w - 1)
        val values = ArrayList<Float>()
        for (i in maxOf(cy - half, 0) until minOf(cy + half + 1, h)) {
            for (j in maxOf(cx - half, 0) until minOf(cx + half + 1, w)) values += depth[i * w + j]
        }
        values.sort()
        val n = values.size
        return if (n % 2 == 1) values[n / 2] else (values[n / 2 - 1] + values[n / 2]) / 2
    }

    /** RGB of a bitmap as h×w×3 floats in [0, 1]. */
    fun rgbFloats(bitmap: Bitmap): FloatArray {
        val pixels = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val out = FloatArray(pixels.size * 3)
        for ((i, p) in pixels.withIndex()) {
            out[3 * i] = Color.red(p) / 255f
            out[3 * i + 1] = Color.green(p) / 255f
            out[3 * i + 2] = Color.blue(p) / 255f
        }
        return out
    }

    /** Floats in [0, 1] (channels last) -> lo + (hi - lo) * v into [out] (rewound). */
    fun putFloats(values: FloatArray, out: ByteBuffer, range: Pair<Float, Float>) {
        val (lo, hi) = range
        out.rewind()
        for (v in values) out.putFloat(lo + (hi - lo) * v)
        out.rewind()
    }

    /** The model's NHWC output, clamped to [lo, hi] and scaled to [0, 1], cut to the frame's content. */
    fun cutOutput(values: FloatArray, modelWidth: Int, f: Frame, range: Pair<Float, Float>): FloatArray {
        val (lo, hi) = range
        val out = FloatArray(f.ch * f.cw * 3)
        for (y in 0 until f.ch) for (x in 0 until f.cw) for (q in 0 until 3) {
            val v = values[((y + f.top) * modelWidth + x + f.left) * 3 + q]
            out[(y * f.cw + x) * 3 + q] = (v.coerceIn(lo, hi) - lo) / (hi - lo)
        }
        return out
    }

    /**
     * The result at the photo's resolution (eval.render, step 5): the photo where the lens's blur
     * radius K * max(|d - d_f| - dof, 0) / scale is under SHARP_RADIUS_LO px, [model] (the output
     * upsampled to the photo's size) above SHARP_RADIUS_HI, a smoothstep between. Row by row, so a
     * 12 Mpx photo needs no float copy of itself.
     */
    fun blend(photo: Bitmap, model: Bitmap, depth: FloatArray, lens: FloatArray, scale: Double): Bitmap {
        val w = photo.width
        val h = photo.height
        val out = Bitmap.createBitmap(w, h, Bitmap.Config.ARGB_8888)
        val a = IntArray(w)
        val b = IntArray(w)
        val (dF, k, dof) = Triple(lens[0], lens[1], lens[2])
        for (y in 0 until h) {
            photo.getPixels(a, 0, w, 0, y, w, 1)
            model.getPixels(b, 0, w, 0, y, w, 1)
            for (x in 0 until w) {
                val r = k * maxOf(abs(depth[y * w + x] - dF) - dof, 0f) / scale
                val t = ((SHARP_RADIUS_HI - r) / (SHARP_RADIUS_HI - SHARP_RADIUS_LO)).coerceIn(0.0, 1.0)
                val keep = t * t * (3 - 2 * t)
                fun mix(p: Int, m: Int): Int = (keep * p + (1 - keep) * m + 0.5).toInt().coerceIn(0, 255)
                a[x] = Color.rgb(mix(Color.red(a[x]), Color.red(b[x])), mix(Color.green(a[x]), Color.green(b[x])),
                                 mix(Color.blue(a[x]), Color.blue(b[x])))
            }
            out.setPixels(a, 0, w, 0, y, w, 1)
        }
        return out
    }

    /** Floats in [0, 1], h×w×3 -> Bitmap. */
    fun toBitmap01(values: FloatArray, width: Int, height: Int): Bitmap {
        fun byte(v: Float): Int = (v.coerceIn(0f, 1f) * 255f + 0.5f).toInt()
        val pixels = IntArray(width * height) { i -> Color.rgb(byte(values[3 * i]), byte(values[3 * i + 1]), byte(values[3 * i + 2])) }
        return Bitmap.createBitmap(pixels, width, height, Bitmap.Config.ARGB_8888)
    }

    /** Gray depth (bright = near) for display. */
    fun grayBitmap(values: FloatArray, width: Int, height: Int): Bitmap {
        val pixels = IntArray(width * height) { i -> (values[i].coerceIn(0f, 1f) * 255f + 0.5f).toInt().let { Color.rgb(it, it, it) } }
        return Bitmap.createBitmap(pixels, width, height, Bitmap.Config.ARGB_8888)
    }

    /** Per-image min-max to [0, 1] (training.depth.normalise_disparity); a flat map becomes zeros. */
    fun minMax(values: FloatArray): FloatArray {
        val lo = values.min()
        val span = maxOf(values.max() - lo, 1e-12f)
        return FloatArray(values.size) { ((values[it] - lo) / span).coerceIn(0f, 1f) }
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
