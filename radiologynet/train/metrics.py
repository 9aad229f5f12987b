"""Metrics as the paper reports them: accuracy, macro precision/recall/F1; MAE, RMSE.

Built on torchmetrics, so that under DistributedDataParallel every rank's predictions are
reduced before ``compute()`` (the validation metrics of a 2-process run equal those of one
process over the same data).
"""

from __future__ import annotations

import torch

from radiologynet._optional import require
from radiologynet.errors import RadiologyNetError

torchmetrics = require("torchmetrics", "training metrics")
Metric, MetricCollection = torchmetrics.Metric, torchmetrics.MetricCollection
MulticlassAccuracy = torchmetrics.classification.MulticlassAccuracy
MulticlassF1Score = torchmetrics.classification.MulticlassF1Score
MulticlassPrecision = torchmetrics.classification.MulticlassPrecision
MulticlassRecall = torchmetrics.classification.MulticlassRecall
MeanAbsoluteError = torchmetrics.regression.MeanAbsoluteError
MeanSquaredError = torchmetrics.regression.MeanSquaredError

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1")
REGRESSION_METRICS = ("mae", "rmse")


class PredictionMetrics(torch.nn.Module):
    """The paper's metrics of one task kind, fed with raw model outputs.

    ``update(outputs, target)`` takes logits (``(B, C)`` multiclass, ``(B, 1)`` binary) or
    predictions (``(B, 1)`` regression); ``compute()`` returns ``{name: float}``. Binary
    tasks are scored as two classes (logit > 0 is positive), so F1 is the macro average over
    both classes, as the paper's.
    """

    def __init__(self, kind: str, num_classes: int = 2) -> None:
        super().__init__()
        self.kind = kind
        if kind in ("multiclass", "binary"):
            classes = num_classes if kind == "multiclass" else 2
            metrics: dict[str, Metric] = {
                "accuracy": MulticlassAccuracy(classes, average="micro"),
                "precision": MulticlassPrecision(classes, average="macro"),
                "recall": MulticlassRecall(classes, average="macro"),
                "f1": MulticlassF1Score(classes, average="macro"),
            }
        elif kind == "regression":
            metrics = {"mae": MeanAbsoluteError(), "rmse": MeanSquaredError(squared=False)}
        else:
            raise RadiologyNetError(
                f"No default metrics for task kind {kind!r}; pass "
                "metrics=... (a torchmetrics Metric returning a dict)"
            )
        self.collection = MetricCollection(metrics, compute_groups=False)

    def update(self, outputs: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate one batch."""
        outputs = outputs.detach().float()
        if self.kind == "multiclass":
            self.collection.update(outputs.argmax(dim=1), target.long())
        elif self.kind == "binary":
            self.collection.update((outputs.reshape(-1) > 0).long(), target.reshape(-1).long())
        else:
            self.collection.update(outputs.reshape(-1), target.reshape(-1).float())

    def compute(self) -> dict[str, float]:
        """The metrics over everything accumulated (across ranks under DDP)."""
        return {name: float(value) for name, value in self.collection.compute().items()}

    def reset(self) -> None:
        """Forget the accumulated batches."""
        self.collection.reset()
