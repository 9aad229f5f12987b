"""Task heads: the model a downstream task trains, and the loss that goes with it.

- multiclass: the backbone's classifier reset to ``num_classes`` logits, cross-entropy;
- binary: one logit, ``BCEWithLogitsLoss`` (the paper's sigmoid + BCE, numerically stable);
- regression (bone age): backbone features + sex -> dense layers -> months, MSE. The
  paper's head flattens the un-pooled feature map (131k-153k features for EfficientNetB3 /
  InceptionV3); the default here pools it first (``head="pooled"``), ``head="paper"``
  reproduces the authors' layout.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from radiologynet.errors import RadiologyNetError
from radiologynet.models import create_model
from radiologynet.models._registry import get_architecture
from radiologynet.train.config import HEADS


class BoneAgeRegressor(nn.Module):
    """Backbone features concatenated with sex (through ``Linear(1, 128)``), then
    ``Linear(-> 1000)``, ReLU, ``Linear(1000, 1000)``, ReLU, ``Linear(1000, 1)``: months.

    ``backbone`` must return features with its classifier removed: pooled ``(B, F)`` or a
    feature map ``(B, C, H, W)`` (flattened here, as the paper's head).
    """

    def __init__(self, backbone: nn.Module, num_features: int, hidden: int = 1000) -> None:
        super().__init__()
        self.backbone = backbone
        self.sex = nn.Linear(1, 128)
        self.regressor = nn.Sequential(
            nn.Linear(num_features + 128, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 1),
        )
        # keep the zoo metadata reachable (preprocessing, weight record)
        for attr in ("pretrained_cfg", "radiologynet_weights", "radiologynet_arch"):
            if hasattr(backbone, attr):
                setattr(self, attr, getattr(backbone, attr))

    def forward(self, image: torch.Tensor, sex: torch.Tensor) -> torch.Tensor:
        """Predicted bone age in months, shape ``(B, 1)``; ``sex`` is 1 for male, 0 female."""
        features = torch.flatten(self.backbone(image), 1)
        sex_features = self.sex(sex.reshape(-1, 1).to(features.dtype))
        return self.regressor(torch.cat([features, sex_features], dim=1))


def pooled_features(backbone: nn.Module) -> int:
    """The width of what a timm model built with ``num_classes=0`` returns: its
    ``head_hidden_size`` (MobileNetV3's and VGG's pre-logits layers widen the pooled
    ``num_features``: 576 -> 1024, 512 -> 4096), else ``num_features``."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


def build_model(
    arch: str,
    weights: str | Path | None,
    *,
    kind: str,
    num_classes: int,
    in_chans: int = 3,
    head: str = "pooled",
    input_size: int | None = None,
    **timm_kwargs: object,
) -> nn.Module:
    """The model a classification/regression task trains (all layers trainable).

    Args:
        arch: a zoo architecture (``"resnet50"``).
        weights: ``None`` (random), a tag (``"radiologynet"``, ``"imagenet"``) or a path.
        kind: ``multiclass`` (``num_classes`` logits), ``binary`` (one logit) or
            ``regression`` (the bone-age head, inputs ``(image, sex)``).
        head: for regression, ``"pooled"`` (default) or ``"paper"`` (flattened feature map).
        input_size: the input side, needed to size the paper head's first dense layer.

    Returns:
        an ``nn.Module``; ``model(image)`` or, for regression, ``model(image, sex)``.
    """
    if kind == "multiclass":
        return create_model(
            arch, weights=weights, num_classes=num_classes, in_chans=in_chans, **timm_kwargs
        )
    if kind == "binary":
        return create_model(arch, weights=weights, num_classes=1, in_chans=in_chans, **timm_kwargs)
    if kind != "regression":
        raise RadiologyNetError(
            f"build_model: unknown kind {kind!r} (multiclass, binary, "
            "regression; segmentation tasks bring their own model)"
        )
    if head not in HEADS:
        raise RadiologyNetError(f"Unknown bone-age head {head!r}; choose one of {HEADS}.")
    extra = {"global_pool": ""} if head == "paper" else {}
    backbone = create_model(
        arch, weights=weights, num_classes=0, in_chans=in_chans, **extra, **timm_kwargs
    )
    if head == "pooled":
        num_features = pooled_features(backbone)
    else:
        size = input_size or get_architecture(arch).input_size
        was_training = backbone.training
        backbone.eval()
        with torch.no_grad():
            num_features = int(
                torch.flatten(backbone(torch.zeros(1, in_chans, size, size)), 1).shape[1]
            )
        backbone.train(was_training)
    return BoneAgeRegressor(backbone, num_features)


class SqueezeLoss(nn.Module):
    """Wraps a loss on ``(B,)`` targets for models that output ``(B, 1)``."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs.reshape(-1), target.reshape(-1).to(outputs.dtype))


def loss_for(kind: str) -> nn.Module:
    """The paper's loss for a task kind: cross-entropy, BCE-with-logits on one logit, MSE."""
    if kind == "multiclass":
        return nn.CrossEntropyLoss()
    if kind == "binary":
        return SqueezeLoss(nn.BCEWithLogitsLoss())
    if kind == "regression":
        return SqueezeLoss(nn.MSELoss())
    raise RadiologyNetError(f"No default loss for task kind {kind!r}; pass loss=...")
