"""The generator: parameter counts from the paper, and proof that the export-friendly rewrites in
training/model.py compute the same function as NAFNet's reference formulation."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.model import LayerNorm2d, NAFNet, UpSample, count_parameters, pixelshuffle_to_transpose_weight


@pytest.mark.parametrize(
    ("width", "expected"),
    # Bokeh-Loss GAN Table 5 reports 277K / 1.047M / 2.311M; exact counts for 3 output channels
    # measured on the reference NAFNet (4 input channels) when the model was written.
    [(4, 277_739), (8, 1_047_891), (12, 2_310_459)],
)
def test_parameter_counts_match_paper(width, expected):
    assert count_parameters(NAFNet(width=width)) == expected


def test_paper_configuration_has_36_blocks():
    from training.model import NAFBlock

    assert sum(isinstance(m, NAFBlock) for m in NAFNet().modules()) == 36


def test_layernorm2d_equals_layernorm_over_channels():
    ln = LayerNorm2d(8)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(2, 8, 5, 7) * 3 + 1
    # Independent reference: torch's LayerNorm over the channel axis of the NHWC tensor.
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (8,), ln.weight.flatten(), ln.bias.flatten(), eps=ln.eps)
    torch.testing.assert_close(ln(x), ref.permute(0, 3, 1, 2), atol=1e-5, rtol=0)


def test_upsample_equals_conv1x1_pixelshuffle():
    c = 16
    conv = nn.Conv2d(c, 2 * c, 1, bias=False)
    ref = nn.Sequential(conv, nn.PixelShuffle(2))
    up = UpSample(c)
    with torch.no_grad():
        up.up.weight.copy_(pixelshuffle_to_transpose_weight(conv.weight))
    x = torch.randn(2, c, 6, 9)
    torch.testing.assert_close(up(x), ref(x), atol=1e-5, rtol=0)


def test_upsample_weight_mapping_is_not_trivially_symmetric():
    # A wrong index order (e.g. j, i swapped) must break the equivalence: guards the test above.
    c = 4
    conv = nn.Conv2d(c, 2 * c, 1, bias=False)
    up = UpSample(c)
    with torch.no_grad():
        up.up.weight.copy_(pixelshuffle_to_transpose_weight(conv.weight).transpose(2, 3))
    x = torch.randn(1, c, 4, 4)
    assert (up(x) - nn.PixelShuffle(2)(conv(x))).abs().max() > 1e-3


# --- The reference formulation, written as in NAFNet's published code (megvii-research/NAFNet) ---
class _RefLayerNorm2d(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class _RefBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        dw = 2 * c
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.norm1 = _RefLayerNorm2d(c)
        self.norm2 = _RefLayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp):
        x = self.conv2(self.conv1(self.norm1(inp)))
        a, b = x.chunk(2, 1)
        x = a * b
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        a, b = self.conv4(self.norm2(y)).chunk(2, 1)
        return y + self.conv5(a * b) * self.gamma


class _RefNAFNet(nn.Module):
    def __init__(self, width, enc, mid, dec):
        super().__init__()
        self.intro = nn.Conv2d(4, width, 3, padding=1)
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        ch = width
        for n in enc:
            self.encoders.append(nn.Sequential(*[_RefBlock(ch) for _ in range(n)]))
            self.downs.append(nn.Conv2d(ch, 2 * ch, 2, 2))
            ch *= 2
        self.middle = nn.Sequential(*[_RefBlock(ch) for _ in range(mid)])
        for n in dec:
            self.ups.append(nn.Sequential(nn.Conv2d(ch, 2 * ch, 1, bias=False), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(nn.Sequential(*[_RefBlock(ch) for _ in range(n)]))

    def forward(self, inp):
        x = self.intro(inp)
        skips = []
        for e, d in zip(self.encoders, self.downs):
            x = e(x)
            skips.append(x)
            x = d(x)
        x = self.middle(x)
        for dec, up, s in zip(self.decoders, self.ups, skips[::-1]):
            x = dec(up(x) + s)
        return self.ending(x) + inp[:, :3]


def _port_reference(ref: _RefNAFNet) -> dict:
    """Map reference weights onto training.model.NAFNet's names and forms."""
    out = {}
    for k, v in ref.state_dict().items():
        if ".sca.1." in k:
            out[k.replace(".sca.1.", ".sca.")] = v
        elif k.startswith("ups.") and k.endswith(".0.weight"):
            out[k.replace(".0.weight", ".up.weight")] = pixelshuffle_to_transpose_weight(v)
        elif ".norm" in k:
            out[k] = v.view(1, -1, 1, 1)
        else:
            out[k] = v
    return out


