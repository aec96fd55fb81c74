"""Inference form of the generator: the same function, rearranged for TFLite's NHWC kernels.

Applied to the trained NAFNet (Bokeh-Loss GAN §3.1) just before the ONNX export, like folding a
BatchNorm into its convolution; the parity gates compare the exported files with the *original*
PyTorch generator, so every rearrangement below is checked on every export. Each NAFBlock
(NAFNet Fig. 3c) is rewritten as:

* **SimpleGate without channel slices.** ``chunk(2, dim=1)`` is a slice along the innermost
  (channel) axis in NHWC, a strided copy that cost as much as the 1×1 conv and 3×3 depthwise conv
  before it on XNNPACK (level 0 of the width-8 net at 1024x1536: 44 ms with the slices, 31 ms
  without). The conv producing 2C channels is split in two convs of C channels, one per half,
  and the depthwise conv likewise (it is per-channel, so the split is exact); the gate multiplies
  the two results. Same FLOPs, no slices.
* **LayerNorm affine folded into the next 1×1 conv.** ``conv(w ⊙ x̂ + b) = (W·diag(w)) x̂ + (W b + b₀)``:
  two per-channel broadcasts fewer per norm (~15 ms per norm at level 0).
* **β and γ folded into conv3 and conv5**: ``conv(x)·β = (β W) x + β b₀``.

* **The blur prior's mixing conv split into one conv per blurred copy** (``training/blur_prior.py``),
  for the same reason as SimpleGate: its 3k output channels are not sliced at full resolution.

* **LayerNorm's two channel means as 1×1 convs** with constant kernels (the variance's with ε as
  its bias), so that the int8 file stays on XNNPACK (``NormalizeChannels`` says why).

Nothing else changes: layer norm variance, channel attention, up/down-sampling and the global
residual are the original modules.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from training.blur_prior import BlurPrior
from training.model import NAFBlock

__all__ = ["NormalizeChannels", "InferenceNAFBlock", "inference_form"]


class NormalizeChannels(nn.Module):
    """``LayerNorm2d`` without its affine part (folded into the following conv).

    Both channel means are written as 1×1 convs with constant kernels: the centring
    ``x − mean_c(x) = x + conv1x1(x)`` (kernel −1/C) and the variance plus ε
    ``mean_c(x̃²) + ε = conv1x1(x̃²)`` (kernel 1/C, bias ε). The same numbers, but in the int8 file
    the original SUB (broadcast over channels) and ``+ ε`` (a scalar ADD) are ops XNNPACK has no
    int8 kernel for: each of the 72 LayerNorms split the graph there, and the split-off ops ran on
    TFLite's reference kernels (``python -m export.int8_study``). CONV_2D and a same-rank ADD it runs.
    """

    def __init__(self, eps: float, channels: int) -> None:
        super().__init__()
        # constants, not weights: buffers, so the parameter count and the folding are unchanged
        self.register_buffer("neg_mean", torch.full((1, channels, 1, 1), -1.0 / channels))
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 1.0 / channels))
        self.register_buffer("eps", torch.full((1,), float(eps)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xc = x + F.conv2d(x, self.neg_mean)  # x − mean over channels
        var_eps = F.conv2d(xc * xc, self.mean, self.eps)  # centred first, as LayerNorm2d, for fp16 GPU kernels
        return xc * torch.rsqrt(var_eps)


def _conv(weight: torch.Tensor, bias: torch.Tensor, groups: int = 1, padding: int = 0) -> nn.Conv2d:
    out_ch, in_per_group, k, _ = weight.shape
    conv = nn.Conv2d(in_per_group * groups, out_ch, k, padding=padding, groups=groups)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


def _fold_norm(norm: nn.Module, conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of ``conv(norm_affine(x̂))`` as one conv of x̂."""
    w, b = norm.weight.reshape(-1), norm.bias.reshape(-1)
    kernel = conv.weight[:, :, 0, 0]  # (out, in): a 1×1 conv
    return conv.weight * w.view(1, -1, 1, 1), conv.bias + kernel @ b


class InferenceNAFBlock(nn.Module):
    """A ``NAFBlock`` computing the same function with the rewrites of this module's docstring."""

    def __init__(self, block: NAFBlock) -> None:
        super().__init__()
        with torch.no_grad():
            c2 = block.conv1.out_channels // 2  # SimpleGate halves
            self.norm1 = NormalizeChannels(block.norm1.eps, block.norm1.weight.numel())
            w1, b1 = _fold_norm(block.norm1, block.conv1)
            self.conv1a, self.conv1b = _conv(w1[:c2], b1[:c2]), _conv(w1[c2:], b1[c2:])
            w2, b2 = block.conv2.weight, block.conv2.bias  # depthwise: channel i uses w2[i]
            self.conv2a = _conv(w2[:c2], b2[:c2], groups=c2, padding=1)
            self.conv2b = _conv(w2[c2:], b2[c2:], groups=c2, padding=1)
            self.sca = copy.deepcopy(block.sca)
            beta = block.beta.reshape(-1)
            self.conv3 = _conv(block.conv3.weight * beta.view(-1, 1, 1, 1), block.conv3.bias * beta)

            f2 = block.conv4.out_channels // 2
            self.norm2 = NormalizeChannels(block.norm2.eps, block.norm2.weight.numel())
            w4, b4 = _fold_norm(block.norm2, block.conv4)
            self.conv4a, self.conv4b = _conv(w4[:f2], b4[:f2]), _conv(w4[f2:], b4[f2:])
            gamma = block.gamma.reshape(-1)
            self.conv5 = _conv(block.conv5.weight * gamma.view(-1, 1, 1, 1), block.conv5.bias * gamma)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.norm1(inp)
        x = self.conv2a(self.conv1a(x)) * self.conv2b(self.conv1b(x))  # SimpleGate, (B, C, H, W)
        x = x * self.sca(x.mean((2, 3), keepdim=True))  # channel attention
        y = inp + self.conv3(x)  # β folded in

        x = self.norm2(y)
        return y + self.conv5(self.conv4a(x) * self.conv4b(x))  # γ folded in


def _replace_blocks(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, NAFBlock):
            module._modules[name] = InferenceNAFBlock(child)
        else:
            _replace_blocks(child)


def inference_form(generator: nn.Module) -> nn.Module:
    """A copy of ``generator`` with every ``NAFBlock`` in inference form; other modules unchanged."""
    out = copy.deepcopy(generator).eval()
    _replace_blocks(out)
    if isinstance(getattr(out, "mix", None), nn.Conv2d):
        out.mix = _split_conv(out.mix, BlurPrior.count)
    return out


def _split_conv(conv: nn.Conv2d, parts: int) -> nn.ModuleList:
    """``conv`` as ``parts`` convs, each computing one consecutive group of its output channels."""
    n = conv.out_channels // parts
    w, b = conv.weight.detach(), conv.bias.detach()
    pad = int(conv.padding[0])
    return nn.ModuleList(_conv(w[i * n : (i + 1) * n], b[i * n : (i + 1) * n], padding=pad) for i in range(parts))
