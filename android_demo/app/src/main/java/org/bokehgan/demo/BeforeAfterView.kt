package org.bokehgan.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Paint
import android.graphics.Rect
import android.util.AttributeSet
import android.view.View

/** Draws `before`, then `after` clipped to the right of [split] (0..1), with a divider line. */
class BeforeAfterView @JvmOverloads constructor(
    context: Context,
    attrs: AttributeSet? = null,
) : View(context, attrs) {

    private var before: Bitmap? = null
    private var after: Bitmap? = null
    private val dst = Rect()
    private val bitmapPaint = Paint(Paint.FILTER_BITMAP_FLAG)
    private val linePaint = Paint().apply {
        color = 0xFFFFFFFF.toInt()
        strokeWidth = 3f
    }

    /** Position of the divider, 0 = all "after", 1 = all "before". */
    var split: Float = 0.5f
        set(value) {
            field = value.coerceIn(0f, 1f)
            invalidate()
        }

    fun setImages(before: Bitmap?, after: Bitmap?) {
        this.before = before
        this.after = after
        requestLayout()
        invalidate()
    }

    override fun onMeasure(widthMeasureSpec: Int, heightMeasureSpec: Int) {
        val width = MeasureSpec.getSize(widthMeasureSpec)
        val b = before ?: after
        // Keep the image's aspect ratio (the model's input size, from the manifest).
        val height = if (b == null) width * 2 / 3 else width * b.height / b.width
        setMeasuredDimension(width, height)
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        dst.set(0, 0, width, height)
        before?.let { canvas.drawBitmap(it, null, dst, bitmapPaint) }
        val x = split * width
        after?.let {
            canvas.save()
            canvas.clipRect(x, 0f, width.toFloat(), height.toFloat())
            canvas.drawBitmap(it, null, dst, bitmapPaint)
            canvas.restore()
        }
        if (before != null && after != null) canvas.drawLine(x, 0f, x, height.toFloat(), linePaint)
    }
}
