#!/usr/bin/env bash
# Time an exported model on an Android phone with TFLite's benchmark_model, over adb:
# on the CPU (XNNPACK, N threads) and on the GPU delegate (fp16 and fp32 arithmetic).
#
#   eval/android_benchmark.sh tflite_models/<name> [THREADS] [RUNS]
#
# Needs: adb with one phone attached (USB debugging on), and the benchmark_model binary for the
# phone's ABI. TFLite publishes nightly builds (download them on a machine with internet):
#   https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/android_aarch64_benchmark_model
#   (android_arm_benchmark_model for 32-bit phones)
# and point BENCHMARK_MODEL at it (default: ./android_aarch64_benchmark_model).
#
# Results are reported the way benchmark_model prints them: "Inference timings in us: Init: ...,
# First inference: ..., Warmup (avg): ..., Inference (avg): ..."; with --enable_op_profiling the
# per-op table also shows whether every node ran on the delegate ("Number of nodes executed: ...").
# Quote them with device, accelerator, threads, input size (the manifest's) and precision.
#
# The AI Benchmark app (the tool the AIM 2022 challenge and the paper's 12.9 s Kirin 9000 figure
# used, Bokeh-Loss GAN §4.2): install it from Google Play, copy bokeh_<precision>.tflite into the
# phone's Download/ folder (adb push FILE /sdcard/Download/), open Settings → PRO Mode → Custom
# Model, pick the file and the acceleration (CPU / TFLite GPU delegate / NNAPI) and run it. It
# reports the same kind of average latency; use it to compare with the challenge's tables.
set -euo pipefail

model_dir=${1:?usage: $0 tflite_models/<name> [threads] [runs]}
threads=${2:-4}
runs=${3:-20}
bench=${BENCHMARK_MODEL:-./android_aarch64_benchmark_model}
remote=/data/local/tmp/bokeh_bench

[ -f "$model_dir/manifest.json" ] || { echo "no manifest.json in $model_dir (export one with python -m export)" >&2; exit 2; }
[ -f "$bench" ] || { echo "benchmark_model binary not found: $bench (see the download link at the top of $0)" >&2; exit 2; }
command -v adb >/dev/null || { echo "adb not found: install Android platform-tools" >&2; exit 2; }
[ "$(adb get-state 2>/dev/null)" = device ] || { echo "no phone attached (adb devices)" >&2; exit 2; }

size=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print('x'.join(map(str, m['inputs'][0]['shape'])), m['inputs'][0]['layout'])" "$model_dir/manifest.json")
device=$(adb shell getprop ro.product.model | tr -d '\r')
soc=$(adb shell getprop ro.soc.model 2>/dev/null | tr -d '\r')
echo "device: $device ${soc:+($soc)}, input $size, $runs runs after 3 warm-up runs"

adb shell mkdir -p "$remote"
adb push -q "$bench" "$remote/benchmark_model"
adb shell chmod +x "$remote/benchmark_model"

for precision in fp32 fp16 int8; do
  file="$model_dir/bokeh_$precision.tflite"
  [ -f "$file" ] || continue
  adb push -q "$file" "$remote/"
  graph="$remote/bokeh_$precision.tflite"
  common=(--graph="$graph" --num_runs="$runs" --warmup_runs=3)

  echo "== $precision, CPU (XNNPACK, $threads threads)"
  adb shell "$remote/benchmark_model" "${common[@]}" --use_xnnpack=true --num_threads="$threads" | grep -E "Inference timings|memory footprint"

  echo "== $precision, GPU delegate (fp16 arithmetic allowed: what apps use)"
  adb shell "$remote/benchmark_model" "${common[@]}" --use_gpu=true --gpu_precision_loss_allowed=true | grep -E "Inference timings|memory footprint|delegate"

  echo "== $precision, GPU delegate (fp32 arithmetic)"
  adb shell "$remote/benchmark_model" "${common[@]}" --use_gpu=true --gpu_precision_loss_allowed=false | grep -E "Inference timings|memory footprint|delegate"
done

echo "== fp32 on the GPU, per-op profile (every node should run in the delegate)"
adb shell "$remote/benchmark_model" --graph="$remote/bokeh_fp32.tflite" --num_runs=5 --use_gpu=true --enable_op_profiling=true | grep -E "Number of nodes executed|TfLiteGpuDelegate|Inference timings"
adb shell rm -rf "$remote"
