"""fp16 safety: the generator with half-precision activations, as a phone GPU runs it.

    python -m eval.fp16 --checkpoint tflite_models/nafnet_w8_lens_cpu/model.safetensors \
        --size 1024x1536 [--photos PHOTOS_DIR] [--out runs/fp16.md]

Phone GPUs store activations and do most arithmetic in fp16 (largest finite value 65504, 11-bit
mantissa). LiteRT's GPU accelerator on the build machines' software device (SwiftShader) has no
``shader-f16`` and computes in fp32, so it cannot show an fp16 failure; this check runs the PyTorch
generator in ``torch.float16`` instead, on

* real photos (``--photos``, each with its depth map, lens from ``auto_focus``);
* an unseen synthetic scene at the phone's size;
* worst cases: a saturated (all-white) photo, a flat grey one, depth that is all near, all far or a
  hard 0/1 step, and the strongest lens the model was trained for;

and reports, per input, the PSNR of the fp16 output against fp32 and the largest magnitudes the fp32
run reaches, where fp16 could overflow:

* ``max |act|``: any module's output (an fp16 tensor holds up to 65504);
* ``max LN x²``: the squared centred values inside each LayerNorm (summed over channels in fp16 by
  some GPU kernels: the NAFNet-on-Mali overflow others hit);
* ``max pool Σ``: the channel attention's global sum over the H×W map before it is divided: what a
  kernel that accumulates a mean in fp16 would have to hold. LiteRT's reduction kernels accumulate
  in fp32 on GPUs that have it, so this column says how much headroom a naive kernel would lack,
  and the verdict does not rest on it.

Verdict per input: PSNR ≥ 40 dB and no activation or LayerNorm square beyond fp16's range.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.io import atomic_write_bytes
from common.metrics import psnr_array as psnr
from common.sizes import parse_size
from eval.photos import find_photos, load_photo
from training import synth
from training.checkpoint import load_generator
from training.model import LayerNorm2d
from training.renderers.lens import auto_focus, default_lens

__all__ = ["FP16_MAX", "MIN_PSNR_DB", "Fp16Report", "fp16_report", "worst_case_inputs", "main"]

FP16_MAX = 65504.0
MIN_PSNR_DB = 40.0  # the bar; the fp16 TFLite file itself must reach 45 dB against PyTorch


@dataclass
class Fp16Report:
    name: str
    psnr_db: float  # fp16 output vs fp32 output
    max_act: float
    max_ln_square: float
    max_pool_sum: float
    nonfinite: bool  # the fp16 output holds inf or NaN

    @property
    def safe(self) -> bool:
        return (
            not self.nonfinite
            and self.psnr_db >= MIN_PSNR_DB
            and self.max_act < FP16_MAX
            and self.max_ln_square < FP16_MAX
        )


def _magnitudes(generator: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, float]]:
    """The fp32 output and the largest magnitudes reached inside (see the module docstring)."""
    peak = {"act": 0.0, "ln": 0.0, "pool": 0.0}
    pool_hw: dict[int, int] = {}  # id(sca conv) -> H*W of the map its block pools

    def on_output(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            peak["act"] = max(peak["act"], float(output.abs().max()))
        if isinstance(module, LayerNorm2d):
            x = inputs[0]
            peak["ln"] = max(peak["ln"], float((x - x.mean(1, keepdim=True)).square().max()))
        if id(module) in pool_hw:  # the SCA conv reads mean((2, 3)): the sum is that times H*W
            peak["pool"] = max(peak["pool"], float(inputs[0].abs().max()) * pool_hw[id(module)])

    handles = [m.register_forward_hook(on_output) for m in generator.modules()]
    for block in generator.modules():
        if isinstance(getattr(block, "sca", None), torch.nn.Module):  # a NAFBlock: its map size is its input's
            handles.append(
                block.register_forward_pre_hook(
                    lambda mod, inp: pool_hw.__setitem__(id(mod.sca), inp[0].shape[-2] * inp[0].shape[-1])
                )
            )
    try:
        with torch.inference_mode():
            out = generator(*args)
    finally:
        for hd in handles:
            hd.remove()
    return out, peak


def fp16_report(
    generator: torch.nn.Module, name: str, image: np.ndarray, depth: np.ndarray, lens: np.ndarray | None
) -> Fp16Report:
    """One input: NCHW float32 ``image`` (1, 3, H, W), ``depth`` (1, 1, H, W), ``lens`` (1, 3, 1, 1)."""
    args = [torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(depth))]
    if getattr(generator, "lens_input", False):
        args.append(torch.from_numpy(np.asarray(lens, np.float32).reshape(1, 3, 1, 1)))
    generator = generator.float().eval()
    ref, peak = _magnitudes(generator, tuple(args))
    half = generator.half()
    try:
        with torch.inference_mode():
            out = half(*(a.half() for a in args)).float()
    finally:
        generator.float()
    nonfinite = not bool(torch.isfinite(out).all())
    db = psnr(out.numpy(), ref.numpy()) if not nonfinite else float("nan")
    return Fp16Report(name, db, peak["act"], peak["ln"], peak["pool"], nonfinite)


def worst_case_inputs(size: tuple[int, int], k_max: float) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, image, depth, lens) for the inputs most likely to push fp16 out of range."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (1.0 - yy / (h - 1))[None, None]
    step = (xx >= w // 2).astype(np.float32)[None, None]
    texture = (0.5 + 0.45 * np.sin(xx / 3.0) * np.cos(yy / 5.0))[None, None].repeat(3, 1)
    lens = lambda d_f, k, dof=0.0: np.array([d_f, k, dof], np.float32).reshape(1, 3, 1, 1)
    return [
        ("saturated white, depth ramp, strongest lens", np.ones((1, 3, h, w), np.float32), ramp, lens(1.0, k_max)),
        ("flat grey, flat depth", np.full((1, 3, h, w), 0.5, np.float32), np.full_like(ramp, 0.5), lens(0.5, k_max)),
        ("texture, all near, focus far", texture, np.ones_like(ramp), lens(0.0, k_max)),
        ("texture, all far, focus near", texture, np.zeros_like(ramp), lens(1.0, k_max)),
        ("texture, hard 0/1 depth step", texture, step, lens(1.0, k_max)),
        ("black, depth step", np.zeros((1, 3, h, w), np.float32), step, lens(0.0, k_max)),
    ]


def _photo_inputs(folder: Path, size: tuple[int, int]) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for pid, photo, depth in find_photos(folder):
        rgb, d = load_photo(photo, depth, size)
        out.append(
            (f"photo {pid}", rgb.transpose(2, 0, 1)[None].copy(), d[None, None].copy(), auto_focus(d).network_input())
        )
    return out


def _synthetic_input(size: tuple[int, int]) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    pair = synth.make_pair(12345, "val", 0, *size)  # seed 12345: not the training data's
    image = (pair.original.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()
    depth = (pair.depth.astype(np.float32) / 65535.0)[None, None].copy()
    return "synthetic scene (unseen seed)", image, depth, pair.lens.network_input()


def table(reports: list[Fp16Report]) -> str:
    rows = [
        "| input | PSNR fp16 vs fp32 | max abs activation | max LN x² | max pool Σ (naive fp16 sum) | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in reports:
        rows.append(
            f"| {r.name} | {r.psnr_db:.2f} dB | {r.max_act:.1f} | {r.max_ln_square:.1f} | "
            f"{r.max_pool_sum:.3g}{' (> 65504)' if r.max_pool_sum >= FP16_MAX else ''} | "
            f"{'safe' if r.safe else 'UNSAFE'} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.fp16", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, type=Path, help="generator: .safetensors, .ckpt or .pt")
    p.add_argument("--size", default="1024x1536", help="HEIGHTxWIDTH (default 1024x1536, the phone's)")
    p.add_argument("--photos", type=Path, help="real photos with depth maps (see eval.photos), optional")
    p.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    try:
        size = parse_size(args.size)
        generator = load_generator(args.checkpoint).generator
        inputs = _photo_inputs(args.photos, size) if args.photos else []
    except (FileNotFoundError, ValueError) as e:
        print(f"eval.fp16: error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    # The strongest lens of the training data: radius 50 px at infinity at 1536 wide,
    # scaled to this width; default_lens gives the typical one.
    k_max = max(50.0 * size[1] / 1536, float(default_lens(size)[1]))
    inputs += [_synthetic_input(size), *worst_case_inputs(size, k_max)]
    reports = []
    for name, image, depth, lens in inputs:
        reports.append(fp16_report(generator, name, image, depth, lens))
        print(f"{name}: {reports[-1].psnr_db:.2f} dB", file=sys.stderr, flush=True)
    text = table(reports)
    print(text)
    if args.out:
        atomic_write_bytes(
            args.out, f"`python -m eval.fp16 --checkpoint {args.checkpoint} --size {args.size}`\n\n{text}\n".encode()
        )
    return 0 if all(r.safe for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
