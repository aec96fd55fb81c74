"""Where a data set's files live: the one home of the folder-layout rules.

Three layouts hold the same pairs (all-in-focus photo, depth map, bokeh ground truth):

(a) a *split folder* ``<split>/{original,bokeh,depth}/<id>.{png,jpg}`` with ``depth/`` a 16-bit
    grayscale PNG (normalised disparity × 65535, bright = near). The synthetic data set writes
    ``ROOT/train/`` and ``ROOT/val/`` split folders; ``python -m training.depth`` adds ``depth/``
    to any folder that has ``original/``.
(b) AIM 2020 EBB!: ``ROOT/Training/{original,bokeh}/<i>.jpg``. It ships no depth, so
    ``ROOT/Training/depth/`` must first be written by ``python -m training.depth --data ROOT``.
(c) PyNET EBB!: ``ROOT/train/{original,original_depth,bokeh}``, depth 8-bit at half resolution
    (bright = near), upsampled bilinearly to the image size. A ``train/depth/`` folder written by
    the depth command is preferred when it exists.

The synthetic data also holds ``<split>/lens/<id>.json`` (the lens each pair was rendered with);
other data may bring per-image lens values as a CSV (:func:`read_lens_csv`). Every reader of a
data folder (training, evaluation, export calibration, the contact sheet, the depth command)
finds its files through the functions here, so a layout rule changes in one place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from training.data.io import BadSampleError
from training.renderers.lens import LensParams

__all__ = [
    "IMAGE_EXTS",
    "FolderLayout",
    "image_files",
    "index_folder",
    "id_key",
    "is_split_folder",
    "has_split_folders",
    "split_folder_layout",
    "detect_layout",
    "missing_root_message",
    "read_lens_csv",
]

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def image_files(folder: Path) -> list[Path]:
    """The image files in ``folder``, sorted by name; hidden files (``.1.png.tmp``...) are not images."""
    if not folder.is_dir():
        return []
    return [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
    ]


def index_folder(folder: Path) -> dict[str, Path]:
    """stem → file for the image files in ``folder`` (a .png beats a .jpg of the same id)."""
    out: dict[str, Path] = {}
    for p in image_files(folder):
        if p.stem not in out or p.suffix.lower() == ".png":
            out[p.stem] = p
    return out


def id_key(i: str) -> tuple[int, int | str]:
    """Sort key of a sample id: EBB! ids are plain integers (2 before 10), any other name after them."""
    return (0, int(i)) if i.isdigit() else (1, i)


@dataclass(frozen=True)
class FolderLayout:
    """Where one split's originals, ground truths and depth maps live.

    ``kind`` is "split" (a), "aim2020" (b) or "pynet" (c) from the module docstring.
    """

    kind: str
    original: Path
    bokeh: Path
    depth: Path

    def ids(self) -> list[str]:
        return sorted(index_folder(self.original), key=id_key)

    def files(self, sample_id: str) -> tuple[Path, Path, Path]:
        """(original, bokeh, depth) paths of one id; missing files get their expected path.

        Two files for one id (``1.png`` beside ``1.jpg``, or ``1.jpg`` beside ``1.JPG``) are a bad
        sample: which one is current cannot be known, and picking one silently trained on stale files.
        """

        def find(folder: Path, exts: Sequence[str]) -> Path:
            found = [
                p
                for ext in exts
                for e in dict.fromkeys((ext, ext.upper()))
                if (p := folder / f"{sample_id}{e}").is_file()
            ]
            if len({p.resolve() for p in found}) > 1:  # resolve(): a case-insensitive file system lists one file twice
                raise BadSampleError(
                    found[0],
                    "more than one file for id "
                    + repr(sample_id)
                    + ": "
                    + ", ".join(p.name for p in found)
                    + "; keep one",
                )
            return found[0] if found else folder / f"{sample_id}{exts[0]}"

        return find(self.original, IMAGE_EXTS), find(self.bokeh, IMAGE_EXTS), find(self.depth, IMAGE_EXTS)

    def lens_file(self, sample_id: str) -> Path:
        """``<split>/lens/<id>.json``: the lens parameters the synthetic data was rendered with."""
        return self.original.parent / "lens" / f"{sample_id}.json"


def is_split_folder(p: Path) -> bool:
    """A split folder holds original/ and bokeh/ (and depth/): layout (a) of the module docstring."""
    return (p / "original").is_dir() and (p / "bokeh").is_dir()


def has_split_folders(root: Path) -> bool:
    """``root/train`` and ``root/val`` are both split folders: the synthetic data's own split."""
    return is_split_folder(root / "train") and is_split_folder(root / "val")


