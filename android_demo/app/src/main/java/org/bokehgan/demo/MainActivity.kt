package org.bokehgan.demo

import android.content.ContentValues
import android.content.Intent
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.os.Environment
import android.provider.MediaStore
import android.util.Log
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.SeekBar
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts.PickVisualMedia
import androidx.core.content.FileProvider
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.io.File
import java.util.Locale
import java.util.concurrent.Executors

/**
 * One screen: pick a photo (any orientation, any size); its depth is the picked depth map if any,
 * else depth.tflite if bundled, else the person matte ([MatteHelper]). Tap the picture to focus
 * there, set the blur with the aperture slider, drag the before/after divider, save or share the
 * result at the photo's resolution, read the per-stage latency; "Benchmark" times every
 * accelerator, "Compare GPU vs CPU" measures how far the GPU delegate's output is from the CPU's.
 */
class MainActivity : ComponentActivity() {

    // Every LiteRT call runs on this one thread: the GPU delegate is bound to its creating thread.
    private val inferenceExecutor = Executors.newSingleThreadExecutor()
    private val inference = inferenceExecutor.asCoroutineDispatcher()

    private var helper: BokehHelper? = null  // touched only on `inference`
    private var photo: Bitmap? = null
    private var photoName = "photo"
    private var depthFile: Bitmap? = null  // a depth map the user picked
    @Volatile private var depth: DepthMap? = null  // the depth used for [photo], computed once on `inference`
    private var controls = BokehHelper.Controls()  // tap and aperture; empty = auto-focus
    private var result: BokehHelper.Result? = null

    private lateinit var spec: ModelSpec
    private lateinit var manifest: ExportManifest
    private lateinit var modelInfo: TextView
    private lateinit var latency: TextView
    private lateinit var report: TextView
    private lateinit var beforeAfter: BeforeAfterView
    private lateinit var acceleratorSpinner: Spinner
    private lateinit var precisionSpinner: Spinner
    private lateinit var threadsSpinner: Spinner
    private lateinit var renderButton: Button
    private lateinit var benchmarkButton: Button
    private lateinit var compareButton: Button
    private lateinit var saveButton: Button
    private lateinit var shareButton: Button
    private lateinit var aperture: SeekBar
    private lateinit var apertureValue: TextView

    private val pickPhoto = registerForActivityResult(PickVisualMedia()) { uri -> uri?.let { onPicked(it, isDepth = false) } }
    private val pickDepth = registerForActivityResult(PickVisualMedia()) { uri -> uri?.let { onPicked(it, isDepth = true) } }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        modelInfo = findViewById(R.id.modelInfo)
        latency = findViewById(R.id.latency)
        report = findViewById(R.id.report)
        beforeAfter = findViewById(R.id.beforeAfter)
        acceleratorSpinner = findViewById(R.id.accelerator)
        precisionSpinner = findViewById(R.id.precision)
        threadsSpinner = findViewById(R.id.threads)
        renderButton = findViewById(R.id.render)
        benchmarkButton = findViewById(R.id.benchmark)
        compareButton = findViewById(R.id.compare)
        saveButton = findViewById(R.id.save)
        shareButton = findViewById(R.id.share)
        aperture = findViewById(R.id.aperture)
        apertureValue = findViewById(R.id.apertureValue)

        try {
            spec = ModelSpec.load(this)
            manifest = ExportManifest.load(this, spec)
        } catch (e: Exception) {
            modelInfo.text = "Model not usable:\n${e.message}"
            Log.e(TAG, "model check failed", e)
            return
        }
        // Until a photo is picked, the lens a lens model would get is the manifest's default.
        showModelInfo(
            manifest.lensDefault?.let { BokehHelper.Lens(it, BokehHelper.LensSource.MANIFEST_DEFAULT) },
            untilDepth = true,
        )

