"""`make demo`: the whole pipeline on the embedded synthetic data, on a CPU, in one command.

    python -m eval.demo --out runs/demo

Stages, each a real command of the project run as a subprocess (so its progress bar shows):

1. ``data``    ``python -m training.synth``: a small synthetic data set with ground-truth bokeh,
               focused anywhere (``--refocus-prob``) and with sharp bands (``--dof-max``).
2. ``stage1``  ``python -m training fit`` with stage1.yaml + quick.yaml + lens.yaml (L1, SSIM,
               bokeh losses; the lens-conditioned generator, so the blur is controllable).
3. ``stage2``  ``python -m training fit`` with stage2.yaml + quick.yaml + lens.yaml (+ WGAN-GP
               critics), from the best stage-1 generator. The VGG term is switched off when
               vgg19-dcbb9e9d.pth is absent.
4. ``export``  ``python -m export``: ONNX → TensorFlow → TFLite fp32 / fp16 / int8, with the gates.
5. ``eval``    ``python -m eval``: the PyTorch model, each TFLite model, the three classical
               renderers (given the same lens) and the identity baseline on the validation split.
6. ``controls`` ``python -m eval.controls``: one validation scene from the fp16 TFLite model at three
               focus settings x two strengths.
7. ``report``  ``runs/demo/report.md`` with the tables and pictures; the summary table is printed.

Re-running reuses every stage whose inputs did not change: each stage stores a key (its command
line, the contents of the configs it reads and of the code it runs, and the keys of the stages
before it) in ``<out>/stamps/<stage>.json``; a changed config, argument or ``.py`` file of a
package the stage runs invalidates that stage and the ones after it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.io import atomic_write_text
from common.paths import REPO
from export.command import export_command
from export.gates import TFLITE_MIN_PSNR_DB
from training.losses import find_vgg19_weights

CONFIGS = REPO / "training" / "configs"

# The code each stage runs, as packages (every .py file under them) or single files, relative to
# REPO. Whole packages rather than the modules one run happens to call: re-running a stage costs
# less than reporting a stale result. tests/test_demo_cache.py checks that each list covers every
# project module its stage's entry point imports.
# common/ is the floor every stage stands on (atomic writes, sizes, metrics), so every stage has it.
STAGE_CODE = {
    "data": ("common", "training"),
    "stage1": ("common", "training"),
    "stage2": ("common", "training"),
    "export": ("common", "training", "export"),
    "eval": ("common", "training", "export", "eval"),
    "controls": ("common", "training", "export", "eval"),
}


@dataclass
class Stage:
    name: str
    cmd: list[str]
    outputs: list[Path]
    # Files whose contents the stage depends on; a folder stands for the .py files under it.
    inputs: list[Path] = field(default_factory=list)
    clean: Path | None = None  # a stale result folder, removed before the stage re-runs


def _input_files(inputs: list[Path]) -> list[Path]:
    """The files ``inputs`` names, folders expanded to their .py files, once each, sorted by path."""
    files = set()
    for p in inputs:
        if p.is_dir():
            files.update(f for f in p.rglob("*.py") if "__pycache__" not in f.parts)
        else:
            files.add(p)
    return sorted(files, key=lambda f: f.as_posix())


def _hash_inputs(stage: Stage, previous_key: str) -> str:
    """The stage's key: the previous stage's key, the command line, and each input file's path and
    contents (a missing file counts as such, so creating it changes the key too)."""
    h = hashlib.sha256(previous_key.encode())
    h.update(json.dumps(stage.cmd).encode())
    for p in _input_files(stage.inputs):
        content = p.read_bytes() if p.is_file() else b"<missing>"
        # Path and length first: a rename, or bytes moved from one file to the next, change the key.
        h.update(os.path.relpath(p, REPO).encode() + b"\0" + len(content).to_bytes(8, "little"))
        h.update(content)
    return h.hexdigest()


def _stamp_path(out: Path, name: str) -> Path:
    return out / "stamps" / f"{name}.json"


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2))


def run_stage(stage: Stage, out: Path, previous_key: str, timings: dict[str, float]) -> str:
    key = _hash_inputs(stage, previous_key)
    stamp = _stamp_path(out, stage.name)
    if stamp.is_file() and json.loads(stamp.read_text()).get("key") == key and all(p.exists() for p in stage.outputs):
        print(f"[demo] {stage.name}: up to date, reused", flush=True)
        timings[stage.name] = json.loads(stamp.read_text()).get("seconds", 0.0)
        return key
    stamp.unlink(missing_ok=True)
    if stage.clean is not None and stage.clean.exists():
        shutil.rmtree(stage.clean)  # e.g. last.ckpt of a run with another config
    print(f"[demo] {stage.name}: {' '.join(stage.cmd)}", flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(stage.cmd, cwd=REPO, env=env)
    if result.returncode != 0:
        raise SystemExit(f"[demo] stage {stage.name!r} failed (exit {result.returncode}): {' '.join(stage.cmd)}")
    missing = [str(p) for p in stage.outputs if not p.exists()]
    if missing:
        raise SystemExit(f"[demo] stage {stage.name!r} finished but did not write {missing}")
    seconds = time.perf_counter() - t0
    timings[stage.name] = seconds
    _write_json(stamp, {"key": key, "seconds": seconds, "cmd": stage.cmd})
    return key


def _vgg_available() -> bool:
    return find_vgg19_weights() is not None


def build_stages(args: argparse.Namespace) -> list[Stage]:
    out: Path = args.out.resolve()
    py = sys.executable
    data = out / "data"
    quick = CONFIGS / "quick.yaml"
    lens = CONFIGS / "lens.yaml"
    fit_common = [
        "--config",
        str(quick),
        "--config",
        str(lens),
        "--data.root",
        str(data),
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--trainer.enable_progress_bar",
        "true",
    ]
    steps_per_epoch = args.train // 4  # quick.yaml's batch size
    stage1_ckpt = out / "stage1" / "checkpoints" / "best.ckpt"
    stage2_ckpt = out / "stage2" / "checkpoints" / "last.ckpt"
    vgg = ["--model.vgg_weight", "0"] if not args.vgg else []
    tflite = out / "tflite"

    def code(stage: str) -> list[Path]:
        return [REPO / p for p in STAGE_CODE[stage]]

    def fit(stage: str, epochs: int, *extra: str) -> list[str]:
        """``python -m training fit`` with the stage's YAML, the demo's settings and ``extra``."""
        config = ["--config", str(CONFIGS / f"{stage}.yaml"), *fit_common]
        return [py, "-m", "training", "fit", *config, "--trainer.max_epochs", str(epochs), *extra]

    return [
        Stage(
            "data",
            [
                py,
                "-m",
                "training.synth",
                "--out",
                str(data),
                "--train",
                str(args.train),
                "--val",
                str(args.val),
                "--size",
                args.size,
                "--seed",
                str(args.seed),
                "--refocus-prob",
                "0.35",
                "--dof-max",
                "0.2",
            ],
            [data / "dataset.json"],
            code("data"),
        ),
        Stage(
            "stage1",
            fit("stage1", args.stage1_epochs, "--model.lr_decay_steps", str(args.stage1_epochs * steps_per_epoch)),
            [stage1_ckpt],
            [CONFIGS / "stage1.yaml", quick, lens, *code("stage1")],
            clean=out / "stage1",
        ),
        Stage(
            "stage2",
            fit(
                "stage2",
                args.stage2_epochs,
                *("--model.init_generator", str(stage1_ckpt)),
                # A tenth of the paper's 1e-4 for the generator: in 40 batches the critics
                # are still untrained, and at 1e-4 their gradient undid 1.1 dB of stage 1
                # (at quick.yaml's 1e-3, ~2 dB); measured on the demo data.
                *("--model.lr", "1e-5", "--model.disc_lr", "1e-4"),
                *vgg,
            ),
            [stage2_ckpt],
            [CONFIGS / "stage2.yaml", quick, lens, *code("stage2")],
            clean=out / "stage2",
        ),
        Stage(
            "export",
            export_command(
                stage2_ckpt,
                args.size,
                tflite,
                precisions=("fp32", "fp16", "int8"),
                calib_data=data / "train",
                parity_data=data / "val",
            ),
            [tflite / "manifest.json"],
            code("export"),
        ),
        Stage(
            "eval",
            [
                py,
                "-m",
                "eval",
                "--data",
                str(data),
                "--split",
                "val",
                "--checkpoint",
                f"pytorch={stage2_ckpt}",
                *[a for p in ("fp32", "fp16", "int8") for a in ("--tflite", str(tflite / f"bokeh_{p}.tflite"))],
                "--renderer",
                "scatter",
                "--renderer",
                "layered",
                "--renderer",
                "blend",
                "--identity",
                "--out",
                str(out / "eval"),
            ],
            [out / "eval" / "summary.json"],
            code("eval"),
            clean=out / "eval",
        ),
        Stage(
            "controls",
            [
                py,
                "-m",
                "eval.controls",
                "--model",
                str(tflite / "bokeh_fp16.tflite"),
                "--data",
                str(data / "val"),
                "--id",
                "0",
                "--out",
                str(out / "controls.png"),
            ],
            [out / "controls.png"],
            code("controls"),
        ),
    ]


def _read_curve(metrics_csv: Path, key: str) -> list[tuple[int, float]]:
    if not metrics_csv.is_file():
        return []
    with open(metrics_csv) as f:
        return [(int(r["step"]), float(r[key])) for r in csv.DictReader(f) if r.get(key)]


def write_report(args: argparse.Namespace, timings: dict[str, float]) -> str:
    out: Path = args.out.resolve()
    summary_md = (out / "eval" / "summary.md").read_text()
    manifest = json.loads((out / "tflite" / "manifest.json").read_text())
    lines = [
        "# Bokeh pipeline demo report",
        "",
        f"Synthetic data: {args.train} training / {args.val} validation pairs at {args.size} "
        f"(`python -m training.synth --seed {args.seed}`). Trained on the CPU for "
        f"{args.stage1_epochs} + {args.stage2_epochs} epochs with `training/configs/quick.yaml` "
        "(small crops), so the numbers show the pipeline working, not the paper's quality.",
        "",
    ]
    if not args.vgg:
        lines += [
            "**The VGG perceptual term of stage 2 was switched off** (`--model.vgg_weight 0`): "
            "`vgg19-dcbb9e9d.pth` is not available offline (see the README to add it).",
            "",
        ]
    lines += [
        "## Validation (synthetic val split, full resolution)",
        "",
        summary_md.strip(),
        "",
        "![evaluation grid](eval/grid.png)",
        "",
        "## Controls",
        "",
        "One validation scene from the fp16 TFLite model: focus near / middle / far (columns) at half "
        "and all of the scene's blur strength K (rows), each captioned with the detail it keeps where "
        "that setting's blur radius is under 1 px and where it is 3 px or more "
        "(`python -m eval.controls`).",
        "",
        "![controls](controls.png)",
        "",
        "## Export parity (TFLite vs PyTorch)",
        "",
        f"Converter: `{manifest.get('converter')}`; ONNX Runtime vs PyTorch max |Δ| = "
        f"{manifest.get('onnx', {}).get('max_abs_diff_vs_pytorch', float('nan')):.2e}",
        "",
        "| precision | PSNR vs PyTorch (dB) | gate | size (bytes) | GPU-compatible | Flex ops |",
        "|---|---:|---:|---:|---|---|",
    ]
    for prec, v in manifest.get("variants", {}).items():
        parity = v.get("parity", {})
        need = TFLITE_MIN_PSNR_DB.get(prec)
        lines.append(
            f"| {prec} | {parity.get('psnr_db_vs_pytorch', float('nan')):.2f} | ≥ {'?' if need is None else f'{need:g}'} | "
            f"{v.get('size_bytes')} | {v.get('gpu_compatible')} | {len(v.get('flex_ops', []))} |"
        )
    curve = _read_curve(out / "stage1" / "metrics.csv", "val/l1")
    if curve:
        lines += ["", "## Stage 1 validation L1", "", "| step | val L1 |", "|---:|---:|"]
        lines += [f"| {s} | {v:.4f} |" for s, v in curve]
    lines += ["", "## Stage times", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in timings.items()]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "report.md", text)
    return summary_md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--train", type=int, default=160, help="synthetic training pairs")
    p.add_argument("--val", type=int, default=8, help="synthetic validation pairs")
    p.add_argument("--size", default="256x384", help="HxW of the synthetic images (multiples of 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage1-epochs", type=int, default=60, help="40 batches each at the default sizes")
    p.add_argument("--stage2-epochs", type=int, default=1)
    p.add_argument("--force", action="store_true", help="re-run every stage")
    args = p.parse_args(argv)
    args.vgg = _vgg_available()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.force:
        for s in (args.out / "stamps").glob("*.json"):
            s.unlink()
    timings: dict[str, float] = {}
    key = ""
    t0 = time.perf_counter()
    for stage in build_stages(args):
        key = run_stage(stage, args.out.resolve(), key, timings)
    summary = write_report(args, timings)
    print(f"\n{summary}\n[demo] report: {args.out / 'report.md'} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
