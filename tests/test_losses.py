"""Loss terms of Bokeh-Loss GAN (paper §3.3–3.5) against hand-computed values and independent
references (kornia's Sobel, scikit-image's SSIM, torchvision's published VGG19 numbers)."""

from __future__ import annotations

import kornia
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity
from torch import nn

from training.losses import (
    BackgroundBlurLoss,
    EdgeDifferenceLoss,
    ForegroundEdgeLoss,
    L1Loss,
    SSIMLoss,
    VGG19Features,
    VGGPerceptualLoss,
    critic_loss,
    find_vgg19_weights,
    generator_adversarial_loss,
    gradient_penalty,
)
from training.losses.bokeh import sobel_responses


def step_image(channels: int = 1, high: float = 1.0) -> torch.Tensor:
    """4×4 image, columns 0–1 = 0, columns 2–3 = ``high``: one vertical step edge."""
    x = torch.zeros(1, channels, 4, 4)
    x[..., 2:] = high
    return x


def blur(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)


# ---------------------------------------------------------------- foreground edge loss (eq. 1)


def test_foreground_edge_hand_computed() -> None:
    # Step image, mask 1, replicate padding. Each column of a 3×3 kernel meets one constant
    # image column, so a response is Σ(left kernel column)·left + Σ(right kernel column)·right:
    #   0°  [[-1,0,1],[-2,0,2],[-1,0,1]]: left −4, right +4 → 4 at columns 1 and 2 (where the
    #       left/right neighbours are 0/1), 0 at columns 0 and 3 (replicated border) → 8·4 = 32
    #   90°: the image is constant down each column → 0
    #   +45° [[0,1,2],[-1,0,1],[-2,-1,0]]: left −3, centre 0, right +3 → 3 at columns 1, 2 → 24
    #   −45° [[-2,-1,0],[-1,0,1],[0,1,2]]: same column sums → 24
    # L_fe = −(32 + 0 + 24 + 24) / (4·4) = −5 per channel; channels add up (L1 of the tensor).
    fe = ForegroundEdgeLoss()
    ones = torch.ones(1, 1, 4, 4)
    assert fe(step_image(1), ones).item() == pytest.approx(-5.0)
    assert fe(step_image(3), ones).item() == pytest.approx(-15.0)
    # The loss is linear in the mask: M = 0.5 halves it; M = 0 removes it.
    assert fe(step_image(1), 0.5 * ones).item() == pytest.approx(-2.5)
    assert fe(step_image(1), 0 * ones).item() == 0.0


def test_sobel_directions() -> None:
    # 0° and 90° equal kornia's Sobel (normalised by 1/8, same replicate border) × 8.
    x = torch.rand(2, 3, 9, 11)
    ours = sobel_responses(x)  # (B, C, 4, H, W)
    ref = kornia.filters.spatial_gradient(x, mode="sobel", normalized=True) * 8  # (B, C, 2, H, W)
    torch.testing.assert_close(ours[:, :, 0], ref[:, :, 0])
    torch.testing.assert_close(ours[:, :, 1], ref[:, :, 1])
    # Diagonals on the ramp f(i, j) = i + j (rises towards the bottom-right), interior pixels:
    # +45° kernel: rows give 0·(−2)+1·(−1)+2·0 = −1, −1·(−1)+1·1 = 2, −2·0−1·1+0·2 = −1 → 0
    # −45° kernel: rows give −2·(−2)−1·(−1) = 5, 2, 1·1+2·2 = 5 → 12
    i, j = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    r = sobel_responses((i + j)[None, None])[0, 0, :, 1:-1, 1:-1]
    assert torch.all(r[2] == 0)
    assert torch.all(r[3] == 12)
    assert torch.all(r[0] == 8) and torch.all(r[1] == 8)  # 0°: Σ b·K = 8 for a unit ramp


def test_sharper_foreground_has_lower_foreground_edge_loss() -> None:
    sharp = torch.rand(2, 3, 32, 32)
    mask = torch.ones(2, 1, 32, 32)
    fe = ForegroundEdgeLoss()
    assert fe(sharp, mask) < fe(blur(sharp), mask)


def test_foreground_edge_gradient_sharpens() -> None:
    # One gradient step on eq. 1 increases the edge energy of the masked image.
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    mask = torch.rand(1, 1, 16, 16)
    fe = ForegroundEdgeLoss()
    before = fe(x, mask)
    before.backward()
    assert fe(x.detach() - 0.01 * x.grad, mask) < before


