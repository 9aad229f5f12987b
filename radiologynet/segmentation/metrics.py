"""Dice and IoU of binary masks, per image and over a whole set.

Per image, an image whose prediction and target are both empty scores 1 (nothing to find,
nothing found). Over the set, the true/false positives and false negatives of every pixel
are pooled first (the set's Dice is not the mean of the images' Dice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from radiologynet._optional import require

Metric = require("torchmetrics", "segmentation metrics").Metric


def _binarise(x: torch.Tensor, threshold: float) -> torch.Tensor:
    return x.bool() if x.dtype == torch.bool else x >= threshold


def confusion(prediction: torch.Tensor, target: torch.Tensor,
              threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image true positives, false positives and false negatives (each ``(N,)``).

    ``prediction`` is a bool mask or probabilities (``>= threshold``); ``target`` a 0/1 or
    bool mask of the same shape.
    """
    p = _binarise(prediction, threshold).flatten(1)
    t = _binarise(target, 0.5).flatten(1)
    tp = (p & t).sum(1)
    fp = (p & ~t).sum(1)
    fn = (~p & t).sum(1)
    return tp, fp, fn


def _dice(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    denominator = (2 * tp + fp + fn).double()
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), 1.0)


def _iou(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    denominator = (tp + fp + fn).double()
    return torch.where(denominator > 0, tp / denominator.clamp(min=1), 1.0)


def dice_per_image(prediction: torch.Tensor, target: torch.Tensor,
                   threshold: float = 0.5) -> torch.Tensor:
    """Dice of each image, ``(N,)`` float64."""
    return _dice(*confusion(prediction, target, threshold))


def iou_per_image(prediction: torch.Tensor, target: torch.Tensor,
                  threshold: float = 0.5) -> torch.Tensor:
    """IoU (Jaccard) of each image, ``(N,)`` float64."""
    return _iou(*confusion(prediction, target, threshold))


@dataclass
class SegmentationMeter:
    """Accumulates batches; :meth:`compute` gives the set's Dice/IoU (pooled pixels) and the
    mean per-image Dice/IoU."""

    threshold: float = 0.5
    tp: int = 0
    fp: int = 0
    fn: int = 0
    per_image_dice: list[float] = field(default_factory=list)
    per_image_iou: list[float] = field(default_factory=list)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predictions (bool masks or probabilities) and targets."""
        tp, fp, fn = confusion(prediction.detach().cpu(), target.detach().cpu(),
                               self.threshold)
        self.tp += int(tp.sum())
        self.fp += int(fp.sum())
        self.fn += int(fn.sum())
        self.per_image_dice += _dice(tp, fp, fn).tolist()
        self.per_image_iou += _iou(tp, fp, fn).tolist()

    def compute(self) -> dict[str, float]:
        """``{"dice", "iou"}`` over the set and ``{"dice_mean", "iou_mean"}`` per image."""
        tp, fp, fn = (torch.tensor(v) for v in (self.tp, self.fp, self.fn))
        n = max(len(self.per_image_dice), 1)
        return {
            "dice": float(_dice(tp, fp, fn)), "iou": float(_iou(tp, fp, fn)),
            "dice_mean": sum(self.per_image_dice) / n, "iou_mean": sum(self.per_image_iou) / n,
        }


class DiceIoU(Metric):
    """torchmetrics metric over logits: ``compute()`` returns ``{"dice", "iou"}`` over the
    set (pooled pixels; the paper's numbers) and ``{"dice_per_image", "iou_per_image"}``
    (mean over images). States are sums, so they reduce across processes."""

    full_state_update = False

    def __init__(self, threshold: float = 0.5, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        for name in ("tp", "fp", "fn", "dice_sum", "iou_sum", "images"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64),
                           dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of logits and 0/1 masks."""
        tp, fp, fn = confusion(torch.sigmoid(logits.float()) >= self.threshold, target)
        self.tp += tp.sum()
        self.fp += fp.sum()
        self.fn += fn.sum()
        self.dice_sum += _dice(tp, fp, fn).sum()
        self.iou_sum += _iou(tp, fp, fn).sum()
        self.images += tp.numel()

    def compute(self) -> dict[str, float]:
        images = max(float(self.images), 1.0)
        return {"dice": float(_dice(self.tp, self.fp, self.fn)),
                "iou": float(_iou(self.tp, self.fp, self.fn)),
                "dice_per_image": float(self.dice_sum) / images,
                "iou_per_image": float(self.iou_sum) / images}
