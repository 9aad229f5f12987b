"""LUNA16's measures and stopping rule: the library's crop metric (fixed 0.5 threshold),
the authors' mid-range crop metric, the pooled recall they stopped on, and early stopping
on one value while the checkpoint is picked by another."""

from __future__ import annotations

import math

import pytest
import torch

from radiologynet.train.segmentation_metrics import DiceIoU, MidRangeDiceIoU, mid_range_masks
from radiologynet.train.state import EarlyStopping, FitState


def logits(probabilities: torch.Tensor) -> torch.Tensor:
    return torch.logit(probabilities.double()).float()


def test_mid_range_threshold_scores_a_weak_prediction_the_fixed_one_misses():
    """The audit's example: a crop whose probabilities are 0.02 / 0.30 scores IoU 1 through
    the authors' PNG round trip (threshold at the crop's mid-range) and 0 at 0.5."""
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:5, 2:6] = 1
    probabilities = torch.where(target.bool(), 0.30, 0.02)
    fixed = DiceIoU(unit="crop")
    fixed.update(logits(probabilities), target)
    authors = MidRangeDiceIoU(unit="crop")
    authors.update(logits(probabilities), target)
    assert fixed.compute()["crop_iou"] == 0.0
    assert authors.compute()["crop_iou"] == pytest.approx(1.0)
    assert authors.compute()["crop_dice"] == pytest.approx(1.0)


def test_mid_range_masks_constant_crops_are_empty_and_empty_pairs_are_not_scored():
    flat = torch.full((1, 1, 4, 4), 0.9)
    assert not mid_range_masks(flat).any()  # imshow of a constant image: all black
    ramp = torch.linspace(0.1, 0.5, 16).view(1, 1, 4, 4)
    assert mid_range_masks(ramp).sum() == 8  # p >= (0.1 + 0.5) / 2
    metric = MidRangeDiceIoU()
    empty = torch.zeros(1, 1, 4, 4)
    metric.update(logits(flat), empty)  # empty vs empty: 0 / 0, left out
    assert math.isnan(metric.compute()["crop_iou"])
    half = torch.zeros(1, 1, 4, 4)
    half[..., :2, :] = 1
    metric.update(logits(torch.where(half.bool(), 0.6, 0.2)), torch.ones(1, 1, 4, 4))
    assert metric.compute() == pytest.approx({"crop_dice": 2 / 3, "crop_iou": 0.5})


def test_pooled_recall_is_the_authors_stopping_value():
    """tp / (tp + fn) over all pixels of the set (their eval_metrics), 0 with no positive."""
    metric = DiceIoU(unit="mean")
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, 0, :] = 1  # 4 positive pixels, 3 found
    target[1, 0, 1, :2] = 1  # 2 positive pixels, 1 found, plus 2 false positives
    found = torch.zeros(2, 1, 4, 4)
    found[0, 0, 0, :3] = 1
    found[1, 0, 1, 0] = 1
    found[1, 0, 3, :2] = 1
    metric.update(logits(torch.where(found.bool(), 0.9, 0.1)), target)
    values = metric.compute()
    assert values["pooled_recall"] == pytest.approx(4 / 6)
    assert values["pooled_precision"] == pytest.approx(4 / 6)
    assert {"mean_dice", "mean_iou", "pooled_dice", "pooled_iou"} <= set(values)
    nothing = DiceIoU()
    nothing.update(logits(torch.full((1, 1, 2, 2), 0.1)), torch.zeros(1, 1, 2, 2))
    assert nothing.compute()["pooled_recall"] == 0.0


def test_stopping_on_one_value_keeps_the_best_epoch_of_another():
    """The authors' LUNA16 rule: stop 10 epochs after the best full-slice recall, keep the
    epoch with the best crop IoU among all the epochs trained."""
    stopping = EarlyStopping(3, "crop_iou", "max", "slices_pooled_recall", "max")
    state = FitState()
    recall = [0.2, 0.5, 0.4, 0.4, 0.3, 0.1]
    iou = [0.1, 0.2, 0.3, 0.6, 0.2, 0.9]
    stopped_after = None
    for epoch, (r, i) in enumerate(zip(recall, iou, strict=True), start=1):
        stopping.update(state, epoch, {"crop_iou": i, "slices_pooled_recall": r})
        if stopping.should_stop(state):
            stopped_after = epoch
            break
    # recall peaked at epoch 2: three epochs without a better one end the run at epoch 5
    assert stopped_after == 5
    # crop IoU picks epoch 4, which the crop-IoU rule alone would have kept improving past
    assert state.best_epoch == 4 and state.best_val["crop_iou"] == 0.6
    alone = EarlyStopping(3, "crop_iou", "max")
    state = FitState()
    for epoch, (r, i) in enumerate(zip(recall, iou, strict=True), start=1):
        alone.update(state, epoch, {"crop_iou": i, "slices_pooled_recall": r})
    assert not alone.should_stop(state) and state.best_epoch == 6
    with pytest.raises(Exception, match="slices_pooled_recall"):
        stopping.update(FitState(), 1, {"crop_iou": 0.1})
