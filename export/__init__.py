"""Export the bokeh generator to TFLite files that run on the phone GPU.

PyTorch → ONNX → TensorFlow SavedModel → TFLite fp32 / fp16 / int8, the chain of the paper's
appendix A, with gates the paper's conversion lacked (its model needed Flex ops and could not run
on the mobile GPU, Bokeh-Loss GAN §4.2). One file per step:

* ``samples.py``      real dataset samples for calibration and the parity gates
* ``reparam.py``      the generator's inference form (same function, no channel slices, folded affines)
* ``onnx_export.py``  PyTorch → ONNX (static shape, inputs ``image`` and ``depth``), onnxsim
* ``convert.py``      ONNX → SavedModel through onnx2tf (NHWC, default) or onnx-tf (NCHW)
* ``tflite.py``       SavedModel → TFLite fp32 / fp16 / int8
* ``gates.py``        parity, builtin ops only, rank ≤ 4, GPU-delegate compatibility
* ``manifest.py``     ``manifest.json`` beside the files
* ``runtime.py``      ``load_runner(path)``: one interface for .tflite, .onnx and checkpoints
* ``toollog.py``      converter chatter to a log, its tail into error messages
* ``pipeline.py``     the gated, atomic export; ``__main__.py`` its command line
* ``compare.py``      the onnx2tf / onnx-tf comparison table of export/README.md

Usage: ``python -m export --checkpoint CKPT --size 1024x1536 --out tflite_models/<name>
--calib-data DATA/val``; see export/README.md.
"""
