"""The blur prior (training/blur_prior.py): its copies are the blurs its docstring says, and adding it
to a trained generator starts from that generator's output."""

import numpy as np
import pytest
import torch

from training.blur_prior import LEVELS, BlurPrior
from training.checkpoint import load_generator, save_generator_safetensors
from training.model import NAFNet
from training.module import BokehGAN

TINY = {"width": 4, "enc_blocks": (1, 1, 1, 1), "middle_blocks": 1, "dec_blocks": (1, 1, 1, 1), "lens_input": True}


def test_a_flat_image_is_its_own_blur():
    flat = torch.full((1, 3, 64, 96), 0.3)
    for copy in BlurPrior()(flat):
        torch.testing.assert_close(copy, flat, atol=1e-6, rtol=0)


def test_copies_blur_in_squared_light():
    """A 1-px black/white checkerboard averages to 1/2 in light (gamma 2), which is √½ ≈ 0.707 on
    screen, not the 0.5 of averaging the encoded values (hand-computed)."""
    yy, xx = np.mgrid[0:128, 0:192]
    board = torch.from_numpy(((yy + xx) % 2).astype(np.float32)).expand(1, 3, 128, 192)
    for copy in BlurPrior()(board):
        inner = copy[..., 32:-32, 32:-32]
        assert float((inner - 0.5**0.5).abs().max()) < 1e-3


@pytest.mark.parametrize("level", range(len(LEVELS)))
def test_each_copy_spreads_light_like_the_disc_it_stands_for(level):
    """A point of light spreads with standard deviation r/2 under a disc of radius r (E[x²] = r²/4
    over a uniform disc). The copies stand for radii 4, 8, 16, 32, 48 px (the module docstring):
    the spread of each copy's point response, averaged over the point's 16 positions in a pooling
    cell (a pyramid is not shift-invariant), must be within 10 % of that disc's."""
    radius = (4, 8, 16, 32, 48)[level]
    h, w = 256, 384
    xs = torch.arange(w, dtype=torch.float64)
    variances = []
    for x in range(192, 208):
        point = torch.zeros(1, 3, h, w)
        point[..., 130, x] = 1.0
        response = (BlurPrior()(point)[level][0, 0].double() ** 2 - 1e-8).clamp(min=0).sum(0)  # back to light
        response = response / response.sum()
        variances.append(float((response * (xs - x) ** 2).sum()))  # about the point itself
    std = float(np.mean(variances)) ** 0.5
    assert std == pytest.approx(radius / 2, rel=0.1), (radius, std)


def test_adding_the_prior_to_a_trained_generator_starts_from_its_output(tmp_path):
    """init_generator from a generator without the prior: the new one returns the same image (its
    mixing conv starts at zero) and then learns the mix (the conv gets a gradient)."""
    torch.manual_seed(0)
    src = NAFNet(**TINY)
    with torch.no_grad():
        for p in src.parameters():
            p.normal_(0, 0.1)
    path = save_generator_safetensors(tmp_path / "model.safetensors", src, TINY)
    module = BokehGAN(**{k: v for k, v in TINY.items()}, blur_prior=True, init_generator=str(path))
    gen = module.generator
    image, depth = torch.rand(1, 3, 64, 96), torch.rand(1, 1, 64, 96)
    lens = torch.tensor([0.8, 20.0, 0.0]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(gen(image, depth, lens), src(image, depth, lens))
    gen(image, depth, lens).square().mean().backward()
    assert gen.mix is not None and gen.mix.weight.grad is not None and gen.mix.weight.grad.abs().sum() > 0

    # With the prior in use, the output moves towards the blurred copies, and the file records it.
    with torch.no_grad():
        gen.mix.bias.fill_(0.2)
    saved = save_generator_safetensors(tmp_path / "prior" / "model.safetensors", gen, {**TINY, "blur_prior": True})
    loaded = load_generator(saved)
    assert loaded.arch["blur_prior"] is True
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(image, depth, lens), gen(image, depth, lens))
        assert (gen(image, depth, lens) - src(image, depth, lens)).abs().max() > 0.01


def test_a_generator_that_does_not_match_is_refused(tmp_path):
    """Only the prior's mixing conv may be missing from init_generator; a generator with the prior
    cannot start one without it."""
    with_prior = NAFNet(**TINY, blur_prior=True)
    path = save_generator_safetensors(tmp_path / "model.safetensors", with_prior, {**TINY, "blur_prior": True})
    with pytest.raises(ValueError, match="does not match"):
        BokehGAN(**TINY, blur_prior=False, init_generator=str(path))


def test_the_inference_form_splits_the_mix_and_computes_the_same_function():
    """export/reparam.py gives the mixing conv one conv per copy (no channel slices at full size)."""
    from export.reparam import inference_form

    torch.manual_seed(0)
    gen = NAFNet(**TINY, blur_prior=True).eval()
    with torch.no_grad():
        for p in gen.parameters():
            p.normal_(0, 0.1)
    form = inference_form(gen)
    assert isinstance(form.mix, torch.nn.ModuleList) and len(form.mix) == BlurPrior.count
    image, depth = torch.rand(2, 3, 64, 96), torch.rand(2, 1, 64, 96)
    lens = torch.tensor([[0.8, 20.0, 0.0], [0.2, 40.0, 0.05]]).reshape(2, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(form(image, depth, lens), gen(image, depth, lens), atol=2e-5, rtol=0)