# ---------------------------------------------------------------- edge difference loss (eq. 2)


def test_edge_difference_hand_computed() -> None:
    # |L_fe(output)| = 5 (step of height 1, see above); a step of height 0.5 has half the
    # responses, |L_fe| = 2.5, so the difference is 2.5 whichever is the reference.
    ed = EdgeDifferenceLoss()
    ones = torch.ones(1, 1, 4, 4)
    assert ed(step_image(1), step_image(1, 0.5), ones).item() == pytest.approx(2.5)
    assert ed(step_image(1, 0.5), step_image(1), ones).item() == pytest.approx(2.5)


def test_edge_difference_zero_when_equal_and_per_image() -> None:
    ed = EdgeDifferenceLoss()
    x, m = torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16)
    assert ed(x, x.clone(), m).item() == 0.0
    # Per image: image 0 sharper, image 1 blurrier than its reference; they must not cancel.
    ref = torch.stack([blur(x[:1])[0], x[1]])
    out = torch.stack([x[0], blur(x[1:])[0]])
    fe = ForegroundEdgeLoss()
    expected = ((fe(out[:1], m[:1]) - fe(ref[:1], m[:1])).abs() + (fe(out[1:], m[1:]) - fe(ref[1:], m[1:])).abs()) / 2
    torch.testing.assert_close(ed(out, ref, m), expected)


def test_edge_difference_gradient_reaches_output_only() -> None:
    out = torch.rand(1, 3, 8, 8, requires_grad=True)
    ref = torch.rand(1, 3, 8, 8, requires_grad=True)
    EdgeDifferenceLoss()(out, ref, torch.rand(1, 1, 8, 8)).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert ref.grad is None


# ---------------------------------------------------------------- background blur loss (eq. 3)


def test_background_blur_hand_computed() -> None:
    # Anisotropic TV of the step image: each of the 4 rows has one jump of 1 between columns 1
    # and 2 (horizontal differences), vertical differences are 0 → TV = 4; / (4·4) = 0.25.
    bb = BackgroundBlurLoss()
    zeros = torch.zeros(1, 1, 4, 4)
    assert bb(step_image(1), zeros).item() == pytest.approx(0.25)
    assert bb(step_image(3), zeros).item() == pytest.approx(0.75)  # channels add up
    assert bb(step_image(1), zeros + 0.5).item() == pytest.approx(0.125)  # (1 − M) = 0.5
    assert bb(step_image(1), zeros + 1.0).item() == 0.0  # all foreground: no background term
    # Vertical step: rows 0–1 = 0, rows 2–3 = 1 → 4 vertical jumps → 0.25 as well.
    assert bb(step_image(1).transpose(-1, -2), zeros).item() == pytest.approx(0.25)


def test_blurrier_background_has_lower_background_blur_loss() -> None:
    x = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    bb = BackgroundBlurLoss()
    assert bb(blur(x), mask) < bb(x, mask)


def test_bokeh_losses_reject_bad_mask() -> None:
    with pytest.raises(ValueError, match="mask"):
        BackgroundBlurLoss()(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="mask"):
        ForegroundEdgeLoss()(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 4, 4))


