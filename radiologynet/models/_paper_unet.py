"""The paper's U-Net decoder over a timm ``features_only`` encoder.

Topology (original-release.md, "The paper's encoder U-Nets"): the whole backbone is the
encoder; one skip per encoder stage plus the raw input; a bridge of two Conv-BN-ReLU on
the deepest features; one decoder block per skip, deepest first, that upsamples with
``ConvTranspose2d(f, f)`` when the spatial size changes (``f`` = 2 for every zoo
backbone) or applies a 1x1 conv when it does not, concatenates the skip and applies two
Conv-BN-ReLU; decoder widths mirror the skip widths; a 1x1 conv head.

The head returns logits: the paper's sigmoid is applied by the loss and at inference
(:func:`radiologynet.models.predict_mask`), not inside the module.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 padded convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class PaperDecoderBlock(nn.Module):
    """Upsample (or 1x1 conv), concatenate the skip, two Conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, scale: int) -> None:
        super().__init__()
        if scale > 1:
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, skip_channels, scale, scale)
        else:
            self.up = nn.Conv2d(in_channels, skip_channels, 1)
        self.convs = nn.Sequential(
            conv_bn_relu(2 * skip_channels, skip_channels),
            conv_bn_relu(skip_channels, skip_channels),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([self.up(x), skip], dim=1))


class PaperUNet(nn.Module):
    """The paper's encoder U-Net.

    Args:
        encoder: a timm ``features_only`` model (its ``feature_info`` gives the skips).
        in_chans: input channels (the raw-input skip's width).
        num_classes: output channels of the 1x1 head (logits).

    The input's height and width must be multiples of the encoder's largest reduction;
    :class:`radiologynet.models.UNet` pads any size to that and crops back.
    """

    def __init__(self, encoder: nn.Module, in_chans: int = 3, num_classes: int = 1) -> None:
        super().__init__()
        self.encoder = encoder
        channels = list(encoder.feature_info.channels())
        reductions = list(encoder.feature_info.reduction())
        deepest = channels[-1]
        self.bridge = nn.Sequential(conv_bn_relu(deepest, deepest), conv_bn_relu(deepest, deepest))
        skips = list(zip([in_chans, *channels[:-1]], [1, *reductions[:-1]], strict=True))
        blocks = []
        width, reduction = deepest, reductions[-1]
        for skip_width, skip_reduction in reversed(skips):
            blocks.append(PaperDecoderBlock(width, skip_width, reduction // skip_reduction))
            width, reduction = skip_width, skip_reduction
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        skips = [x, *features[:-1]]
        y = self.bridge(features[-1])
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            y = block(y, skip)
        return self.head(y)
