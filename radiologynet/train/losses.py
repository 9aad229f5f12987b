"""Segmentation losses. Every loss takes logits ``(N, 1, H, W)`` and a target mask of the
same shape (0/1), applies the sigmoid itself, and returns a scalar.

- :class:`DiceLoss`: soft Dice, ``1 - (2|P.G| + s) / (|P| + |G| + s)`` per image, averaged.
- :class:`PaperDiceLoss`: the paper's loss (after "Deep Learning with PyTorch", ch. 13):
  soft Dice plus ``fn_weight`` (8) times the soft Dice of the prediction restricted to
  the nodule, which penalises false negatives.
- :class:`BCEDiceLoss`: binary cross-entropy plus soft Dice.

They compute in float32 whatever the logits' dtype (sums over bf16 pixels lose precision).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from radiologynet.errors import InvalidArgumentError


def soft_dice_loss(
    probabilities: torch.Tensor, target: torch.Tensor, smooth: float = 1.0
) -> torch.Tensor:
    """Per-image soft Dice loss (shape ``(N,)``) of probabilities against a mask."""
    dims = tuple(range(1, probabilities.ndim))
    intersection = (probabilities * target).sum(dims)
    total = probabilities.sum(dims) + target.sum(dims)
    return 1 - (2 * intersection + smooth) / (total + smooth)


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.shape != target.shape:
        raise InvalidArgumentError(
            f"Segmentation loss got logits of shape {tuple(logits.shape)} and a target of "
            f"shape {tuple(target.shape)}; they must match (N, 1, H, W)."
        )


class DiceLoss(nn.Module):
    """Soft Dice loss on sigmoid(logits), averaged over the batch."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        return soft_dice_loss(torch.sigmoid(logits.float()), target.float(), self.smooth).mean()


class PaperDiceLoss(nn.Module):
    """The paper's loss: soft Dice + ``fn_weight`` x soft Dice on the nodule region."""

    def __init__(self, fn_weight: float = 8.0, smooth: float = 1.0) -> None:
        super().__init__()
        self.fn_weight = fn_weight
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        probabilities = torch.sigmoid(logits.float())
        target = target.float()
        dice = soft_dice_loss(probabilities, target, self.smooth)
        false_negative = soft_dice_loss(probabilities * target, target, self.smooth)
        return dice.mean() + self.fn_weight * false_negative.mean()


class BCEDiceLoss(nn.Module):
    """Binary cross-entropy (on logits) plus soft Dice."""

    def __init__(self, bce_weight: float = 1.0, smooth: float = 1.0) -> None:
        super().__init__()
        self.bce_weight = bce_weight
        self.dice = DiceLoss(smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return self.bce_weight * bce + self.dice(logits, target)


LOSSES: dict[str, type[nn.Module]] = {
    "dice": DiceLoss,
    "paper": PaperDiceLoss,
    "bce_dice": BCEDiceLoss,
}


def get_loss(name: str) -> nn.Module:
    """A loss by name: ``dice``, ``paper`` (Dice + 8 x false-negative Dice) or
    ``bce_dice``."""
    if name not in LOSSES:
        raise InvalidArgumentError(
            f"Unknown segmentation loss {name!r}; use one of {', '.join(LOSSES)}."
        )
    return LOSSES[name]()
