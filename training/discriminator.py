"""Dual-scale PatchGAN critic of Bokeh-Loss GAN (Lee et al., AIM 2022, §3.3, Fig. 4).

"Similar to [28], we use a multi-receptive-field Patch-GAN discriminator [16] ... two patch-GAN
discriminators, one of depth 3 and one of depth 5 and averages the adversarial losses from both
discriminators into one loss", trained with WGAN-GP, λ = 1 (§3.3, §3.5). The losses live in
``training/losses/adversarial.py``; this file only holds the networks.

``PatchDiscriminator`` follows pix2pix's ``NLayerDiscriminator`` (Isola et al., "Image-to-Image
Translation with Conditional Adversarial Networks", CVPR 2017 = the paper's [16]): 4×4 convs,
``n_layers`` stride-2 convs (channels 64·2^k, capped at 8×), one stride-1 conv, a 1-channel
stride-1 conv, LeakyReLU 0.2. Two deliberate departures, both because it is a WGAN *critic*:

* **No BatchNorm.** The WGAN-GP penalty constrains the gradient of the critic with respect to
  *each sample* on its own; BatchNorm couples the samples of a batch, so that gradient is not the
  per-sample gradient the penalty assumes (Gulrajani et al. §4 make the same point). We use
  ``InstanceNorm2d(affine=True)``, which normalises each sample on its own (pix2pix's
  ``norm='instance'`` option). The convolutions in front of a norm have no bias: the norm removes
  any per-channel constant, so such a bias would get a zero gradient and never train (the affine
  shift of the norm plays its role).
* **Padding of the two stride-1 convs.** pix2pix pads them by 1, so each shrinks the map by one
  pixel and a depth-5 critic on a 64×64 crop ends at 0×0. We pad the first by 2 (+1 pixel) and the
  last by 1 (−1 pixel): the output is exactly ``floor(H / 2^n_layers)`` (per side), so the depth-5
  critic gives 2×2 scores on a 64×64 crop and the normalised stride-1 layer never sees a 1×1
  map. InstanceNorm is undefined on one pixel, and the last normalised stride-2 conv outputs
  H / 2^n_layers, so a critic needs H, W ≥ 2^(n_layers + 1): 16 for depth 3, **64 for depth 5**.
  Padding does not change the receptive field, which stays pix2pix's: **70×70 for depth 3, 286×286 for depth 5**
  (r = 7 after the two stride-1 convs, then r ← 2(r − 1) + 4 per stride-2 conv: 7, 16, 34, 70,
  142, 286).

The critic is conditional on the photo: it scores ``cat(photo, candidate bokeh)`` (6 channels).
The paper cites the *conditional* adversarial network of pix2pix [16]; an unconditional critic
could only judge whether an image looks like *some* bokeh photo, not whether it is the right
rendering *of this photo* (which regions should stay sharp is only visible from the photo).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchDiscriminator", "MultiScaleDiscriminator", "patch_receptive_field"]


def patch_receptive_field(n_layers: int) -> int:
    """Receptive field (pixels per side) of one score of a ``PatchDiscriminator(n_layers=...)``."""
    r = 1 + 3 + 3  # final 4×4 conv, then the 4×4 stride-1 conv
    for _ in range(n_layers):
        r = 2 * (r - 1) + 4  # a 4×4 stride-2 conv
    return r


class PatchDiscriminator(nn.Module):
    """pix2pix PatchGAN critic of depth ``n_layers`` (§3.3, [16]); returns a (B, 1, h, w) score map.

    Args:
        in_channels: channels of the scored tensor: 6 = photo (3) + candidate bokeh (3).
        base_channels: channels of the first conv (pix2pix ``ndf``).
        n_layers: number of stride-2 convs ("depth"; the paper uses 3 and 5).
    """

    def __init__(self, in_channels: int = 6, base_channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.in_channels = in_channels
        self.n_layers = n_layers
        # First layer has no norm (pix2pix): normalising raw pixels would discard their contrast.
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        ch = base_channels
        for k in range(1, n_layers):
            out = base_channels * min(2**k, 8)
            layers += [
                nn.Conv2d(ch, out, 4, stride=2, padding=1, bias=False),  # (B, out, H/2^(k+1), ...)
                nn.InstanceNorm2d(out, affine=True),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch = out
        out = base_channels * min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ch, out, 4, stride=1, padding=2, bias=False),  # +1 pixel per side
            nn.InstanceNorm2d(out, affine=True),
            nn.LeakyReLU(0.2, inplace=True),
            # No bias on the score layer: a constant added to every score cancels in the Wasserstein
            # loss mean(D(fake)) − mean(D(real)) and in the gradient penalty, so it could never train.
            nn.Conv2d(out, 1, 4, stride=1, padding=1, bias=False),  # −1 pixel: (B, 1, H/2^n, W/2^n)
        ]
        self.model = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        return patch_receptive_field(self.n_layers)

    def forward(self, candidate: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Score ``candidate`` (B, 3, H, W) given the photo ``condition`` (B, 3, H, W).

        Unbounded WGAN scores (no sigmoid): higher = more like a real bokeh image of this photo.
        """
        x = candidate if condition is None else torch.cat((condition, candidate), dim=1)  # (B, 6, H, W)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchDiscriminator expects {self.in_channels} input channels (photo + candidate), got {x.shape[1]}"
            )
        # The last normalised stride-2 conv outputs H / 2^n; InstanceNorm needs > 1 pixel there.
        min_side = 2 ** (self.n_layers + 1)
        if x.shape[-2] < min_side or x.shape[-1] < min_side:
            raise ValueError(
                f"PatchDiscriminator of depth {self.n_layers} needs H, W >= {min_side}, got {tuple(x.shape[-2:])}"
            )
        return self.model(x)


class MultiScaleDiscriminator(nn.Module):
    """The paper's dual receptive-field critic (§3.3, Fig. 4): one PatchGAN per depth.

    ``forward`` returns a list of score maps, one per critic, in the order of ``depths``; the
    adversarial losses of ``training.losses.adversarial`` average over that list, as the paper
    averages the two discriminators' losses. Both critics see the same full-resolution input:
    the paper varies the depth (receptive field 70 vs 286 pixels), not the input scale.
    """

    def __init__(
        self,
        depths: tuple[int, ...] = (3, 5),
        in_channels: int = 6,
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        if len(depths) == 0:
            raise ValueError("MultiScaleDiscriminator needs at least one depth")
        self.depths = tuple(depths)
        self.critics = nn.ModuleList(PatchDiscriminator(in_channels, base_channels, n_layers=d) for d in self.depths)

    def forward(self, candidate: torch.Tensor, condition: torch.Tensor | None = None) -> list[torch.Tensor]:
        return [critic(candidate, condition) for critic in self.critics]
