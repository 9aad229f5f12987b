"""Dice and IoU of binary masks, per image and over a whole set.

Per image, an image whose prediction and target are both empty scores 1 (nothing to find,
nothing found). A set has two summaries, and their names say which: the *mean* of the
images' Dice/IoU (``crop_dice``/``crop_iou`` on LUNA16's nodule crops: the library's
measure of the paper's Table 2, fixed central crops thresholded at 0.5) and the *pooled*
Dice/IoU (``pooled_dice``/``pooled_iou``: the true/false positives and false negatives of
every pixel summed first, then one Dice). They differ: pooling weights large nodules more.
``pooled_recall`` is the authors' LUNA16 early-stopping value (on full slices).

:class:`MidRangeDiceIoU` is the authors' own crop measure for comparison: each crop's
prediction thresholded at the middle of its own range, as their PNG round trip did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from radiologynet._optional import require

Metric = require("torchmetrics", "segmentation metrics").Metric


def _binarise(x: torch.Tensor, threshold: float) -> torch.Tensor:
    return x.bool() if x.dtype == torch.bool else x >= threshold


def confusion(
    prediction: torch.Tensor, target: torch.Tensor, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


def dice_per_image(
    prediction: torch.Tensor, target: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """Dice of each image, ``(N,)`` float64."""
    return _dice(*confusion(prediction, target, threshold))


def iou_per_image(
    prediction: torch.Tensor, target: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """IoU (Jaccard) of each image, ``(N,)`` float64."""
    return _iou(*confusion(prediction, target, threshold))


def _keys(unit: str) -> tuple[str, str]:
    if not unit.isidentifier():
        raise ValueError(f"unit {unit!r} must be a word like 'crop' or 'slice'")
    return f"{unit}_dice", f"{unit}_iou"


@dataclass
class SegmentationMeter:
    """Accumulates batches; :meth:`compute` gives both summaries of a set: the mean over
    images of each image's Dice/IoU (``<unit>_dice``, ``<unit>_iou``; the paper's Table 2
    with ``unit="crop"``) and the Dice/IoU of all pixels pooled (``pooled_dice``,
    ``pooled_iou``)."""

    threshold: float = 0.5
    unit: str = "image"
    tp: int = 0
    fp: int = 0
    fn: int = 0
    per_image_dice: list[float] = field(default_factory=list)
    per_image_iou: list[float] = field(default_factory=list)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predictions (bool masks or probabilities) and targets."""
        tp, fp, fn = confusion(prediction.detach().cpu(), target.detach().cpu(), self.threshold)
        self.tp += int(tp.sum())
        self.fp += int(fp.sum())
        self.fn += int(fn.sum())
        self.per_image_dice += _dice(tp, fp, fn).tolist()
        self.per_image_iou += _iou(tp, fp, fn).tolist()

    def compute(self) -> dict[str, float]:
        """``{"<unit>_dice", "<unit>_iou"}`` (mean per image) and ``{"pooled_dice",
        "pooled_iou"}`` (pixels pooled over the set)."""
        tp, fp, fn = (torch.tensor(v) for v in (self.tp, self.fp, self.fn))
        n = max(len(self.per_image_dice), 1)
        dice_key, iou_key = _keys(self.unit)
        return {
            dice_key: sum(self.per_image_dice) / n,
            iou_key: sum(self.per_image_iou) / n,
            "pooled_dice": float(_dice(tp, fp, fn)),
            "pooled_iou": float(_iou(tp, fp, fn)),
        }


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> float:
    """``numerator / denominator``, 0 when the denominator is 0 (the authors' ``or 1``)."""
    return float(numerator) / max(float(denominator), 1.0)


class DiceIoU(Metric):
    """torchmetrics metric over logits. ``compute()`` returns both summaries, named by
    what they are: ``<unit>_dice`` / ``<unit>_iou``, the mean over images of each image's
    Dice and IoU at a fixed ``threshold`` (``unit="crop"`` on LUNA16's central 64 x 64
    validation crops: the library's Table 2 measure), and ``pooled_dice`` /
    ``pooled_iou`` / ``pooled_recall`` / ``pooled_precision``, of all the set's pixels
    pooled (the authors stopped training on ``pooled_recall`` over full slices). States
    are sums, so they reduce across processes."""

    full_state_update = False

    def __init__(self, threshold: float = 0.5, unit: str = "image", **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        self.keys = _keys(unit)
        for name in ("tp", "fp", "fn", "dice_sum", "iou_sum", "images"):
            self.add_state(
                name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )

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
        dice_key, iou_key = self.keys
        return {
            dice_key: float(self.dice_sum) / images,
            iou_key: float(self.iou_sum) / images,
            "pooled_dice": float(_dice(self.tp, self.fp, self.fn)),
            "pooled_iou": float(_iou(self.tp, self.fp, self.fn)),
            "pooled_recall": _ratio(self.tp, self.tp + self.fn),
            "pooled_precision": _ratio(self.tp, self.tp + self.fp),
        }


def mid_range_masks(probabilities: torch.Tensor) -> torch.Tensor:
    """Each image's prediction thresholded at the middle of its own range,
    ``p >= (min + max) / 2``; an image whose probabilities are all equal gives an empty
    mask. This is what the authors' evaluation did: it drew each crop with matplotlib's
    ``imshow`` (grey colormap, scaled to the crop's own minimum and maximum), saved it as a
    PNG and thresholded the PNG at half grey."""
    flat = probabilities.flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    middle = ((low + high) / 2).view(-1, *([1] * (probabilities.dim() - 1)))
    varies = (high > low).view_as(middle)
    return (probabilities >= middle) & varies


class MidRangeDiceIoU(Metric):
    """The authors' LUNA16 crop measure, for comparison with :class:`DiceIoU`: each
    crop's prediction thresholded at the middle of its own range
    (:func:`mid_range_masks`), not at 0.5, so any crop with some contrast gets a mask.
    ``compute()`` gives ``<unit>_dice`` / ``<unit>_iou``, the mean over crops; a crop whose
    prediction and target are both empty has no score there (0 / 0) and is left out of
    the mean (pandas' mean skips it; the averaging script is not published). The
    authors' crops were cut at random offsets; give this metric such crops
    (:meth:`radiologynet.data.benchmarks.luna16.LUNA16.offset_crops`). Their PNGs were
    also resampled to the figure's size, which this metric does not imitate."""

    full_state_update = False

    def __init__(self, unit: str = "crop", **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.keys = _keys(unit)
        for name in ("dice_sum", "iou_sum", "scored"):
            self.add_state(
                name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of logits and 0/1 masks."""
        tp, fp, fn = confusion(mid_range_masks(torch.sigmoid(logits.float())), target)
        scored = (tp + fp + fn) > 0
        self.dice_sum += _dice(tp, fp, fn)[scored].sum()
        self.iou_sum += _iou(tp, fp, fn)[scored].sum()
        self.scored += scored.sum()

    def compute(self) -> dict[str, float]:
        dice_key, iou_key = self.keys
        if float(self.scored) == 0:
            return {dice_key: math.nan, iou_key: math.nan}
        return {
            dice_key: float(self.dice_sum / self.scored),
            iou_key: float(self.iou_sum / self.scored),
        }
