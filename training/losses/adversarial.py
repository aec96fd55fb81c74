"""WGAN-GP losses of the dual-scale critic (Lee et al., AIM 2022, §3.3 and §3.5, eq. 5's L_adv).

Wasserstein GAN with gradient penalty (Gulrajani et al., "Improved Training of Wasserstein GANs",
NeurIPS 2017), penalty weight λ = 1 as in the paper (§3.3). Every function accepts either one
score tensor or the list returned by ``MultiScaleDiscriminator`` and averages over the critics,
as the paper "averages the adversarial losses from both discriminators into one loss".

A PatchGAN critic returns a map of patch scores; the critic value of an image is the mean of its
map. So the critic loss is ``mean(D(fake)) − mean(D(real))``, the generator's is
``−mean(D(fake))``, and the gradient penalty differentiates each image's mean score.

Everything is computed in float32: under bf16 autocast the scores are bf16, and the penalty's
double backward and the difference of two large means both lose too much in 8 mantissa bits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["critic_loss", "generator_adversarial_loss", "gradient_penalty"]

Scores = torch.Tensor | Sequence[torch.Tensor]


def _as_list(scores: Scores) -> list[torch.Tensor]:
    out = [scores] if isinstance(scores, torch.Tensor) else list(scores)
    if not out:
        raise ValueError("expected at least one critic's scores")
    return out


def critic_loss(real_scores: Scores, fake_scores: Scores) -> torch.Tensor:
    """Critic's WGAN loss ``mean(D(fake)) − mean(D(real))``, averaged over critics (to minimise)."""
    real, fake = _as_list(real_scores), _as_list(fake_scores)
    if len(real) != len(fake):
        raise ValueError(f"{len(real)} real but {len(fake)} fake score maps")
    terms = [f.float().mean() - r.float().mean() for r, f in zip(real, fake)]
    return torch.stack(terms).mean()


def generator_adversarial_loss(fake_scores: Scores) -> torch.Tensor:
    """Generator's WGAN loss ``−mean(D(fake))``, averaged over critics (eq. 5's L_adv)."""
    return torch.stack([-f.float().mean() for f in _as_list(fake_scores)]).mean()


def gradient_penalty(
    discriminator: Callable[..., Scores],
    real: torch.Tensor,
    fake: torch.Tensor,
    condition: torch.Tensor | None,
    weight: float = 1.0,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """``weight · E[(‖∇_x̂ D(x̂ | photo)‖₂ − 1)²]``, x̂ = ε·real + (1 − ε)·fake, ε ~ U[0, 1] per image.

    ``discriminator(candidate, condition)`` is a ``MultiScaleDiscriminator`` (a list of maps) or one
    ``PatchDiscriminator``. The penalty is computed per critic and averaged over critics. The
    gradient is taken with respect to the interpolated bokeh image only: the photo is the
    condition, identical for real and fake, so it is not interpolated and not penalised.
    ``create_graph=True`` so the penalty trains the critic. ``fake`` is detached (the penalty
    belongs to the critic's step). Runs in float32 with autocast off.

    ``eps``: the (B,) mixing weights; None draws them from U[0, 1]. Given, two runs that split a
    batch differently (one process or two DDP ranks) mix each image alike (tests/test_ddp.py).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    with torch.autocast(device_type=real.device.type, enabled=False):
        real32 = real.detach().float()
        fake32 = fake.detach().float()
        cond32 = None if condition is None else condition.detach().float()
        if eps is None:
            eps = torch.rand(real32.shape[0], 1, 1, 1, device=real32.device)
        eps = eps.to(real32).reshape(real32.shape[0], 1, 1, 1)
        interp = (eps * real32 + (1.0 - eps) * fake32).requires_grad_(True)  # (B, 3, H, W)
        scores = _as_list(discriminator(interp, cond32))
        penalties = []
        for s in scores:
            per_image = s.float().flatten(1).mean(1)  # critic value of each image, (B,)
            (grad,) = torch.autograd.grad(per_image.sum(), interp, create_graph=True, retain_graph=True)
            norm = grad.flatten(1).norm(2, dim=1)  # (B,)
            penalties.append(((norm - 1.0) ** 2).mean())
        return weight * torch.stack(penalties).mean()
