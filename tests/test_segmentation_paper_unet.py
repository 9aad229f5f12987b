"""The paper decoder is the authors' LUNA16 U-Net: checked against the topology written
down here from the authors' ``datasets/LUNA/Utils/models.py`` (and the second paper
audit), with torchvision's backbones (the authors' encoders) for the encoder tensors, not
against this library's own output.

The authors' rule: every encoder stage output is a skip, and so is the input; a bridge of
two 3x3 Conv(bias)-BN-ReLU at the deepest width; one up block per skip, deepest first:
``ConvTranspose2d(prev, c, 2, 2)`` and ``Conv2d(prev, c, 1)`` (both exist, one runs: the
transposed conv where the skip is twice the size), then 3x3 Conv(2c -> c)-BN-ReLU and 3x3
Conv(c -> c)-BN-ReLU; the first block's ``prev`` is the deepest width itself; a 1x1 head.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torchvision

from radiologynet.models.unet import create_unet

#: (channels, side at a 224 x 224 input) of each skip, input first: the authors' encoders.
AUTHORS_SKIPS = {
    # input, the stem before its max pool, layer1..layer4
    "resnet50": [(3, 224), (64, 112), (256, 56), (512, 28), (1024, 14), (2048, 7)],
    # input, the five conv stages of `features`, each before its max pool (the last
    # max pool is not part of the encoder)
    "vgg16": [(3, 224), (64, 224), (128, 112), (256, 56), (512, 28), (512, 14)],
    # input, the nine children of torchvision's efficientnet_b4 `features`
    "efficientnet_b4": [
        (3, 224),
        (48, 112),
        (24, 112),
        (32, 56),
        (56, 28),
        (112, 14),
        (160, 14),
        (272, 7),
        (448, 7),
        (1792, 7),
    ],
}
#: The paper's reported sizes (millions of parameters).
PAPER_SIZES = {"resnet50": 284.4, "vgg16": 39.4, "efficientnet_b4": 191.8}


def torchvision_encoder_shapes(name: str) -> list[tuple[int, ...]]:
    """The parameter shapes of the authors' encoder: the torchvision backbone without its
    classifier (ResNet50 without ``fc``; VGG16's and EfficientNetB4's ``features``)."""
    with torch.device("meta"):
        model = getattr(torchvision.models, name)()
    if name == "resnet50":
        return [tuple(p.shape) for n, p in model.named_parameters() if not n.startswith("fc.")]
    return [tuple(p.shape) for p in model.features.parameters()]


def conv_bn_relu_shapes(cin: int, cout: int) -> list[tuple[int, ...]]:
    return [(cout, cin, 3, 3), (cout,), (cout,), (cout,)]  # conv weight, bias; BN w, b


def decoder_shapes(skips: list[tuple[int, int]]) -> list[tuple[int, ...]]:
    """The parameter shapes of the bridge, the up blocks and the head."""
    deepest = skips[-1][0]
    shapes = conv_bn_relu_shapes(deepest, deepest) * 2
    previous = deepest
    for channels, _ in reversed(skips):
        shapes += [(previous, channels, 2, 2), (channels,)]  # ConvTranspose2d
        shapes += [(channels, previous, 1, 1), (channels,)]  # the 1x1 conv
        shapes += conv_bn_relu_shapes(2 * channels, channels)
        shapes += conv_bn_relu_shapes(channels, channels)
        previous = channels
    return [*shapes, (1, skips[0][0], 1, 1), (1,)]


@pytest.mark.parametrize("name", list(AUTHORS_SKIPS))
def test_paper_unet_has_the_authors_parameter_shapes(name):
    with torch.device("meta"):
        net = create_unet(name, decoder="paper")
    ours = Counter(tuple(p.shape) for p in net.parameters())
    theirs = Counter(torchvision_encoder_shapes(name) + decoder_shapes(AUTHORS_SKIPS[name]))
    assert ours == theirs
    total = sum(p.numel() for p in net.parameters()) / 1e6
    assert round(total, 1) == PAPER_SIZES[name]


@pytest.mark.parametrize("name", list(AUTHORS_SKIPS))
def test_paper_unet_blocks_follow_the_skips(name):
    """One block per skip, deepest first, each as wide as its skip; the transposed conv
    runs exactly where the skip is twice the size of the deeper one."""
    with torch.device("meta"):
        net = create_unet(name, decoder="paper")
    skips = AUTHORS_SKIPS[name]
    blocks = net.net.decoder
    assert len(blocks) == len(skips)
    sides = [side for _, side in reversed(skips)]
    expected_scales = [1] + [
        later // earlier for earlier, later in zip(sides[:-1], sides[1:], strict=True)
    ]
    assert [b.scale for b in blocks] == expected_scales
    assert [b.convs[1][0].out_channels for b in blocks] == [c for c, _ in reversed(skips)]


def test_paper_unet_runs_on_a_training_crop():
    torch.manual_seed(0)
    net = create_unet("vgg16", decoder="paper", in_chans=1)
    with torch.no_grad():
        assert net.eval()(torch.rand(2, 1, 64, 64)).shape == (2, 1, 64, 64)
    # the bottleneck of the authors' VGG16 encoder is /16 (4 x 4 on a 64 x 64 crop)
    assert net.stride == 16


def test_efficientnet_b4_encoder_keeps_torchvisions_stochastic_depth():
    """The authors' encoder is torchvision's efficientnet_b4 (stochastic depth 0.2, rising
    over the blocks): the same per-block probabilities as timm's DropPath modules."""
    from timm.layers import DropPath

    with torch.device("meta"):
        reference = torchvision.models.efficientnet_b4()
        paper = create_unet("efficientnet_b4", decoder="paper")
        smp_net = create_unet("efficientnet_b4")
    expected = sorted(
        m.p
        for m in reference.modules()
        if isinstance(m, torchvision.ops.StochasticDepth) and m.p > 0
    )
    ours = sorted(
        m.drop_prob for m in paper.encoder.modules() if isinstance(m, DropPath) and m.drop_prob
    )
    assert ours == pytest.approx(expected)
    assert max(ours) < 0.2 and len(ours) == len(expected) > 20
    assert not any(isinstance(m, DropPath) for m in smp_net.encoder.modules())
    with torch.device("meta"):
        none = create_unet("efficientnet_b4", decoder="paper", drop_path_rate=0.0)
    assert not any(isinstance(m, DropPath) for m in none.encoder.modules())


def test_random_paper_unet_encoder_is_torchvision_initialised_as_the_authors():
    """The authors' random U-Net encoder is ``torchvision.models.<name>(weights=None)``
    (their ``UNet._init_weights`` ran before any layer existed): ResNet blocks end in a
    BatchNorm of gamma 1 (timm's own init zeroes it), and the weights are torchvision's
    draw for the same seed."""
    import torchvision

    from radiologynet.models.unet import create_unet

    torch.manual_seed(7)
    unet = create_unet("resnet18", weights=None, decoder="paper")
    torch.manual_seed(7)
    reference = torchvision.models.resnet18(weights=None)
    gammas = [m.weight for n, m in unet.named_modules() if n.endswith("bn2")]
    assert gammas and all(torch.all(g == 1) for g in gammas)
    conv1 = next(p for n, p in unet.named_parameters() if n.endswith("conv1.weight"))
    assert torch.equal(conv1, reference.conv1.weight)
