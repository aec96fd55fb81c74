package org.bokehgan.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build
import android.os.Bundle
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
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.util.Locale
import java.util.concurrent.Executors

/**
 * One screen: pick a photo and its depth map (or estimate depth with depth.tflite), render bokeh,
 * drag the before/after divider, read the per-stage latency; "Benchmark" times every accelerator,
 * "Compare GPU vs CPU" measures how far the GPU delegate's output is from the CPU's.
 */
class MainActivity : ComponentActivity() {

    // Every LiteRT call runs on this one thread: the GPU delegate is bound to its creating thread.
    private val inferenceExecutor = Executors.newSingleThreadExecutor()
    private val inference = inferenceExecutor.asCoroutineDispatcher()

    private var helper: BokehHelper? = null  // touched only on `inference`
    private var photo: Bitmap? = null
    private var depth: Bitmap? = null

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
    private lateinit var estimateButton: Button

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
        estimateButton = findViewById(R.id.estimateDepth)

        try {
            spec = ModelSpec.load(this)
            manifest = ExportManifest.load(this, spec)
        } catch (e: Exception) {
            modelInfo.text = "Model not usable:\n${e.message}"
            Log.e(TAG, "model check failed", e)
            return
        }
        // Until a depth map is picked, the lens a lens model would get is the manifest's default.
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
        estimateButton.setOnClickListener { estimateDepth() }
        renderButton.setOnClickListener { render() }
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