def test_bokeh_losses_under_bf16_autocast() -> None:
    x, m = torch.rand(1, 3, 16, 16), torch.rand(1, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        values = [ForegroundEdgeLoss()(x, m), BackgroundBlurLoss()(x, m), SSIMLoss()(x, x.flip(-1))]
    assert all(v.dtype == torch.float32 for v in values)
    torch.testing.assert_close(values[0], ForegroundEdgeLoss()(x, m))


# ---------------------------------------------------------------- L1, SSIM


def test_l1_hand_computed() -> None:
    # |0.5 − 0| + |0 − 0| + |1 − 0.25| + |0.25 − 0.25| = 1.25 over 4 elements.
    a = torch.tensor([0.5, 0.0, 1.0, 0.25]).view(1, 1, 2, 2)
    b = torch.tensor([0.0, 0.0, 0.25, 0.25]).view(1, 1, 2, 2)
    assert L1Loss()(a, b).item() == pytest.approx(0.3125)


def test_ssim_loss_matches_scikit_image() -> None:
    x = torch.rand(2, 3, 32, 40)
    y = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    ref = np.mean(
        [
            structural_similarity(
                x[i].numpy(),
                y[i].numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
                channel_axis=0,
            )
            for i in range(2)
        ]
    )
    assert SSIMLoss()(x, y).item() == pytest.approx(1.0 - ref, abs=2e-5)
    assert SSIMLoss()(x, x).item() == pytest.approx(0.0, abs=1e-6)
    # kornia's own SSIMLoss is (1 − SSIM) / 2, i.e. not the paper's L_SSIM: ours is larger.
    assert SSIMLoss()(x, y) > kornia.losses.SSIMLoss(11)(x, y)


# ---------------------------------------------------------------- VGG19 perceptual loss


def test_vgg19_features_parameter_count_and_keys() -> None:
    # torchvision vgg19 cfg "E" conv layers, (in, out): 3·3 kernels + bias each.
    convs = (
        [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256)]
        + [(256, 256)] * 3
        + [(256, 512)]
        + [(512, 512)] * 3
        + [(512, 512)] * 4
    )
    by_hand = sum(i * o * 9 + o for i, o in convs)
    assert by_hand == 20_024_384  # 1792 + 36928 + 73856 + 147584 + 295168 + 3·590080 + ...
    v = VGG19Features()
    assert sum(p.numel() for p in v.parameters()) == 20_024_384
    # Conv indices of torchvision's vgg19().features (conv, ReLU; MaxPool at 4, 9, 18, 27, 36).
    conv_idx = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    expected = [f"features.{i}.{p}" for i in conv_idx for p in ("weight", "bias")]
    assert list(v.state_dict()) == expected


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory):
    """A random VGG19 saved in torchvision's format, classifier keys included."""
    torch.manual_seed(1)
    v = VGG19Features()
    state = dict(v.state_dict())
    state["classifier.0.weight"] = torch.zeros(4, 2)
    state["classifier.0.bias"] = torch.zeros(4)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path, v


def test_vgg_checkpoint_loads_and_features_have_documented_shapes(vgg_file) -> None:
    path, original = vgg_file
    loss = VGGPerceptualLoss(str(path))
    for k, t in original.state_dict().items():
        torch.testing.assert_close(loss.vgg.state_dict()[k], t)
    feats = loss.vgg(torch.rand(1, 3, 64, 64), loss.layers)
    shapes = {k: tuple(t.shape) for k, t in feats.items()}
    assert shapes == {
        "relu1_2": (1, 64, 64, 64),
        "relu2_2": (1, 128, 32, 32),
        "relu3_4": (1, 256, 16, 16),
        "relu4_4": (1, 512, 8, 8),
        "relu5_4": (1, 512, 4, 4),
    }
    # relu1_2 by hand from the saved weights: conv → ReLU → conv → ReLU.
    x = torch.rand(1, 3, 16, 16)
    w = original.state_dict()
    h = F.relu(F.conv2d(x, w["features.0.weight"], w["features.0.bias"], padding=1))
    h = F.relu(F.conv2d(h, w["features.2.weight"], w["features.2.bias"], padding=1))
    torch.testing.assert_close(loss.vgg(x, ("relu1_2",))["relu1_2"], h)