def split_folder_layout(split: Path) -> FolderLayout:
    """The layout of one split folder, whether or not it holds ``bokeh/`` (export calibration
    and the contact sheet read photos and depth only).

    A folder with PyNET's ``original_depth/`` is layout (c), whose own ``depth/`` wins when the
    depth command has written one; any other is layout (a), depth in ``depth/``.
    """
    if (split / "original_depth").is_dir():
        depth = split / "depth" if (split / "depth").is_dir() else split / "original_depth"
        return FolderLayout("pynet", split / "original", split / "bokeh", depth)
    return FolderLayout("split", split / "original", split / "bokeh", split / "depth")


def detect_layout(root: str | os.PathLike) -> FolderLayout:
    """The layout of a folder holding ONE split: a split folder, an AIM 2020 root or a PyNET root."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(missing_root_message(root))
    if (root / "Training").is_dir() and is_split_folder(root / "Training"):
        t = root / "Training"
        return FolderLayout("aim2020", t / "original", t / "bokeh", t / "depth")
    if (root / "train" / "original_depth").is_dir() and is_split_folder(root / "train"):
        return split_folder_layout(root / "train")
    if is_split_folder(root):  # a split folder, or the PyNET train/ folder itself
        return split_folder_layout(root)
    raise FileNotFoundError(
        f"{root}: no dataset layout found. Expected one of: {root}/original + bokeh + depth "
        f"(a split folder), {root}/train and {root}/val split folders (synthetic data), "
        f"{root}/Training/{{original,bokeh}} (AIM 2020 EBB!), or {root}/train/{{original,original_depth,bokeh}} "
        "(PyNET EBB!)."
    )


def missing_root_message(root: Path) -> str:
    """What to do about a data set root that does not exist: how to make one, or the layouts it may have."""
    return (
        f"dataset root {root} does not exist. Make data with `python -m training.synth --out {root}` "
        "(synthetic train/ and val/ split folders), or point root at EBB!: "
        "ROOT/Training/{original,bokeh}/<i>.jpg (AIM 2020, then run `python -m training.depth --data ROOT`) "
        "or ROOT/train/{original,original_depth,bokeh} (PyNET)."
    )


def read_lens_csv(path: str | os.PathLike) -> dict[str, tuple[float, float, float]]:
    """``id,d_f,K[,dof]`` rows (a header line is allowed) → {id: (d_f, K, dof)}; names the file
    and line on error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lens CSV {path} does not exist (rows: id,d_f,K[,dof])")
    out: dict[str, tuple[float, float, float]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        cells = [c.strip() for c in line.split("#", 1)[0].split(",")]
        if cells == [""] or (n == 1 and cells[:3] == ["id", "d_f", "K"]):
            continue
        try:
            if len(cells) not in (3, 4):
                raise ValueError(f"{len(cells)} cells")
            lens = LensParams(K=float(cells[2]), d_f=float(cells[1]), dof=float(cells[3]) if len(cells) == 4 else 0.0)
        except ValueError as e:
            raise ValueError(
                f"{path}:{n}: expected 'id,d_f,K[,dof]' with 0 <= d_f <= 1, K >= 0, 0 <= dof <= 0.5, got {line!r} ({e})"
            ) from None
        out[cells[0]] = (lens.d_f, lens.K, lens.dof)
    return out
