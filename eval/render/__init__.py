"""Photo in, bokeh out, at the photo's own resolution: ``python -m eval.render``.

    python -m eval.render photo.jpg --out runs/render             # depth from photo.depth.png beside it
    python -m eval.render PHOTOS_DIR --out runs/render  # a folder: <id>.jpg + <id>.depth.png
    python -m eval.render photo.jpg --depth-model weights/dpt-hybrid-midas --focus 0.5,0.4 --out runs/render
    python -m eval.render portrait.jpg --matte --out runs/render   # no depth map: the person matte (eval.matte)

    from eval.render import render
    bokeh = render("photo.jpg", "photo.depth.png")  # a PIL image of the photo's size

Writes ``<id>.bokeh.png`` (PNG: the render is what a user judges, so it is not re-compressed
lossily), ``<id>.depth.png`` (the disparity used, 16-bit, at the photo's size, so that a re-run
with ``--depth`` on it gives the same picture to 16-bit precision) and ``<id>.side_by_side.jpg`` (photo | depth | bokeh,
small). Every file is written atomically; a photo whose three files exist is skipped.

Why it lives in ``eval/``: this folder holds the commands that run a finished model on inputs
(``eval.photos`` on real photos, ``eval.controls``), and the render reuses their pieces: the
photo + depth layouts of ``eval.photos`` (``depth_for``, its renderer runner) and the atomic writer
of ``eval.evaluate``. A new top-level folder for one command would add a stage that the user does
not walk through (training → export → tflite_models → eval / android_demo).

How one photo is rendered:

1. The photo is read with its EXIF orientation applied (``ImageOps.exif_transpose``): the photo
   as it is displayed. The depth map must be in that orientation (``training.depth`` writes it
   so); it is read with ``training.data.read_depth`` (same aspect ratio or rejected, upsampled to
   the photo's size) and min-max normalised as a monocular estimate is
   (``training.depth.normalise_disparity``), or computed by DPT from local weights.
2. A photo whose orientation (portrait / landscape) differs from the model's input is turned by
   90° and turned back after. Rotation rather than padding or cropping: a portrait photo padded
   into a landscape input would use 44 % of a 1024×1536 input, and a crop would leave pixels
   without an output. Checkpoints and renderers, which take any size, are turned too, so a
   photo gets the same lens and the same picture whichever way the camera was held.
3. The photo is scaled uniformly to fit the model's input and reflection-padded to it (the
   padding is cut off after). Uniform scaling rather than stretching keeps the aperture round and
   keeps K's unit (pixels at the model's input) the same in x and y; for a 4:3 phone photo in a
   3:2 input, a stretch would make every bokeh disk an ellipse 12.5 % wider than high.
4. The lens is ``auto_focus`` of the depth at the model's scale, with the flags replacing their
   own values: ``--focus X,Y`` (tap to focus) and ``--focus-disparity`` set d_f and keep
   auto-focus's K (refocusing does not change the aperture, as in ``training.synth.refocus``),
   ``--strength`` sets K, ``--dof`` the sharp band.
5. The model's output is cut out of the padding, turned back and upsampled to the photo's size.
   Where the lens's blur radius at the photo's resolution is under ``SHARP_RADIUS`` px the photo
   itself is kept, with a soft transition: in-focus pixels keep their full-resolution detail,
   which a model run at 1024×1536 cannot give back to a 12 Mpx photo.

The files of this package: ``inputs.py`` (step 1: the photo and its depth), ``frame.py`` (steps
2-5: the frame, the lens, the sharp blend), ``photo.py`` (:func:`render`, :func:`render_photo`),
``files.py`` (what a render writes, the photos of a folder) and ``cli.py`` (the command).
"""

from .cli import build_parser, main
from .files import SIDE_BY_SIDE_HEIGHT, SUFFIXES, list_photos, output_paths, side_by_side, write_outputs
from .frame import FOCUS_WINDOW, SHARP_RADIUS, Frame, choose_lens, model_frame, sharp_keep
from .frame import _tap_disparity as _tap_disparity  # the web and app tests compare their taps with it
from .inputs import MAX_PIXELS, RenderError, dpt_depth, load_depth, matte_depth, open_photo
from .photo import DEFAULT_MODEL, DEFAULT_SIZE, Rendered, load_model, render, render_photo

__all__ = [
    "render",
    "render_photo",
    "Rendered",
    "RenderError",
    "load_model",
    "output_paths",
    "model_frame",
    "sharp_keep",
    "main",
    "build_parser",
    "choose_lens",
    "dpt_depth",
    "list_photos",
    "load_depth",
    "matte_depth",
    "open_photo",
    "side_by_side",
    "write_outputs",
    "DEFAULT_MODEL",
    "DEFAULT_SIZE",
    "FOCUS_WINDOW",
    "Frame",
    "MAX_PIXELS",
    "SHARP_RADIUS",
    "SIDE_BY_SIDE_HEIGHT",
    "SUFFIXES",
]
