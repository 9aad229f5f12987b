"""The authors' LUNA16 U-Net over a timm backbone (``decoder="paper"``).

The topology is that of ``UNet(backbone=...)`` in the authors' ``datasets/LUNA/Utils/
models.py`` (read from their repository; no code of theirs is used):

- the encoder is the whole backbone without its classifier, split into *stages*; every
  stage's output is a skip, and so is the raw input (:class:`PaperEncoder` says which
  stages a backbone has);
- a bridge of two Conv-BN-ReLU at the deepest stage's width;
- one decoder block per skip, deepest first, the deepest stage included: the block at the
  bottleneck applies a 1x1 conv to the bridge output and concatenates the deepest stage's
  output; every other block upsamples with ``ConvTranspose2d(2, 2)`` when its skip is
  twice the size, else applies a 1x1 conv, concatenates the skip and applies two
  Conv-BN-ReLU; each block's width is its skip's width (read from the encoder, never
  typed in);
- a 1x1 conv head.

Like the authors' blocks, every :class:`PaperDecoderBlock` holds both the transposed
conv and the 1x1 conv although its forward uses one of them: the parameters (and the
paper's sizes, 284.4M with ResNet50, 39.4M with VGG16, 191.8M with EfficientNetB4)
include the unused one, which is frozen (``requires_grad=False``: it never receives a
gradient, so Adam never updated it in their runs either). Convolutions have biases, as
theirs do.

The head returns logits: the paper's sigmoid is applied by the loss and at inference
(:func:`radiologynet.models.predict_mask`), not inside the module.
"""

from __future__ import annotations

import torch
from timm.models.efficientnet import EfficientNet
from timm.models.mobilenetv3 import MobileNetV3
from timm.models.vgg import VGG
from torch import nn

#: The side of the blank image the encoder's stages are measured with.
PROBE_SIZE = 64
#: VGG's conv stages: the outputs before each max pool (timm's index 5, the last pool's
#: output, is not a stage of the authors' encoder).
VGG_CONV_STAGES = [0, 1, 2, 3, 4]


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 padded convolution (with bias), batch norm, ReLU: the authors' ``ConvBlock``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class PaperEncoder(nn.Module):
    """A timm backbone cut into the stages the authors' U-Net uses as skips.

    - EfficientNet: the stem, each of the seven block stages and the head conv (the nine
      children of torchvision's ``features``, up to 1792 channels for B4);
    - MobileNetV3: the stem and every block stage (torchvision's ``features``);
    - VGG: the five conv stages, each before its max pool (the last pool is not used);
    - ResNet (and DenseNet): timm's stages: the stem before its max pool, then each
      residual stage (ResNet50: 64, 256, 512, 1024, 2048 channels).

    The classifier is removed (and VGG's pre-logits); ``forward`` returns the stage
    outputs in order. ``channels`` and ``reductions`` are measured by running a blank
    image through the backbone once, as the authors measured theirs.

    Args:
        model: a timm classification model of one of those families.
        in_chans: its input channels.
    """

    def __init__(self, model: nn.Module, in_chans: int = 3) -> None:
        super().__init__()
        if isinstance(model, EfficientNet):
            model.reset_classifier(0, "")  # keeps conv_head / bn2: a stage of theirs
        elif isinstance(model, VGG):
            model.prune_intermediate_layers(VGG_CONV_STAGES, prune_head=True)
        elif isinstance(model, MobileNetV3):
            model.prune_intermediate_layers(None, prune_head=True, extra_blocks=True)
        else:
            model.prune_intermediate_layers(None, prune_head=True)
        self.model = model
        shapes = self._probe(in_chans)
        self.channels = [s[0] for s in shapes]
        self.reductions = [PROBE_SIZE // s[-1] for s in shapes]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        model = self.model
        if isinstance(model, EfficientNet):
            final, stages = model.forward_intermediates(x, extra_blocks=True)
            return [*stages, final]
        if isinstance(model, VGG):
            return model.forward_intermediates(
                x, indices=VGG_CONV_STAGES, intermediates_only=True, stop_early=True
            )
        if isinstance(model, MobileNetV3):
            return model.forward_intermediates(x, extra_blocks=True, intermediates_only=True)
        return model.forward_intermediates(x, intermediates_only=True)

    def _probe(self, in_chans: int) -> list[tuple[int, ...]]:
        """The ``(channels, height, width)`` of each stage for a blank image."""
        device = next(self.model.parameters()).device
        was_training = self.training
        self.eval()
        with torch.no_grad():
            blank = torch.zeros(1, in_chans, PROBE_SIZE, PROBE_SIZE, device=device)
            shapes = [tuple(f.shape[1:]) for f in self(blank)]
        self.train(was_training)
        return shapes


class PaperDecoderBlock(nn.Module):
    """The authors' up block: upsample (``ConvTranspose2d``, kernel = stride = the size
    ratio) or 1x1 conv from ``in_channels`` to ``skip_channels``, concatenate the skip,
    two Conv-BN-ReLU. Both the transposed conv and the 1x1 conv exist, as in theirs;
    ``scale`` picks the one that runs (1: the 1x1 conv)."""

    def __init__(self, in_channels: int, skip_channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.upsample = nn.ConvTranspose2d(in_channels, skip_channels, max(scale, 2), max(scale, 2))
        self.project = nn.Conv2d(in_channels, skip_channels, 1)
        # the one that never runs gets no gradient (nor an update, in theirs either):
        # frozen, so that DistributedDataParallel does not wait for its gradient
        (self.project if scale > 1 else self.upsample).requires_grad_(False)
        self.convs = nn.Sequential(
            conv_bn_relu(2 * skip_channels, skip_channels),
            conv_bn_relu(skip_channels, skip_channels),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x) if self.scale > 1 else self.project(x)
        return self.convs(torch.cat([x, skip], dim=1))


class PaperUNet(nn.Module):
    """The authors' encoder U-Net (see the module docstring).

    Args:
        encoder: a :class:`PaperEncoder` (its ``channels`` and ``reductions`` give the
            skips and the decoder's widths).
        in_chans: input channels (the raw-input skip's width).
        num_classes: output channels of the 1x1 head (logits).

    The input's height and width must be multiples of the encoder's largest reduction;
    :class:`radiologynet.models.UNet` pads any size to that and crops back.
    """

    def __init__(self, encoder: PaperEncoder, in_chans: int = 3, num_classes: int = 1) -> None:
        super().__init__()
        self.encoder = encoder
        skips = [(in_chans, 1), *zip(encoder.channels, encoder.reductions, strict=True)]
        deepest = encoder.channels[-1]
        self.bridge = nn.Sequential(conv_bn_relu(deepest, deepest), conv_bn_relu(deepest, deepest))
        blocks = []
        width, reduction = deepest, encoder.reductions[-1]
        for skip_width, skip_reduction in reversed(skips):
            blocks.append(PaperDecoderBlock(width, skip_width, reduction // skip_reduction))
            width, reduction = skip_width, skip_reduction
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(width, num_classes, 1)

    @property
    def stride(self) -> int:
        """The encoder's total downsampling (inputs must be multiples of it)."""
        return max(self.encoder.reductions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.encoder(x)
        y = self.bridge(stages[-1])
        for block, skip in zip(self.decoder, reversed([x, *stages]), strict=True):
            y = block(y, skip)
        return self.head(y)
