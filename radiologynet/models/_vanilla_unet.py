"""The paper's small vanilla U-Net and its (unreleased) reconstruction weights.

About 118k parameters: depth 3, first width 2**4 = 16 filters doubling per level, padded
3x3 convolutions in blocks ordered Conv -> ReLU -> BN, average-pool downsampling and
transposed-conv upsampling, a 1x1 head returning logits. The paper pretrained it to
reproduce its input (:mod:`radiologynet.pretraining.reconstruction`) and found that
useless for nodule segmentation (Dice 0.111 vs 0.616 from scratch).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from radiologynet.errors import (
    CheckpointFormatError,
    UnknownWeightsError,
    WeightsNotReleasedError,
)
from radiologynet.models._backbone import weights_file
from radiologynet.models._card import render_task_card
from radiologynet.models._folder import grayscale_filters, model_type, read_config, write_folder
from radiologynet.models._preprocessing import Preprocessing
from radiologynet.models._weights import WeightRecord

#: ``config.json`` ``architecture`` of a vanilla U-Net weights folder.
VANILLA_ARCHITECTURE = "radiologynet_vanilla_unet"


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_channels),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_channels),
    )


class VanillaUNet(nn.Module):
    """The classic U-Net the paper pretrained by reconstruction.

    Args:
        in_chans: input channels.
        num_classes: output channels (logits; ``in_chans`` for reconstruction).
        depth: number of levels (the paper: 3).
        first_width: filters at the first level, doubled per level (the paper: 16).

    Height and width must be multiples of ``2 ** (depth - 1)``;
    :func:`radiologynet.create_unet` wraps it to accept any size.
    """

    def __init__(
        self, in_chans: int = 3, num_classes: int = 1, depth: int = 3, first_width: int = 16
    ) -> None:
        super().__init__()
        self.config = {
            "in_chans": in_chans,
            "num_classes": num_classes,
            "depth": depth,
            "first_width": first_width,
        }
        widths = [first_width * 2**i for i in range(depth)]
        self.down = nn.ModuleList()
        previous = in_chans
        for width in widths:
            self.down.append(_block(previous, width))
            previous = width
        self.pool = nn.AvgPool2d(2)
        self.up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(previous, width, 2, stride=2))
            self.up_blocks.append(_block(2 * width, width))
            previous = width
        self.head = nn.Conv2d(previous, num_classes, 1)

    @property
    def stride(self) -> int:
        """The multiple height and width must have."""
        return 2 ** (len(self.down) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, block, skip in zip(self.up, self.up_blocks, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)


#: The architecture name of the vanilla U-Net's weight records (``unet.<tag>``); it is not
#: a registry architecture (no timm model), so its records are not in ``list_weights()``.
VANILLA_ARCH = "unet"


def _recon_record(tag: str, source: str, data: str) -> WeightRecord:
    return WeightRecord(
        arch=VANILLA_ARCH,
        tag=tag,
        version="v1",
        description=f"Vanilla U-Net pretrained to reconstruct {source} images (described in "
        "the paper, not released)",
        preprocessing=Preprocessing(input_size=224),
        num_classes=3,  # the reconstructed image
        label_names=(),
        modalities=(),
        training_data=data,
        license="other",
        released=False,
    )


#: The paper's two reconstruction-pretrained vanilla U-Nets; neither was released.
RECON_RECORDS: tuple[WeightRecord, ...] = (
    _recon_record(
        "radiologynet-recon",
        "RadiologyNET",
        "RadiologyNET images (multi-modality), input -> same image.",
    ),
    _recon_record("imagenet-recon", "ImageNet", "ImageNet-1k images, input -> same image."),
)


def get_unet_weights(tag: str) -> WeightRecord:
    """The record of a vanilla U-Net weight tag (``radiologynet-recon``/``imagenet-recon``).

    Raises:
        UnknownWeightsError: a tag the paper does not describe; the message lists them.
    """
    for record in RECON_RECORDS:
        if record.tag == tag:
            return record
    valid = ", ".join(r.tag for r in RECON_RECORDS)
    raise UnknownWeightsError(
        f"No vanilla U-Net weights {tag!r}. The paper's tags are {valid} (unreleased); pass "
        "None for random initialisation or a path to a weights folder."
    )


def not_released_error(record: WeightRecord) -> WeightsNotReleasedError:
    """The error for asking for an unreleased vanilla U-Net weight, saying how to make one."""
    return WeightsNotReleasedError(
        f"{record.name}: {record.description}. Pretrain your own with "
        "`radiologynet pretrain-reconstruction --data DIR --out FOLDER` and pass "
        "weights=FOLDER."
    )


def save_vanilla_unet(
    model: VanillaUNet, out_dir: str | Path, metadata: dict[str, object] | None = None
) -> Path:
    """Write ``model`` as a weights folder of ``model_type`` ``"vanilla_unet"``
    (``config.json``, ``model.safetensors``, ``README.md``); ``metadata`` goes under
    ``config.json``'s ``radiologynet`` key (``task``, ``license``, ``recipe`` ... reach the
    card). Returns the folder."""
    config = {
        "model_type": "vanilla_unet",
        "model_args": model.config,
        "num_classes": model.config["num_classes"],
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "radiologynet": dict(metadata or {}),
    }
    return write_folder(out_dir, model.state_dict(), config, render_task_card)


def load_vanilla_unet(
    path: str | Path, in_chans: int | None = None, num_classes: int | None = None
) -> VanillaUNet:
    """A :class:`VanillaUNet` built from a weights folder's ``config.json`` and loaded.

    A different ``num_classes`` re-initialises the head (reconstruction -> segmentation);
    a different ``in_chans`` sums or repeats the first convolution's filters.

    Raises:
        CheckpointFormatError: the folder is not a vanilla U-Net weights folder.
    """
    file = weights_file(path)
    config_path = file.parent / "config.json"
    config = read_config(file.parent) or {"model_type": "vanilla_unet"}
    if model_type(config, file.parent) != "vanilla_unet":
        what = config.get("task_model") or config.get("architecture") or "timm model"
        raise CheckpointFormatError(
            f"{config_path} describes a {what!r} ({model_type(config)}), not a vanilla "
            "U-Net; pass it to create_unet with its encoder name instead of None."
        )
    args = dict(config.get("model_args", {}))
    state = load_file(str(file))
    model = VanillaUNet(
        in_chans=in_chans or args.get("in_chans", 3),
        num_classes=num_classes or args.get("num_classes", 1),
        depth=args.get("depth", 3),
        first_width=args.get("first_width", 16),
    )
    own = model.state_dict()
    first = "down.0.0.weight"
    if first in state and state[first].shape[1] != own[first].shape[1]:
        state[first] = grayscale_filters(state[first], own[first].shape[1])
    keep = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    missing = [k for k in own if k not in keep and not k.startswith("head.")]
    if missing:
        raise CheckpointFormatError(
            f"{file} does not fit a vanilla U-Net (missing or mis-shaped: "
            f"{', '.join(missing[:5])}). Write it with save_vanilla_unet."
        )
    model.load_state_dict(keep, strict=False)
    return model