    /** Model, lens and device lines at the top; the lens line shows the lens last fed and its source. */
    private fun showModelInfo(lens: BokehHelper.Lens?, untilDepth: Boolean = false) {
        modelInfo.text = String.format(
            Locale.US, "%s · %d×%d NHWC · %s\n%s\n%s (%s)",
            manifest.name, manifest.height, manifest.width, manifest.converter, lensText(lens, untilDepth),
            Build.MODEL, if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) Build.SOC_MODEL else Build.HARDWARE,
        )
    }

    /**
     * "lens: d_f 0.73 · K 7.5 px · dof 0.10 (auto-focus)": the auto-focus of the depth map fed, or the
     * manifest's default without a depth map (no tap-to-focus or sliders yet).
     */
    private fun lensText(lens: BokehHelper.Lens?, untilDepth: Boolean = false): String {
        if (manifest.lensDefault == null || lens == null) return "lens: none (depth-only model)"
        val v = lens.values
        val source = lens.source.label + if (untilDepth) ", until a depth map is picked" else ""
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
        val ready = photo != null && depth != null
        renderButton.isEnabled = ready
        benchmarkButton.isEnabled = ready
        compareButton.isEnabled = ready
        estimateButton.isEnabled = photo != null && DepthHelper.isBundled(this, spec)
    }

    private fun onPicked(uri: Uri, isDepth: Boolean) {
        lifecycleScope.launch {
            val bitmap = withContext(Dispatchers.IO) { decode(uri) }
            if (isDepth) depth = bitmap else photo = bitmap
            updateButtons()
            render()
        }
    }

    /** Decode to a software ARGB_8888 bitmap (8 bits per channel: a 16-bit depth PNG loses its low byte). */
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
        val d = depth ?: return
        val accelerator = selectedAccelerator
        val precision = selectedPrecision
        val threads = selectedThreads
        lifecycleScope.launch {
            try {
                val result = withContext(inference) { helperFor(accelerator, precision, threads).render(p, d) }
                beforeAfter.setImages(result.input, result.bokeh)
                if (result.lens != null) showModelInfo(result.lens)
                val t = result.timings
                latency.text = String.format(
                    Locale.US,
                    "%s · %s · %d threads · %d×%d · %s\npre-process %.1f ms · inference %.1f ms · post-process %.1f ms (one run)",
                    Build.MODEL, accelerator, threads, manifest.height, manifest.width, precision,
                    t.preprocessMs, t.inferenceMs, t.postprocessMs,
                ) + (result.lens?.let { "\n" + lensText(it) } ?: "")
            } catch (e: Exception) {
                Log.e(TAG, "render failed", e)
                latency.text = "$accelerator failed: ${e.message}"
            }
        }
    }

    private fun estimateDepth() {
        val p = photo ?: return
        lifecycleScope.launch {
            try {
                val (map, ms) = withContext(inference) {
                    val depthHelper = DepthHelper(this@MainActivity, spec)
                    try {
                        depthHelper.estimate(p) to depthHelper.lastInferenceMs
                    } finally {
                        depthHelper.cleanup()
                    }
                }
                depth = map
                report.text = String.format(Locale.US, "depth estimated by %s in %.1f ms (CPU)", spec.depthModel.asset, ms)
                updateButtons()
                render()
            } catch (e: Exception) {
                Log.e(TAG, "depth failed", e)
                report.text = "depth estimation failed: ${e.message}"
            }
        }
    }

    /** N runs after warm-up for every accelerator; median and p90 of the inference stage. */
    private fun benchmark() {
        val p = photo ?: return
        val d = depth ?: return
        val precision = selectedPrecision
        val threads = selectedThreads
        setBusy(true)
        report.text = "benchmarking…"
        lifecycleScope.launch {
            val lines = withContext(inference) {
                helper?.cleanup()
                helper = null
                BokehHelper.Accelerator.entries.map { accelerator ->
                    try {
                        val h = BokehHelper(this@MainActivity, accelerator, threads, precision)
                        try {
                            val b = h.benchmark(p, d, warmup = BENCH_WARMUP, runs = BENCH_RUNS)
                            String.format(Locale.US, "%-6s %7.1f %7.1f", accelerator, b.medianMs, b.p90Ms)
                        } finally {
                            h.cleanup()
                        }
                    } catch (e: Exception) {
                        String.format(Locale.US, "%-6s unavailable: %s", accelerator, e.message)
                    }
                }
            }
            report.text = String.format(
                Locale.US, "%s · %d threads · %d×%d · %s · %d runs after %d warm-up\n%-6s %7s %7s\n",
                Build.MODEL, threads, manifest.height, manifest.width, precision, BENCH_RUNS, BENCH_WARMUP,
                "accel", "median", "p90",
            ) + lines.joinToString("\n") + "\n(ms, inference only)"
            setBusy(false)
        }
    }

    /**
     * GPU output vs CPU output on the same input. The GPU delegate computes in fp16 by default;
     * fp16 accumulation can overflow in a LayerNorm variance or a large mean, which shows up here
     * as a low PSNR. The fp32-kernel run tells a precision problem from a delegate bug.
     */
    private fun compareGpuCpu() {
        val p = photo ?: return
        val d = depth ?: return
        val precision = selectedPrecision
        val threads = selectedThreads
        setBusy(true)
        report.text = "comparing…"
        lifecycleScope.launch {
            val text = withContext(inference) {
                helper?.cleanup()
                helper = null
                fun run(accelerator: BokehHelper.Accelerator, fp16: Boolean): FloatArray {
                    val h = BokehHelper(this@MainActivity, accelerator, threads, precision, gpuPrecisionLossAllowed = fp16)
                    try {
                        return h.render(p, d).output
                    } finally {
                        h.cleanup()
                    }
                }
                try {
                    val range = spec.output.range
                    val cpu = run(BokehHelper.Accelerator.CPU, fp16 = false)
                    listOf(true, false).joinToString("\n", prefix = "$precision model, reference = CPU (XNNPACK)\n") { fp16 ->
                        val label = if (fp16) "GPU fp16 kernels" else "GPU fp32 kernels"
                        try {
                            val gpu = run(BokehHelper.Accelerator.GPU, fp16)
                            String.format(
                                Locale.US, "%s: PSNR %.1f dB, max |diff| %.4f",
                                label, ImageOps.psnr(gpu, cpu, range), ImageOps.maxAbsDiff(gpu, cpu),
                            )
                        } catch (e: Exception) {
                            "$label: unavailable (${e.message})"
                        }
                    }
                } catch (e: Exception) {
                    "compare failed: ${e.message}"
                }
            }
            report.text = text
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
        const val BENCH_WARMUP = 3
        const val BENCH_RUNS = 20
    }
}
