"""Encoder U-Nets over the zoo's backbones, and their entry point :func:`create_unet`.

The encoder is timm's ``features_only`` version of the registry architecture, loaded from
the same converted classification file as :func:`radiologynet.create_model` (no separate
download). Two decoders:

- ``decoder="smp"`` (default): segmentation-models-pytorch's ``Unet`` with the
  ``tu-<timm name>`` encoder (decoder widths 256-128-64-32-16), light and maintained;
- ``decoder="paper"``: the authors' LUNA16 U-Net (:mod:`._paper_unet`: every encoder stage
  a skip, one decoder block per stage, the paper's 284.4M / 39.4M / 191.8M parameters with
  ResNet50 / VGG16 / EfficientNetB4), for reproduction; its encoder keeps the authors'
  stochastic depth (EfficientNet: 0.2).

Every U-Net returns logits; apply a sigmoid at inference (:func:`predict_mask`), the losses
take logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from radiologynet.errors import CheckpointFormatError, InvalidArgumentError
from radiologynet.models._backbone import (
    WeightsArg,
    encoder_kwargs,
    resolve_backbone_weights,
    weights_file,
)
from radiologynet.models._folder import model_type, read_config
from radiologynet.models._hub import ResolvedWeights
from radiologynet.models._init import torchvision_random_state
from radiologynet.models._paper_unet import PaperEncoder, PaperUNet
from radiologynet.models._registry import Architecture, get_architecture
from radiologynet.models._vanilla_unet import (
    RECON_RECORDS,
    VANILLA_ARCH,
    VanillaUNet,
    get_unet_weights,
    load_vanilla_unet,
    not_released_error,
)
from radiologynet.models._weights import WeightRecord, is_random_init, looks_like_path

DECODERS = ("smp", "paper")
#: Registry architectures that cannot be U-Net encoders, and why.
UNSUPPORTED_ENCODERS = {
    "inception_v3": "its unpadded convolutions give feature maps that are not exact halves "
    "of each other (157, 76, 37, 18, 8 at 320 px), so no skip lines up",
}


class UNet(nn.Module):
    """A segmentation network that accepts any input size.

    The input is zero-padded on the bottom and right to a multiple of ``stride`` (the
    encoder's total downsampling) and the logits are cropped back, so odd sizes such as
    65 x 47 work (the paper's EfficientNetB4 U-Net failed at 380 px: 95 vs 96).

    Attributes:
        net: the wrapped network (``smp.Unet``, :class:`PaperUNet` or :class:`VanillaUNet`).
        encoder: the timm ``features_only`` encoder (``None`` for the vanilla U-Net).
        stride: the multiple inputs are padded to.
        decoder: ``"smp"``, ``"paper"`` or ``"vanilla"``.
        radiologynet_arch / radiologynet_weights: the registry architecture and the
            weight record of the encoder (``None`` when random or a user's file).
    """

    def __init__(
        self,
        net: nn.Module,
        encoder: nn.Module | None,
        stride: int,
        decoder: str,
        arch: Architecture | None = None,
        record: object | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.stride = stride
        self.decoder = decoder
        self.radiologynet_arch = arch
        self.radiologynet_weights = record
        # views into ``net``, not second registrations: the timm module, and what gives
        # its stage outputs (the paper's :class:`PaperEncoder`, or the module itself)
        self._encoder = [encoder]
        self._features = [getattr(net, "encoder", None) if decoder == "paper" else encoder]

    @property
    def encoder(self) -> nn.Module | None:
        """The timm module of the encoder inside ``net`` (its tensors are named as in the
        classification model's file)."""
        return self._encoder[0]

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = -x.shape[-2] % self.stride
        pad_w = -x.shape[-1] % self.stride
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        return self.net(self._pad(x))[..., :height, :width]

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature maps for ``x`` (padded as in :meth:`forward`), one per
        stage: the classification backbone's ``features_only`` output (smp decoder) or the
        stages of the authors' encoder (paper decoder, :class:`PaperEncoder`)."""
        features = self._features[0]
        if features is None:
            raise InvalidArgumentError("The vanilla U-Net has no pretrained encoder.")
        return list(features(self._pad(x)))


def _smp_unet(
    arch: Architecture,
    in_chans: int,
    num_classes: int,
    resolved: ResolvedWeights | None,
    drop_path_rate: float,
) -> tuple[nn.Module, nn.Module, int]:
    net = smp.Unet(
        f"tu-{arch.timm_name}",
        encoder_weights=True if resolved is not None else None,
        in_channels=in_chans,
        classes=num_classes,
        **encoder_kwargs(arch, resolved, drop_path_rate),
    )
    encoder = net.encoder.model
    return net, encoder, max(encoder.feature_info.reduction())


def _paper_unet(
    arch: Architecture,
    in_chans: int,
    num_classes: int,
    resolved: ResolvedWeights | None,
    drop_path_rate: float,
) -> tuple[nn.Module, nn.Module, int]:
    # the authors' random encoder is torchvision's network as torchvision initialises it
    # (their UNet._init_weights ran before any layer existed, so it set nothing); drawn
    # first, as theirs was
    body = torchvision_random_state(arch, in_chans) if resolved is None else None
    backbone = timm.create_model(
        arch.timm_name,
        in_chans=in_chans,
        pretrained=resolved is not None,
        **encoder_kwargs(arch, resolved, drop_path_rate),
    )
    if body is not None:
        missing, unexpected = backbone.load_state_dict(body, strict=False)
        if unexpected or any(not k.startswith(f"{arch.classifier}.") for k in missing):
            raise RuntimeError(f"torchvision's {arch.name} does not fit: {missing} {unexpected}")
    net = PaperUNet(PaperEncoder(backbone, in_chans), in_chans=in_chans, num_classes=num_classes)
    return net, backbone, net.stride


def create_unet(
    encoder: str | None,
    weights: WeightsArg = None,
    *,
    in_chans: int = 3,
    num_classes: int = 1,
    decoder: Literal["smp", "paper"] = "smp",
    drop_path_rate: float | None = None,
) -> UNet:
    """A U-Net whose encoder is a zoo backbone with the zoo's weights.

    Args:
        encoder: a registry architecture (``"resnet50"``, ``"vgg16"``,
            ``"efficientnet_b4"``, ...) or ``None`` for the paper's vanilla U-Net.
        weights: ``None``/``"random"`` for random initialisation, a weight tag of the
            encoder (``"radiologynet"``, ``"radiologynet-ct"``, ``"imagenet"``), a
            :class:`~radiologynet.models._weights.WeightRecord`, or a path to a weights folder /
            ``.safetensors`` file in timm layout. For the vanilla U-Net: ``None`` or a
            folder written by reconstruction pretraining.
        in_chans: input channels (1 sums the first convolution's RGB filters).
        num_classes: output channels (logits).
        decoder: ``"smp"`` (default) or ``"paper"`` (the authors' LUNA16 U-Net); ignored
            for the vanilla U-Net.
        drop_path_rate: the encoder's stochastic depth (timm's ``drop_path_rate``).
            ``None``: the authors' with the paper decoder (EfficientNet 0.2, as
            torchvision's ``efficientnet_b4`` keeps it; others none), timm's (none) with
            the smp decoder.

    Returns:
        a :class:`UNet` returning logits of shape ``(N, num_classes, H, W)``.

    Raises:
        RadiologyNetError: bad names, tags or files (``UnknownModelError``,
            ``UnknownWeightsError``, ``WeightsNotReleasedError``, ``WeightsNotFoundError``,
            ``CheckpointFormatError``).
        InvalidArgumentError: an unknown decoder, an unsupported encoder, or a
            classifier weight record given to the vanilla U-Net.
    """
    if encoder is None or encoder in ("unet", "vanilla"):
        return _vanilla(weights, in_chans, num_classes)
    if decoder not in DECODERS:
        raise InvalidArgumentError(
            f"Unknown decoder {decoder!r}; use one of {', '.join(DECODERS)}."
        )
    arch = get_architecture(encoder)
    if arch.name in UNSUPPORTED_ENCODERS:
        raise InvalidArgumentError(
            f"{arch.name} cannot be a U-Net encoder: {UNSUPPORTED_ENCODERS[arch.name]}. "
            "Use another backbone (resnet50, vgg16, efficientnet_b4, ...)."
        )
    resolved = resolve_backbone_weights(arch, weights)
    if drop_path_rate is None:
        drop_path_rate = arch.paper_drop_path_rate if decoder == "paper" else 0.0
    build = _smp_unet if decoder == "smp" else _paper_unet
    net, encoder_module, stride = build(arch, in_chans, num_classes, resolved, drop_path_rate)
    record = resolved.record if resolved is not None else None
    return UNet(net, encoder_module, stride, decoder, arch=arch, record=record)


def _vanilla(weights: WeightsArg, in_chans: int, num_classes: int) -> UNet:
    if (
        isinstance(weights, str)
        and not is_random_init(weights)
        and (
            weights in {r.tag for r in RECON_RECORDS}  # a known tag wins over a folder
            or not looks_like_path(weights)
        )
    ):
        weights = get_unet_weights(weights)
    if isinstance(weights, WeightRecord) and weights.arch == VANILLA_ARCH:
        raise not_released_error(weights)
    if isinstance(weights, WeightRecord):
        raise InvalidArgumentError(
            f"{weights.full_name} is a weight of the {weights.arch} classifier; the vanilla "
            f"U-Net takes None or a reconstruction weights folder. For a U-Net with a "
            f"{weights.arch} encoder use create_unet({weights.arch!r}, weights=...)."
        )
    if is_random_init(weights):
        net = VanillaUNet(in_chans=in_chans, num_classes=num_classes)
    else:
        net = load_vanilla_unet(weights, in_chans=in_chans, num_classes=num_classes)
    return UNet(net, None, net.stride, "vanilla")


def unet_from_model_name(
    name: str, weights: WeightsArg = None, *, in_chans: int = 3, num_classes: int = 1
) -> UNet:
    """A U-Net from a benchmark model name: ``unet`` (vanilla), ``unet-<arch>`` (smp
    decoder) or ``unet-<arch>-paper`` (the paper's decoder)."""
    if name in ("unet", "unet-vanilla"):
        return create_unet(None, weights, in_chans=in_chans, num_classes=num_classes)
    if not name.startswith("unet-"):
        raise InvalidArgumentError(
            f"Segmentation model {name!r} must be 'unet', 'unet-<architecture>' or "
            "'unet-<architecture>-paper' (e.g. unet-resnet50)."
        )
    body = name[len("unet-") :]
    decoder = "smp"
    if body.endswith("-paper"):
        body, decoder = body[: -len("-paper")], "paper"
    return create_unet(body, weights, in_chans=in_chans, num_classes=num_classes, decoder=decoder)  # type: ignore[arg-type]


@torch.no_grad()
def predict_mask(model: nn.Module, images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Binary masks (bool, ``(N, C, H, W)``) for a batch: sigmoid of the logits, then
    ``>= threshold``. Puts ``model`` in eval mode."""
    model.eval()
    return torch.sigmoid(model(images)) >= threshold


def load_unet(path: str | Path) -> UNet:
    """A trained U-Net back from a weights folder: a ``model_type: "task"`` folder the
    protocol runner writes for a segmentation task (``<run>/model/``: ``config.json``
    naming the encoder's zoo architecture and the decoder, ``model.safetensors`` of the
    whole :class:`UNet`), or a ``"vanilla_unet"`` folder (reconstruction pretraining, a
    vanilla run). Input channels and classes are read from the tensors.

    Raises:
        WeightsNotFoundError / CheckpointFormatError: no such folder, or not a U-Net.
    """
    file = weights_file(path)
    config_path = file.parent / "config.json"
    config = read_config(file.parent)
    if config is None:
        raise CheckpointFormatError(f"{file.parent} has no config.json; it is not a U-Net folder.")
    kind = model_type(config, file.parent)
    if kind == "vanilla_unet":
        net = load_vanilla_unet(file.parent)
        return UNet(net, None, net.stride, "vanilla")
    decoder = config.get("decoder")
    if kind != "task" or decoder not in DECODERS or not config.get("encoder"):
        what = config.get("task_model") or config.get("architecture") or kind
        raise CheckpointFormatError(
            f"{config_path} describes a {what!r} ({kind}), not an encoder U-Net; load a "
            "timm model with radiologynet.create_model(ARCH, weights=PATH)."
        )
    arch = get_architecture(str(config["encoder"]))
    state = load_file(str(file))
    prefix = "net.encoder.model."  # both: smp's TimmUniversalEncoder, PaperEncoder
    wanted = (prefix + arch.first_conv + ".weight").replace(".", "_")
    first = next((v for k, v in state.items() if k.replace(".", "_") == wanted), None)
    head = "net.segmentation_head.0.weight" if decoder == "smp" else "net.head.weight"
    if first is None or head not in state:
        raise CheckpointFormatError(
            f"{file} does not hold a {decoder} U-Net with a {arch.name} encoder."
        )
    net = create_unet(
        arch.name, None, in_chans=first.shape[1], num_classes=state[head].shape[0], decoder=decoder
    )  # type: ignore[arg-type]
    try:
        net.load_state_dict(state, strict=True)  # keys are "net.*": the wrapped network
    except RuntimeError as err:
        raise CheckpointFormatError(
            f"{file} does not fit the U-Net it describes: {str(err).splitlines()[0]}"
        ) from err
    return net
