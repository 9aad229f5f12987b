"""The ten RadiologyNET architectures and the timm models that reproduce them exactly.

Every other list of models in the project (hubconf, docs tables, tests, the CLI) is read
from :data:`ARCHITECTURES`; adding an architecture is one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from radiologynet.errors import UnknownModelError

#: How random weights and new heads start (:func:`radiologynet.create_model`'s
#: ``init_scheme``): ``"torchvision"``, the authors' (torchvision's initialisation, new heads
#: as a fresh ``nn.Linear``; the paper mode's), or ``"timm"`` (timm's own).
INIT_SCHEMES = ("torchvision", "timm")


@dataclass(frozen=True)
class Architecture:
    """One backbone of the paper and how it maps onto timm.

    Attributes:
        name: the paper's architecture name as used by this library (``"resnet50"``).
        timm_name: the registered timm model that is numerically identical to the
            authors' torchvision network.
        original_name: the authors' wrapper/archive name (``"ResNet50"`` for
            ``ResNet50.tar.gz`` holding ``ResNet50.pth``).
        input_size: the square input side the weights were pretrained at.
        model_args: extra keyword arguments timm needs for exactness (MobileNetV3's
            BatchNorm eps).
        first_conv: dotted name of the first convolution (for ``in_chans`` adaptation).
        classifier: dotted name of the classification layer (reset for ``num_classes``).
        gradcam_layer: dotted name of the module Grad-CAM should hook.
        pretrain_lr: the learning rate the authors pretrained this backbone with.
        torchvision_name: the torchvision builder the authors used.
        paper_drop_rate: the dropout the authors fine-tuned with (torchvision's heads:
            EfficientNet 0.2 before the new Linear, MobileNetV3 0.2 in its classifier,
            VGG16 0.5 twice in the 25088-4096-4096-C head, InceptionV3 0.5 before
            ``fc``; ResNets and DenseNet121 none). timm's default is 0.
        paper_drop_path_rate: torchvision's stochastic depth (EfficientNet: 0.2, rising
            linearly over the blocks as timm's ``drop_path_rate`` does). timm's default is 0.
    """

    name: str
    timm_name: str
    original_name: str
    input_size: int
    first_conv: str
    classifier: str
    gradcam_layer: str
    pretrain_lr: float
    torchvision_name: str
    model_args: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    paper_drop_rate: float = 0.0
    paper_drop_path_rate: float = 0.0

    @property
    def paper_regularisation(self) -> dict[str, float]:
        """The timm keyword arguments that give the authors' dropout and stochastic depth
        (``drop_rate``, ``drop_path_rate``; only those that are not 0)."""
        values = {"drop_rate": self.paper_drop_rate, "drop_path_rate": self.paper_drop_path_rate}
        return {k: v for k, v in values.items() if v}

    @property
    def model_args_dict(self) -> dict[str, object]:
        """``model_args`` as a plain dict (for timm and JSON)."""
        return dict(self.model_args)


def _arch(**kwargs: object) -> Architecture:
    model_args = kwargs.pop("model_args", {})
    return Architecture(model_args=MappingProxyType(dict(model_args)), **kwargs)  # type: ignore[arg-type]


_MNV3_ARGS = {"bn_eps": 1e-3, "bn_momentum": 0.01}

ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType(
    {
        a.name: a
        for a in (
            _arch(
                name="resnet18",
                timm_name="resnet18",
                original_name="ResNet18",
                input_size=224,
                first_conv="conv1",
                classifier="fc",
                gradcam_layer="layer4",
                pretrain_lr=1e-4,
                torchvision_name="resnet18",
            ),
            _arch(
                name="resnet34",
                timm_name="resnet34",
                original_name="ResNet34",
                input_size=224,
                first_conv="conv1",
                classifier="fc",
                gradcam_layer="layer4",
                pretrain_lr=1e-4,
                torchvision_name="resnet34",
            ),
            _arch(
                name="resnet50",
                timm_name="resnet50",
                original_name="ResNet50",
                input_size=224,
                first_conv="conv1",
                classifier="fc",
                gradcam_layer="layer4",
                pretrain_lr=1e-4,
                torchvision_name="resnet50",
            ),
            _arch(
                name="vgg16",
                timm_name="vgg16",
                original_name="VGG16",
                input_size=224,
                first_conv="features.0",
                classifier="head.fc",
                gradcam_layer="features.29",
                pretrain_lr=1e-4,
                torchvision_name="vgg16",
                paper_drop_rate=0.5,
            ),
            _arch(
                name="efficientnet_b3",
                timm_name="efficientnet_b3",
                original_name="EfficientNetB3",
                input_size=300,
                first_conv="conv_stem",
                classifier="classifier",
                gradcam_layer="bn2",
                pretrain_lr=1e-4,
                torchvision_name="efficientnet_b3",
                paper_drop_rate=0.2,
                paper_drop_path_rate=0.2,
            ),
            _arch(
                name="efficientnet_b4",
                timm_name="efficientnet_b4",
                original_name="EfficientNetB4",
                input_size=380,
                first_conv="conv_stem",
                classifier="classifier",
                gradcam_layer="bn2",
                pretrain_lr=1e-3,
                torchvision_name="efficientnet_b4",
                paper_drop_rate=0.2,
                paper_drop_path_rate=0.2,
            ),
            _arch(
                name="inception_v3",
                timm_name="inception_v3",
                original_name="InceptionV3",
                input_size=299,
                first_conv="Conv2d_1a_3x3.conv",
                classifier="fc",
                gradcam_layer="Mixed_7c",
                pretrain_lr=1e-3,
                torchvision_name="inception_v3",
                paper_drop_rate=0.5,
            ),
            _arch(
                name="densenet121",
                timm_name="densenet121",
                original_name="DenseNet121",
                input_size=224,
                first_conv="features.conv0",
                classifier="classifier",
                gradcam_layer="features",
                pretrain_lr=1e-4,
                torchvision_name="densenet121",
            ),
            _arch(
                name="mobilenet_v3_small",
                timm_name="mobilenetv3_small_100",
                original_name="MobileNetV3Small",
                input_size=224,
                first_conv="conv_stem",
                classifier="classifier",
                gradcam_layer="blocks",
                pretrain_lr=1e-4,
                torchvision_name="mobilenet_v3_small",
                model_args=_MNV3_ARGS,
                paper_drop_rate=0.2,
            ),
            _arch(
                name="mobilenet_v3_large",
                timm_name="mobilenetv3_large_100",
                original_name="MobileNetV3Large",
                input_size=224,
                first_conv="conv_stem",
                classifier="classifier",
                gradcam_layer="blocks",
                pretrain_lr=1e-4,
                torchvision_name="mobilenet_v3_large",
                model_args=_MNV3_ARGS,
                paper_drop_rate=0.2,
            ),
        )
    }
)

_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        **{a.timm_name: a.name for a in ARCHITECTURES.values()},
        **{a.original_name.lower(): a.name for a in ARCHITECTURES.values()},
        **{a.name.replace("_", ""): a.name for a in ARCHITECTURES.values()},
    }
)


def list_models() -> list[str]:
    """The architecture names of the zoo, in the paper's order."""
    return list(ARCHITECTURES)


def get_architecture(name: str) -> Architecture:
    """Look up an architecture by its name, its timm name or the authors' name.

    Raises:
        UnknownModelError: when ``name`` is none of those; the message lists the valid ones.
    """
    key = name.strip()
    if key in ARCHITECTURES:
        return ARCHITECTURES[key]
    alias = _ALIASES.get(key.lower())
    if alias is not None:
        return ARCHITECTURES[alias]
    raise UnknownModelError(
        f"Unknown architecture {name!r}. Valid names: {', '.join(ARCHITECTURES)} "
        "(timm names such as 'mobilenetv3_small_100' are accepted too)."
    )