def test_generator_equals_reference_nafnet_on_random_weights():
    arch = dict(width=8, enc_blocks=(1, 1, 2, 2), middle_blocks=1, dec_blocks=(1, 1, 1, 1))
    ref = _RefNAFNet(8, arch["enc_blocks"], 1, arch["dec_blocks"])
    with torch.no_grad():  # randomise everything, including beta/gamma and the norms
        for p in ref.parameters():
            p.normal_(0, 0.3)
    ours = NAFNet(**arch)
    ours.load_state_dict(_port_reference(ref))
    # float64: random weights make activations large (~1e4), where float32 rounding alone differs by
    # ~1e-3 between two correct orderings of the same arithmetic; the claim is functional identity.
    ref, ours = ref.double(), ours.double()
    image, depth = torch.rand(2, 3, 32, 48, dtype=torch.float64), torch.rand(2, 1, 32, 48, dtype=torch.float64)
    with torch.no_grad():
        expected = ref(torch.cat([image, depth], 1))
        got = ours(image, depth)
    assert expected.abs().max() > 0.1  # the comparison is not between two near-zero outputs
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_fresh_generator_is_identity_on_the_photo():
    # The zero-initialised ending conv makes an untrained generator return the photo exactly.
    g = NAFNet(width=4, enc_blocks=(1, 1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1, 1))
    image, depth = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(g(image, depth), image, atol=0, rtol=0)


def test_every_generator_parameter_gets_a_gradient():
    g = NAFNet(width=4, enc_blocks=(1, 1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1, 1))
    with torch.no_grad():  # non-zero beta/gamma/ending so the gradient reaches inside every block
        for name, p in g.named_parameters():
            if name.endswith(("beta", "gamma")) or name.startswith("ending."):
                p.fill_(0.5)
    g(torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)).square().mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


# ----------------------------------------------------------------------------- lens conditioning


def test_lens_mode_adds_only_two_intro_planes_and_depth_only_is_unchanged():
    base = count_parameters(NAFNet(width=8))
    lens = count_parameters(NAFNet(width=8, lens_input=True))
    assert base == 1_047_891
    assert lens - base == 2 * 8 * 3 * 3  # the intro conv reads S and |S| besides RGB + depth


@pytest.mark.parametrize("dof", [0.0, 0.12])
def test_network_defocus_equals_the_renderers_signed_defocus(dof):
    # Independent reference: training/renderers/lens.py (clamp_min form, per-image LensParams).
    from training.renderers.lens import LensParams, signed_defocus

    net = NAFNet(width=4, enc_blocks=(1,), dec_blocks=(1,), middle_blocks=1, lens_input=True)
    depth = torch.rand(2, 1, 8, 12)
    lenses = [LensParams(K=30.0, d_f=0.7, dof=dof), LensParams(K=5.0, d_f=0.1, dof=dof)]
    lens = torch.tensor([[p.d_f, p.K, p.dof] for p in lenses]).view(2, 3, 1, 1)
    s, r = net.defocus(depth, lens)
    ref = torch.stack([signed_defocus(depth[i], p) for i, p in enumerate(lenses)]) / net.defocus_scale
    torch.testing.assert_close(s, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(r, ref.abs(), atol=1e-6, rtol=0)


def test_lens_mode_output_depends_on_the_lens_and_requires_it():
    torch.manual_seed(0)
    net = NAFNet(width=4, enc_blocks=(1,), dec_blocks=(1,), middle_blocks=1, lens_input=True)
    nn.init.normal_(net.ending.weight, std=0.1)
    image, depth = torch.rand(1, 3, 16, 16), torch.rand(1, 1, 16, 16)
    a = net(image, depth, torch.tensor([0.2, 10.0, 0.0]).view(1, 3, 1, 1))
    b = net(image, depth, torch.tensor([0.9, 10.0, 0.0]).view(1, 3, 1, 1))
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(ValueError, match="lens"):
        net(image, depth)