        acceleratorSpinner.adapter = adapter(BokehHelper.Accelerator.entries.map { it.name })
        precisionSpinner.adapter = adapter(manifest.bundledPrecisions)
        threadsSpinner.adapter = adapter(THREAD_CHOICES.map { "$it threads" })
        threadsSpinner.setSelection(THREAD_CHOICES.indexOf(BokehHelper.DEFAULT_THREADS).coerceAtLeast(0))
        val rerender = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: android.view.View?, position: Int, id: Long) = render()
            override fun onNothingSelected(parent: AdapterView<*>?) = Unit
        }
        listOf(acceleratorSpinner, precisionSpinner, threadsSpinner).forEach { it.onItemSelectedListener = rerender }

        findViewById<Button>(R.id.pickPhoto).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(PickVisualMedia.ImageOnly))
        }
        findViewById<Button>(R.id.pickDepth).setOnClickListener {
            pickDepth.launch(PickVisualMediaRequest(PickVisualMedia.ImageOnly))
        }
        renderButton.setOnClickListener { render() }
        saveButton.setOnClickListener { save() }
        shareButton.setOnClickListener { share() }
        findViewById<Button>(R.id.auto).setOnClickListener {
            controls = BokehHelper.Controls()
            beforeAfter.focus = null
            render()
        }
        // Tap to focus: d_f = the depth's median around the tap (as eval.render --focus X,Y).
        beforeAfter.onTap = { x, y ->
            if (manifest.lensDefault == null) {
                report.text = "this model reads no lens: tap-to-focus needs a lens-conditioned export"
            } else {
                controls = controls.copy(focusX = x, focusY = y)
                beforeAfter.focus = x to y
                render()
            }
        }
        setupAperture()
        benchmarkButton.setOnClickListener { benchmark() }
        compareButton.setOnClickListener { compareGpuCpu() }
        findViewById<SeekBar>(R.id.split).setOnSeekBarChangeListener(object : SeekBar.OnSeekBarChangeListener {
            override fun onProgressChanged(bar: SeekBar, progress: Int, fromUser: Boolean) {
                beforeAfter.split = progress / bar.max.toFloat()
            }
            override fun onStartTrackingTouch(bar: SeekBar) = Unit
            override fun onStopTrackingTouch(bar: SeekBar) = Unit
        })
        updateButtons()
    }

    /**
     * The aperture slider sets K (blur radius in model pixels per unit of disparity) over
     * [0, APERTURE_MAX_FACTOR × the manifest's default]; it renders when released, not while dragged.
     */
    private fun setupAperture() {
        val k0 = manifest.lensDefault?.get(1)
        aperture.isEnabled = k0 != null
        apertureValue.text = if (k0 == null) "no lens input" else "auto"
        if (k0 == null) return
        val kMax = APERTURE_MAX_FACTOR * k0
        aperture.progress = (aperture.max / APERTURE_MAX_FACTOR).toInt()
        aperture.setOnSeekBarChangeListener(object : SeekBar.OnSeekBarChangeListener {
            override fun onProgressChanged(bar: SeekBar, progress: Int, fromUser: Boolean) {
                if (fromUser) apertureValue.text = String.format(Locale.US, "K %.1f px", kMax * progress / bar.max)
            }
            override fun onStartTrackingTouch(bar: SeekBar) = Unit
            override fun onStopTrackingTouch(bar: SeekBar) {
                controls = controls.copy(strength = kMax * bar.progress / bar.max)
                render()
            }
        })
    }

    /** Model, lens and device lines at the top; the lens line shows the lens last fed and its source. */
    private fun showModelInfo(lens: BokehHelper.Lens?, untilDepth: Boolean = false) {
        modelInfo.text = String.format(
            Locale.US, "%s · %d×%d NHWC · %s\n%s\n%s (%s)",
            manifest.name, manifest.height, manifest.width, manifest.converter, lensText(lens, untilDepth),
            Build.MODEL, if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) Build.SOC_MODEL else Build.HARDWARE,
        )
    }

    /**
     * "lens: d_f 0.73 · K 7.5 px · dof 0.10 (auto-focus)": auto-focus on the depth fed, a tap's d_f,
     * the slider's K, or the manifest's default before a photo.
     */
    private fun lensText(lens: BokehHelper.Lens?, untilDepth: Boolean = false): String {
        if (manifest.lensDefault == null || lens == null) return "lens: none (depth-only model)"
        val v = lens.values
        val source = lens.source.label + if (untilDepth) ", until a photo is picked" else ""
        return String.format(Locale.US, "lens: d_f %.2f · K %.1f px · dof %.2f (%s)", v[0], v[1], v[2], source)
    }

    private fun adapter(items: List<String>) =
        ArrayAdapter(this, android.R.layout.simple_spinner_item, items).apply {
            setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item)
        }

    private val selectedAccelerator get() = BokehHelper.Accelerator.entries[acceleratorSpinner.selectedItemPosition]
    private val selectedPrecision get() = manifest.bundledPrecisions[precisionSpinner.selectedItemPosition]
    private val selectedThreads get() = THREAD_CHOICES[threadsSpinner.selectedItemPosition]

    private fun updateButtons() {
        val ready = photo != null  // a photo is enough: the depth comes from the file, depth.tflite or the matte
        renderButton.isEnabled = ready
        benchmarkButton.isEnabled = ready
        compareButton.isEnabled = ready
        saveButton.isEnabled = result != null
        shareButton.isEnabled = result != null
    }

    private fun onPicked(uri: Uri, isDepth: Boolean) {
        lifecycleScope.launch {
            val bitmap = try {
                withContext(Dispatchers.IO) { decode(uri) }
            } catch (e: Exception) {
                report.text = "$uri: not a readable image (${e.message})"
                return@launch
            }
            if (isDepth) {
                depthFile = bitmap
            } else {
                photo = bitmap
                photoName = uri.lastPathSegment?.substringAfterLast('/')?.substringBeforeLast('.') ?: "photo"
                result = null
            }
            depth = null  // recomputed for the new photo or depth map
            controls = BokehHelper.Controls()
            beforeAfter.focus = null
            updateButtons()
            render()
        }
    }

    /** The depth of [p] (on `inference`, cached): the picked map > bundled depth.tflite > person matte. */
    private fun depthFor(p: Bitmap): DepthMap {
        depth?.let { return it }
        val file = depthFile
        val map = when {
            file != null -> DepthMap.fromBitmap(file, p.width, p.height)
            DepthHelper.isBundled(this, spec) -> DepthHelper(this, spec).let { h ->
                try { h.estimate(p) } finally { h.cleanup() }
            }
            else -> MatteHelper(this, spec).let { h ->
                try { h.matte(p) } finally { h.cleanup() }
            }
        }
        depth = map
        return map
    }

    /**
     * Decode to a software ARGB_8888 bitmap (8 bits per channel: a 16-bit depth PNG loses its low
     * byte). ImageDecoder applies the EXIF orientation (the photo as displayed); the API 26-27
     * fallback does not.
     */
    private fun decode(uri: Uri): Bitmap =
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { decoder, _, _ ->
                decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE  // getPixels() needs CPU memory
            }.copy(Bitmap.Config.ARGB_8888, false)
        } else {
            contentResolver.openInputStream(uri).use { stream ->
                BitmapFactory.decodeStream(stream) ?: throw IllegalArgumentException("$uri: not a decodable image")
            }
        }

    /** The helper for the current spinner choices, created (and the old one released) on `inference`. */
    private fun helperFor(accelerator: BokehHelper.Accelerator, precision: String, threads: Int): BokehHelper {
        val current = helper
        if (current != null && current.accelerator == accelerator && current.precision == precision &&
            current.numThreads == threads) {
            return current
        }
        current?.cleanup()
        helper = null
        return BokehHelper(this, accelerator, threads, precision).also { helper = it }
    }

    private fun render() {
        val p = photo ?: return
        val accelerator = selectedAccelerator
        val precision = selectedPrecision
        val threads = selectedThreads
        val c = controls
        lifecycleScope.launch {
            try {
                val t0 = System.nanoTime()
                val (d, r) = withContext(inference) {
                    val d = depthFor(p)
                    val depthMs = (System.nanoTime() - t0) / 1e6
                    d to helperFor(accelerator, precision, threads).render(p, d, c).also { it.depthMs = depthMs }
                }
                result = r
                beforeAfter.setImages(r.input, r.bokeh)
                if (r.lens != null) {
                    showModelInfo(r.lens)
                    if (c.strength == null) apertureValue.text = String.format(Locale.US, "K %.1f px (auto)", r.lens.values[1])
                }
                val t = r.timings
                latency.text = String.format(
                    Locale.US,
                    "%s · %s · %d threads · model %d×%d · %s · photo %d×%d\n" +
                        "depth (%s) %.1f ms · pre-process %.1f ms · inference %.1f ms · post-process %.1f ms (one run)",
                    Build.MODEL, accelerator, threads, manifest.height, manifest.width, precision, p.width, p.height,
                    d.source, r.depthMs, t.preprocessMs, t.inferenceMs, t.postprocessMs,
                ) + (r.lens?.let { "\n" + lensText(it) } ?: "")
                updateButtons()
            } catch (e: Exception) {
                Log.e(TAG, "render failed", e)
                latency.text = "$accelerator failed: ${e.message}"
            }
        }
    }

    /** The result at the photo's resolution as PNG: Pictures/Bokeh via MediaStore (API 29+), else the app's Pictures folder. */
    private fun save() {
        val bokeh = result?.bokeh ?: return
        val name = "$photoName.bokeh.png"
        lifecycleScope.launch {
            report.text = try {
                withContext(Dispatchers.IO) {
                    if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
                        val values = ContentValues().apply {
                            put(MediaStore.Images.Media.DISPLAY_NAME, name)
                            put(MediaStore.Images.Media.MIME_TYPE, "image/png")
                            put(MediaStore.Images.Media.RELATIVE_PATH, "${Environment.DIRECTORY_PICTURES}/Bokeh")
                        }
                        val uri = contentResolver.insert(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, values)
                            ?: throw IllegalStateException("MediaStore refused the new image")
                        contentResolver.openOutputStream(uri).use { bokeh.compress(Bitmap.CompressFormat.PNG, 100, it!!) }
                        "saved Pictures/Bokeh/$name (${bokeh.width}×${bokeh.height})"
                    } else {
                        // No storage permission below API 29: the app's own Pictures folder.
                        val file = File(getExternalFilesDir(Environment.DIRECTORY_PICTURES), name)
                        file.outputStream().use { bokeh.compress(Bitmap.CompressFormat.PNG, 100, it) }
                        "saved $file (${bokeh.width}×${bokeh.height})"
                    }
                }
            } catch (e: Exception) {
                Log.e(TAG, "save failed", e)
                "save failed: ${e.message}"
            }
        }
    }

    /** Share the result (PNG, the photo's resolution) through the system share sheet. */
    private fun share() {
        val bokeh = result?.bokeh ?: return
        lifecycleScope.launch {
            try {
                val uri = withContext(Dispatchers.IO) {
                    val file = File(File(cacheDir, "shared").apply { mkdirs() }, "$photoName.bokeh.png")
                    file.outputStream().use { bokeh.compress(Bitmap.CompressFormat.PNG, 100, it) }
                    FileProvider.getUriForFile(this@MainActivity, "$packageName.files", file)
                }
                val send = Intent(Intent.ACTION_SEND).apply {
                    type = "image/png"
                    putExtra(Intent.EXTRA_STREAM, uri)
                    addFlags(Intent.FLAG_GRANT_READ_URI_PERMISSION)
                }
                startActivity(Intent.createChooser(send, null))
            } catch (e: Exception) {
                Log.e(TAG, "share failed", e)
                report.text = "share failed: ${e.message}"
            }
        }
    }

    private fun benchmark() = diagnose("benchmarking…") { it.benchmark(manifest) }

    private fun compareGpuCpu() = diagnose("comparing…") { it.compareGpuCpu(spec.output.range) }

    /** One of [Diagnostics]' measurements of the photo as shown, on the inference thread. */
    private fun diagnose(busyText: String, measure: (Diagnostics) -> String) {
        val p = photo ?: return
        val d = depth ?: return  // set by the first render
        val diagnostics = Diagnostics(this, p, d, controls, selectedPrecision, selectedThreads)
        setBusy(true)
        report.text = busyText
        lifecycleScope.launch {
            report.text = withContext(inference) {
                helper?.cleanup()  // the measurements build their own helpers
                helper = null
                measure(diagnostics)
            }
            setBusy(false)
        }
    }

    private fun setBusy(busy: Boolean) {
        benchmarkButton.isEnabled = !busy
        compareButton.isEnabled = !busy
        renderButton.isEnabled = !busy
        if (!busy) updateButtons()
    }

    override fun onDestroy() {
        super.onDestroy()
        // Release on the inference thread (queued after any running job), then stop the thread.
        inferenceExecutor.execute {
            helper?.cleanup()
            helper = null
        }
        inferenceExecutor.shutdown()
    }

    private companion object {
        const val TAG = "BokehDemo"
        val THREAD_CHOICES = listOf(1, 2, 4, 8)
        const val APERTURE_MAX_FACTOR = 3f  // as web_demo/panel.js STRENGTH_MAX_FACTOR
    }
}
