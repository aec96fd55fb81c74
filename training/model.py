"""Bokeh generator: NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022)
conditioned on a monocular depth map, as in Bokeh-Loss GAN (Lee et al., AIM 2022, §3.1).

Paper configuration: width 8, encoder blocks (2, 2, 2, 20), 2 middle blocks, decoder blocks
(2, 2, 2, 2) = 36 NAFBlocks, ~1.047M parameters. The input is the RGB photo concatenated with the
DPT depth map (§3, "G(I ⊙ D)"); the output is RGB with NAFNet's global residual on the photo.

Three deliberate departures from the reference NAFNet code, all so that the network converts
PyTorch → ONNX → TensorFlow → TFLite with builtin ops only and runs on the TFLite GPU delegate
(the paper's own conversion needed Flex ops, appendix A). Each one computes the same function as
the reference formulation; tests/test_model.py proves it on random weights:

* ``LayerNorm2d`` is written with plain tensor ops (mean/sub/mul/rsqrt) instead of NAFNet's custom
  ``autograd.Function``, which ONNX cannot trace into portable ops.
* Simplified Channel Attention pools with ``mean((2, 3))`` instead of ``AdaptiveAvgPool2d(1)``,
  which lowers to a plain MEAN op in TFLite.
* ``Conv1x1(C → 2C, no bias) + PixelShuffle(2)`` is replaced by the equivalent
  ``ConvTranspose2d(C → C/2, kernel 2, stride 2, no bias)``: PixelShuffle exports as ONNX
  DepthToSpace, which converters lower to rank-6 reshapes that the GPU delegate rejects.
  ``pixelshuffle_to_transpose_weight`` converts reference NAFNet weights to this form.

The image and the depth map are two separate inputs (not one 4-channel tensor): with a single
input whose residual adds ``inp[:, :3]``, onnx2tf's layout inference broke at the final add.

Lens conditioning (``lens_input=True``, our addition; the paper's depth-only generator is the
default). A third input ``lens`` (B, 3, 1, 1) holds the focal disparity d_f, the blur strength K
of BokehMe (Peng et al., CVPR 2022, eq. 1: blur radius r = K·|d − d_f| pixels at the input's
resolution) and ``dof``, the half-width of a sharp band around d_f (0 = eq. 1 exactly; why it
exists: ``training/renderers/lens.py``). The network computes the signed defocus map
S = K·(d − d_f) (BokehMe eq. 6, less the band) and |S| itself and reads them beside the photo and
the depth, so one exported model serves every focus and aperture: an app changes three numbers,
not the model. Without the lens the task is ill-posed: the same photo and depth map admit any
blur strength.

Blur prior (``blur_prior=True``, our addition, off by default): the network also mixes fixed
blurred copies of the photo into its output with per-pixel weights of its own (a 3×3 conv on the
last decoder features), ``out = ending(x) + photo + Σ_k w_k ⊙ (copy_k − photo)``. Why and which
copies: ``training/blur_prior.py``.

Input height and width must be multiples of 16 (four 2× down-samplings). The network does not pad:
padding that depends on the input shape would make the exported graph shape-dependent. The data
loaders crop to multiples of 16 instead.
"""

from __future__ import annotations

import torch
from torch import nn

from training.blur_prior import BlurPrior

__all__ = [
    "DEFOCUS_SCALE",
    "LayerNorm2d",
    "SimpleGate",
    "NAFBlock",
    "UpSample",
    "NAFNet",
    "pixelshuffle_to_transpose_weight",
    "count_parameters",
]


