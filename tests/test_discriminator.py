"""Dual-scale PatchGAN critic (paper §3.3): shapes, receptive fields, per-sample independence,
gradients reaching every parameter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.discriminator import MultiScaleDiscriminator, PatchDiscriminator, patch_receptive_field


@pytest.mark.parametrize(
    ("size", "base", "expected"),
    # Output side = size / 2^depth: depth 3 → /8, depth 5 → /32.
    [(64, 64, (8, 2)), (256, 8, (32, 8))],
)
def test_multiscale_output_shapes(size: int, base: int, expected: tuple[int, int]) -> None:
    d = MultiScaleDiscriminator(depths=(3, 5), base_channels=base)
    photo, bokeh = torch.rand(2, 3, size, size), torch.rand(2, 3, size, size)
    scores = d(bokeh, photo)
    assert isinstance(scores, list) and len(scores) == 2
    assert [tuple(s.shape) for s in scores] == [(2, 1, e, e) for e in expected]


def test_non_square_input() -> None:
    s = PatchDiscriminator(base_channels=4, n_layers=5)(torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128))
    assert tuple(s.shape) == (1, 1, 2, 4)


def test_receptive_field_published_numbers() -> None:
    # pix2pix (Isola et al. 2017, §3.2.2 / Fig. 6) names its n_layers=3 critic the "70×70
    # PatchGAN" and the n_layers=5 one the "286×286" discriminator.
    assert patch_receptive_field(3) == 70
    assert patch_receptive_field(5) == 286
    assert PatchDiscriminator(n_layers=3).receptive_field == 70


def _norm_free(d: PatchDiscriminator) -> PatchDiscriminator:
    # InstanceNorm couples all pixels (its mean), so measure the conv receptive field without it.
    for i, m in enumerate(d.model):
        if isinstance(m, nn.InstanceNorm2d):
            d.model[i] = nn.Identity()
    return d


@pytest.mark.parametrize(("depth", "size"), [(3, 256), (5, 512)])
def test_receptive_field_measured(depth: int, size: int) -> None:
    # The changed padding of the stride-1 convs must not change the receptive field: the input
    # pixels that influence one central score span exactly patch_receptive_field(depth) pixels.
    d = _norm_free(PatchDiscriminator(in_channels=3, base_channels=4, n_layers=depth))
    x = torch.rand(1, 3, size, size, requires_grad=True)
    s = d(x)
    c = s.shape[-1] // 2
    s[0, 0, c, c].backward()
    support = x.grad[0].abs().sum(0) > 0  # (H, W)
    rows = support.any(1).nonzero().flatten()
    cols = support.any(0).nonzero().flatten()
    assert rows.min() > 0 and rows.max() < size - 1  # not clipped by the border
    assert rows.max() - rows.min() + 1 == patch_receptive_field(depth)
    assert cols.max() - cols.min() + 1 == patch_receptive_field(depth)


def test_no_batchnorm_and_samples_are_independent() -> None:
    # WGAN-GP needs per-sample critic values: sample 0's score must not depend on sample 1.
    d = MultiScaleDiscriminator(base_channels=8)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    photo, bokeh = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    a = d(bokeh, photo)
    bokeh2 = bokeh.clone()
    bokeh2[1] = torch.rand(3, 64, 64)
    b = d(bokeh2, photo)
    for sa, sb in zip(a, b):
        torch.testing.assert_close(sa[0], sb[0])
        assert not torch.allclose(sa[1], sb[1])


def test_every_parameter_gets_a_gradient() -> None:
    d = MultiScaleDiscriminator(base_channels=8)
    scores = d(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    sum((s * torch.randn_like(s)).mean() for s in scores).backward()
    for name, p in d.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_conditioning_changes_scores() -> None:
    d = PatchDiscriminator(base_channels=8, n_layers=3)
    bokeh = torch.rand(1, 3, 64, 64)
    assert not torch.allclose(d(bokeh, torch.rand(1, 3, 64, 64)), d(bokeh, torch.rand(1, 3, 64, 64)))


def test_bad_inputs_raise_clear_errors() -> None:
    d = PatchDiscriminator(n_layers=5, base_channels=4)
    with pytest.raises(ValueError, match=">= 64"):
        d(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="6 input channels"):
        d(torch.rand(1, 3, 64, 64))
