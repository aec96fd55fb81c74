package org.bokehgan.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Paint
import android.graphics.Rect
import android.util.AttributeSet
import android.view.GestureDetector
import android.view.MotionEvent
import android.view.View

/**
 * Draws `before`, then `after` clipped to the right of [split] (0..1), with a divider line; a tap
 * reports its position as fractions of the picture ([onTap]) and [focus] marks it.
 */
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

    private val focusPaint = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        color = 0xFFFACC15.toInt()
        style = Paint.Style.STROKE
        strokeWidth = 4f
    }

    /** Called with (x, y) in [0, 1] of the picture when it is tapped (tap to focus). */
    var onTap: ((Float, Float) -> Unit)? = null

    /** The last tap, drawn as a ring; null = none (auto-focus). */
    var focus: Pair<Float, Float>? = null
        set(value) {
            field = value
            invalidate()
        }

    private val taps = GestureDetector(context, object : GestureDetector.SimpleOnGestureListener() {
        override fun onDown(e: MotionEvent) = true
        override fun onSingleTapUp(e: MotionEvent): Boolean {
            if (before == null || width == 0 || height == 0) return false
            onTap?.invoke((e.x / width).coerceIn(0f, 1f), (e.y / height).coerceIn(0f, 1f))
            performClick()
            return true
        }
    })

    @android.annotation.SuppressLint("ClickableViewAccessibility")  // performClick() is called on a tap
    override fun onTouchEvent(event: MotionEvent): Boolean = taps.onTouchEvent(event) || super.onTouchEvent(event)

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
        // Keep the photo's aspect ratio (portrait or landscape, the result has the photo's size).
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
        focus?.let { (fx, fy) -> canvas.drawCircle(fx * width, fy * height, 18f, focusPaint) }
    }
}