def test_vgg_loss_frozen_zero_on_equal_and_grad_to_output(vgg_file) -> None:
    path, _ = vgg_file
    loss = VGGPerceptualLoss(str(path))
    loss.train()
    assert not loss.vgg.training
    assert all(not p.requires_grad for p in loss.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    assert loss(x, x.detach()).item() == 0.0
    value = loss(x, torch.rand(1, 3, 32, 32))
    value.backward()
    assert value > 0 and x.grad is not None and x.grad.abs().sum() > 0
    # The frozen VGG is not stored in checkpoints of a module that owns the loss, and such a
    # checkpoint loads back strictly.
    holder = nn.Module()
    holder.vgg_loss = loss
    holder.head = nn.Linear(2, 2)
    sd = holder.state_dict()
    assert set(sd) == {"head.weight", "head.bias"}
    holder.load_state_dict(sd, strict=True)


def test_vgg_weights_lookup_order(vgg_file, tmp_path, monkeypatch) -> None:
    path, _ = vgg_file
    monkeypatch.delenv("BOKEH_VGG19_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    cache = tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(path.read_bytes())
    assert find_vgg19_weights() == cache  # $TORCH_HOME/hub/checkpoints
    monkeypatch.setenv("BOKEH_VGG19_WEIGHTS", str(path))
    assert find_vgg19_weights() == path  # the env var comes before the cache
    assert find_vgg19_weights(cache) == cache  # an explicit path comes first
    # An explicit path that does not exist does not fall back to another copy.
    assert find_vgg19_weights(tmp_path / "missing.pth") is None


def test_vgg_missing_file_error_names_file(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("BOKEH_VGG19_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    missing = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(FileNotFoundError) as e:
        VGGPerceptualLoss(str(missing))
    msg = str(e.value)
    assert "vgg19-dcbb9e9d.pth" in msg and str(missing) in msg
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg


def test_vgg_bad_file_error_names_file(tmp_path) -> None:
    bad = tmp_path / "vgg19-dcbb9e9d.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=str(bad)):
        VGGPerceptualLoss(str(bad))
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a torchvision vgg19"):
        VGGPerceptualLoss(str(bad))


# ---------------------------------------------------------------- WGAN-GP


def test_critic_and_generator_losses_hand_computed() -> None:
    # Critic 1: real mean 2, fake mean 0 → 0 − 2 = −2. Critic 2: real mean 1, fake mean 3 → 2.
    # Average over the two critics: 0. Generator: −(0 + 3) / 2 = −1.5.
    real = [torch.tensor([1.0, 3.0]).view(2, 1, 1, 1), torch.ones(2, 1, 2, 2)]
    fake = [torch.zeros(2, 1, 1, 1), torch.full((2, 1, 2, 2), 3.0)]
    assert critic_loss(real, fake).item() == pytest.approx(0.0)
    assert critic_loss(real[0], fake[0]).item() == pytest.approx(-2.0)
    assert generator_adversarial_loss(fake).item() == pytest.approx(-1.5)


class LinearCritic(nn.Module):
    """f(x | c) = w·x + v·c: its gradient in x is w everywhere, so ‖∇‖ = ‖w‖ exactly."""

    def __init__(self, norm: float, shape: tuple[int, ...] = (3, 8, 8)) -> None:
        super().__init__()
        w = torch.randn(shape)
        self.w = nn.Parameter(w * norm / w.norm())
        self.v = nn.Parameter(torch.randn(shape))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return ((x * self.w).flatten(1).sum(1) + (c * self.v).flatten(1).sum(1)).view(-1, 1, 1, 1)


class TwoCritics(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = LinearCritic(2.0), LinearCritic(0.5)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> list[torch.Tensor]:
        return [self.a(x, c), self.b(x, c)]


def test_gradient_penalty_linear_critic() -> None:
    real, fake, cond = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    # ‖w‖ = 2 → (2 − 1)² = 1 whatever the interpolation; the condition's weights v play no part.
    critic = LinearCritic(2.0)
    assert gradient_penalty(critic, real, fake, cond).item() == pytest.approx(1.0, rel=1e-5)
    assert gradient_penalty(critic, real, fake, cond, weight=10.0).item() == pytest.approx(10.0, rel=1e-5)
    # Two critics, ‖w‖ = 2 and 0.5: ((2 − 1)² + (0.5 − 1)²) / 2 = (1 + 0.25) / 2 = 0.625.
    assert gradient_penalty(TwoCritics(), real, fake, cond).item() == pytest.approx(0.625, rel=1e-5)


def test_gradient_penalty_trains_the_critic_under_bf16() -> None:
    # create_graph: d/dw (‖w‖ − 1)² = 2 (‖w‖ − 1) w / ‖w‖ = w for ‖w‖ = 2.
    critic = LinearCritic(2.0)
    real, fake, cond = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(critic, real, fake.requires_grad_(True), cond)
    assert gp.dtype == torch.float32
    gp.backward()
    torch.testing.assert_close(critic.w.grad, critic.w.detach(), rtol=1e-4, atol=1e-6)
    assert fake.grad is None  # the penalty belongs to the critic's step only


def test_gradient_penalty_on_multiscale_discriminator() -> None:
    from training.discriminator import MultiScaleDiscriminator

    d = MultiScaleDiscriminator(base_channels=4)
    real, fake, cond = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(d, real, fake, cond)
    assert torch.isfinite(gp) and gp > 0
    gp.backward()
    # Every parameter shapes ∇_x D except, in each critic, the last InstanceNorm's shift (only a
    # piecewise-linear LeakyReLU and a bias-free conv follow it, so it moves ∇_x D only through the
    # LeakyReLU's kinks: zero almost everywhere). It trains through the WGAN loss instead
    # (tests/test_discriminator.py). The score layer has no bias (it would cancel in both losses).
    no_grad = {n for n, p in d.named_parameters() if p.grad is None or p.grad.abs().sum() == 0}
    assert no_grad == {"critics.0.model.9.bias", "critics.1.model.15.bias"}
