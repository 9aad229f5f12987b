"""Segmentation losses and Dice/IoU metrics, checked against scikit-learn."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score

from radiologynet.errors import InvalidArgumentError
from radiologynet.train.losses import BCEDiceLoss, DiceLoss, PaperDiceLoss, get_loss
from radiologynet.train.segmentation_metrics import (
    DiceIoU,
    SegmentationMeter,
    dice_per_image,
    iou_per_image,
)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1, 9, 11, generator=g) * 3
    target = (torch.rand(4, 1, 9, 11, generator=g) > 0.6).float()
    target[3] = 0  # an image without nodule
    return logits, target


def test_metrics_equal_sklearn(batch):
    logits, target = batch
    prediction = torch.sigmoid(logits) >= 0.5
    dice = dice_per_image(prediction, target)
    iou = iou_per_image(prediction, target)
    for i in range(3):
        y_true, y_pred = target[i].flatten().numpy(), prediction[i].flatten().numpy()
        assert dice[i].item() == pytest.approx(f1_score(y_true, y_pred))
        assert iou[i].item() == pytest.approx(jaccard_score(y_true, y_pred))
    pooled_true, pooled_pred = target.flatten().numpy(), prediction.flatten().numpy()
    metric = DiceIoU()
    metric.update(logits[:2], target[:2])
    metric.update(logits[2:], target[2:])
    result = metric.compute()
    assert result["pooled_dice"] == pytest.approx(f1_score(pooled_true, pooled_pred))
    assert result["pooled_iou"] == pytest.approx(jaccard_score(pooled_true, pooled_pred))
    assert result["image_dice"] == pytest.approx(dice.mean().item())
    assert result["image_iou"] == pytest.approx(iou.mean().item())
    crops = DiceIoU(unit="crop")
    crops.update(logits, target)
    assert crops.compute()["crop_iou"] == pytest.approx(iou.mean().item())
    meter = SegmentationMeter(unit="crop")
    meter.update(torch.sigmoid(logits), target)
    assert meter.compute()["pooled_dice"] == pytest.approx(result["pooled_dice"])
    assert meter.compute()["crop_iou"] == pytest.approx(iou.mean().item())


def test_empty_prediction_of_empty_target_scores_one():
    empty = torch.zeros(1, 1, 4, 4)
    assert dice_per_image(empty.bool(), empty).item() == 1.0
    assert iou_per_image(empty.bool(), empty).item() == 1.0


def test_dice_loss_bounds():
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    perfect = (target * 2 - 1) * 50
    assert DiceLoss()(perfect, target).item() < 0.01
    assert DiceLoss()(-perfect, target).item() > 0.9


def test_paper_loss_penalises_false_negatives_more():
    target = torch.zeros(1, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1  # 64 pixels
    missed = target.clone()
    missed[:, :, 4:8, 4:12] = 0  # 32 false negatives
    extra = target.clone()
    extra[:, :, 12:16, 4:12] = 1  # 32 false positives
    to_logits = lambda m: (m * 2 - 1) * 50  # noqa: E731
    loss = PaperDiceLoss()
    assert loss(to_logits(missed), target) > 3 * loss(to_logits(extra), target)
    # plain Dice: missing half is 1/3, an extra half 1/5; the paper's adds 8 x 1/3 vs 0
    assert loss(to_logits(missed), target).item() == pytest.approx(3.0, abs=0.05)  # smooth=1
    assert loss(to_logits(extra), target).item() == pytest.approx(0.2, abs=0.02)
    assert PaperDiceLoss(fn_weight=0)(to_logits(missed), target) == pytest.approx(
        DiceLoss()(to_logits(missed), target).item()
    )


def test_bce_dice_and_registry(batch):
    logits, target = batch
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, target) + DiceLoss()(
        logits, target
    )
    assert BCEDiceLoss()(logits, target).item() == pytest.approx(expected.item())
    assert isinstance(get_loss("paper"), PaperDiceLoss)
    with pytest.raises(InvalidArgumentError, match="focal"):
        get_loss("focal")
    with pytest.raises(InvalidArgumentError, match="shape"):
        DiceLoss()(logits, target[:, :, :5])
