package org.bokehgan.demo

import android.content.Context
import android.graphics.Bitmap
import android.os.Build
import java.util.Locale

/**
 * The measurements behind the "Benchmark" and "Compare GPU vs CPU" buttons, for one photo as the
 * screen shows it (its depth, tap and aperture). Each builds its own [BokehHelper]s and returns
 * the report text; call them on the inference thread.
 */
class Diagnostics(
    private val context: Context,
    private val photo: Bitmap,
    private val depth: DepthMap,
    private val controls: BokehHelper.Controls,
    private val precision: String,
    private val threads: Int,
) {
    /** [BENCH_RUNS] runs after [BENCH_WARMUP] for every accelerator; median and p90 of the inference stage. */
    fun benchmark(manifest: ExportManifest): String {
        val lines = BokehHelper.Accelerator.entries.map { accelerator ->
            try {
                val b = withHelper(accelerator) {
                    it.benchmark(photo, depth, controls, warmup = BENCH_WARMUP, runs = BENCH_RUNS)
                }
                String.format(Locale.US, "%-6s %7.1f %7.1f", accelerator, b.medianMs, b.p90Ms)
            } catch (e: Exception) {
                String.format(Locale.US, "%-6s unavailable: %s", accelerator, e.message)
            }
        }
        return String.format(
            Locale.US, "%s · %d threads · %d×%d · %s · %d runs after %d warm-up\n%-6s %7s %7s\n",
            Build.MODEL, threads, manifest.height, manifest.width, precision, BENCH_RUNS, BENCH_WARMUP,
            "accel", "median", "p90",
        ) + lines.joinToString("\n") + "\n(ms, inference only)"
    }

    /**
     * GPU output vs CPU output on the same input. The GPU delegate computes in fp16 by default;
     * fp16 accumulation can overflow in a LayerNorm variance or a large mean, which shows up here
     * as a low PSNR. The fp32-kernel run tells a precision problem from a delegate bug.
     */
    fun compareGpuCpu(range: Pair<Float, Float>): String = try {
        val cpu = withHelper(BokehHelper.Accelerator.CPU, fp16 = false) { it.render(photo, depth, controls).output }
        listOf(true, false).joinToString("\n", prefix = "$precision model, reference = CPU (XNNPACK)\n") { fp16 ->
            val label = if (fp16) "GPU fp16 kernels" else "GPU fp32 kernels"
            try {
                val gpu = withHelper(BokehHelper.Accelerator.GPU, fp16) { it.render(photo, depth, controls).output }
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

    /** A helper for one measurement, released after it whatever happens. */
    private fun <T> withHelper(accelerator: BokehHelper.Accelerator, fp16: Boolean = true, use: (BokehHelper) -> T): T {
        val h = BokehHelper(context, accelerator, threads, precision, gpuPrecisionLossAllowed = fp16)
        try {
            return use(h)
        } finally {
            h.cleanup()
        }
    }

    private companion object {
        const val BENCH_WARMUP = 3
        const val BENCH_RUNS = 20
    }
}