# Pixels of blur radius that map to a defocus input of 1 (lens mode). A constant, not learned, so
# that exported models agree on what the lens input means.
DEFOCUS_SCALE = 32.0


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor (NAFNet's ``LayerNorm2d``)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        xc = x - mu
        # Biased variance, as nn.LayerNorm. Centred before squaring so that fp16 GPU kernels see
        # small values (E[x²] - E[x]² cancels catastrophically in half precision).
        var = (xc * xc).mean(1, keepdim=True)
        return self.weight * (xc * torch.rsqrt(var + self.eps)) + self.bias


class SimpleGate(nn.Module):
    """NAFNet's activation: split the channels in two halves and multiply them (NAFNet §3.3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return x1 * x2


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block (NAFNet Fig. 3c): LN → 1×1 → 3×3 depthwise → SimpleGate →
    simplified channel attention → 1×1, then a SimpleGate feed-forward, both as scaled residuals."""

    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2) -> None:
        super().__init__()
        dw_channels = channels * dw_expand
        ffn_channels = channels * ffn_expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, dw_channels, 1)
        self.conv2 = nn.Conv2d(dw_channels, dw_channels, 3, padding=1, groups=dw_channels)
        self.sg = SimpleGate()
        # Simplified Channel Attention (NAFNet eq. 4): global average pool + 1×1 conv, no sigmoid.
        self.sca = nn.Conv2d(dw_channels // 2, dw_channels // 2, 1)
        self.conv3 = nn.Conv2d(dw_channels // 2, channels, 1)

        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, ffn_channels, 1)
        self.conv5 = nn.Conv2d(ffn_channels // 2, channels, 1)

        # beta/gamma start at zero so that every block starts as the identity (NAFNet code).
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(self.norm1(inp)))  # (B, 2C, H, W)
        x = self.sg(x)  # (B, C, H, W)
        x = x * self.sca(x.mean((2, 3), keepdim=True))  # channel attention, (B, C, 1, 1) weights
        y = inp + self.conv3(x) * self.beta

        x = self.sg(self.conv4(self.norm2(y)))  # (B, C, H, W)
        return y + self.conv5(x) * self.gamma


class UpSample(nn.Module):
    """2× up-sampling that halves the channels: the reference ``Conv1x1(C → 2C) + PixelShuffle(2)``
    written as one ``ConvTranspose2d(C → C/2, 2, stride 2)`` (same function, rank-4 tensors only)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)  # (B, C, H, W) -> (B, C/2, 2H, 2W)


def pixelshuffle_to_transpose_weight(conv1x1_weight: torch.Tensor) -> torch.Tensor:
    """Rearrange a reference NAFNet up-sampler's 1×1 conv weight (2C, C, 1, 1), which feeds
    ``PixelShuffle(2)``, into the equivalent ``ConvTranspose2d`` weight (C, C/2, 2, 2).

    PixelShuffle sends conv output channel ``c' * 4 + 2 * i + j`` to output channel ``c'`` at
    offset (i, j) of each 2×2 cell; a stride-2, kernel-2 transposed conv writes input channel ``c``
    times ``W[c, c', i, j]`` to the same place. Hence ``W[c, c', i, j] = w[4c' + 2i + j, c]``.
    """
    out2c, c = conv1x1_weight.shape[:2]
    w = conv1x1_weight.reshape(out2c // 4, 2, 2, c)  # (c', i, j, c)
    return w.permute(3, 0, 1, 2).contiguous()  # (c, c', i, j)


class NAFNet(nn.Module):
    """Depth-conditioned NAFNet bokeh generator (Bokeh-Loss GAN §3.1).

    ``forward(image, depth)`` takes ``image`` (B, 3, H, W) in [0, 1] and ``depth`` (B, 1, H, W), a
    normalised disparity in [0, 1] with 1 = near, and returns the bokeh image (B, 3, H, W), not
    clamped. H and W must be multiples of 16.
    """

    def __init__(
        self,
        width: int = 8,
        enc_blocks: tuple[int, ...] = (2, 2, 2, 20),
        middle_blocks: int = 2,
        dec_blocks: tuple[int, ...] = (2, 2, 2, 2),
        img_channels: int = 3,
        depth_channels: int = 1,
        lens_input: bool = False,
        defocus_scale: float = DEFOCUS_SCALE,
        blur_prior: bool = False,
    ) -> None:
        super().__init__()
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(f"enc_blocks {enc_blocks} and dec_blocks {dec_blocks} need the same length")
        self.multiple = 2 ** len(enc_blocks)
        self.lens_input = lens_input
        self.defocus_scale = float(defocus_scale)
        # Lens mode reads two more planes: the signed defocus S and its magnitude |S| (the radius).
        self.intro = nn.Conv2d(img_channels + depth_channels + (2 if lens_input else 0), width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channels, 3, padding=1)
        # Zero-initialised so that an untrained generator returns the photo itself (the identity
        # baseline, ~28 dB on our synthetic validation set) rather than photo + random-conv noise
        # (~13 dB): training then only has to learn the blur. Same idea as beta/gamma = 0 below.
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)
        # Blur prior (our addition, training/blur_prior.py): per-pixel, per-colour weights of the
        # blurred copies, zero-initialised like ``ending`` so that adding the prior to a trained
        # generator starts from that generator's output.
        self.blur_prior = BlurPrior() if blur_prior else None
        self.mix = nn.Conv2d(width, img_channels * BlurPrior.count, 3, padding=1) if blur_prior else None
        if self.mix is not None:
            nn.init.zeros_(self.mix.weight)
            nn.init.zeros_(self.mix.bias)

        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        ch = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(ch) for _ in range(n)]))
            self.downs.append(nn.Conv2d(ch, 2 * ch, 2, stride=2))
            ch *= 2
        self.middle = nn.Sequential(*[NAFBlock(ch) for _ in range(middle_blocks)])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for n in dec_blocks:
            self.ups.append(UpSample(ch))
            ch //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(ch) for _ in range(n)]))

    def defocus(self, depth: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, |S|): the signed defocus K·(d − d_f) less the sharp band (``lens.defocus_distance``
        written with ReLUs, as phone GPUs have no SIGN op), divided by ``defocus_scale`` so that
        the radii of a phone-size photo (up to ~60 px) reach the first conv as values of order 1."""
        d_f, strength, dof = lens[:, 0:1], lens[:, 1:2], lens[:, 2:3]  # (B, 1, 1, 1) each
        x = depth - d_f  # (B, 1, H, W)
        front, behind = torch.relu(x - dof), torch.relu(-x - dof)
        k = strength * (1.0 / self.defocus_scale)
        return k * (front - behind), k * (front + behind)

    def forward(self, image: torch.Tensor, depth: torch.Tensor, lens: torch.Tensor | None = None) -> torch.Tensor:
        if self.lens_input:
            if lens is None:
                raise ValueError(
                    "this generator was built with lens_input=True: pass lens (B, 3, 1, 1) = (d_f, K, dof)"
                )
            s, r = self.defocus(depth, lens)
            x = torch.cat([image, depth, s, r], dim=1)  # (B, 6, H, W): RGB + depth + S + |S|
        else:
            x = torch.cat([image, depth], dim=1)  # (B, 4, H, W): RGB + depth
        x = self.intro(x)  # -> (B, w, H, W)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)  # (B, C, H, W) -> (B, 2C, H/2, W/2)
        x = self.middle(x)  # (B, 16w, H/16, W/16)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        out = self.ending(x) + image  # global residual on the photo (NAFNet)
        if self.blur_prior is not None:
            for w, copy in zip(self.mix_weights(x), self.blur_prior(image), strict=True):
                out = out + w * (copy - image)
        return out

    def mix_weights(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The blur prior's weights, (B, 3, H, W) per copy: one per colour, so that no product
        broadcasts (the GPU delegate's MUL wants equal shapes)."""
        if isinstance(self.mix, nn.ModuleList):  # export/reparam.py's form: one conv per copy, no slices
            return [conv(x) for conv in self.mix]
        assert self.mix is not None
        w = self.mix(x)  # (B, 3k, H, W)
        c = w.shape[1] // BlurPrior.count
        return [w[:, c * i : c * (i + 1)] for i in range(BlurPrior.count)]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
