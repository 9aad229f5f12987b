"""Fine-tuning: task heads, the trainer (:func:`fit`) and the paper's metrics."""

from radiologynet.train.heads import BoneAgeRegressor, build_model, loss_for
from radiologynet.train.metrics import PredictionMetrics, metric_names
from radiologynet.train.trainer import FitResult, evaluate, fit

__all__ = [
    "BoneAgeRegressor",
    "FitResult",
    "PredictionMetrics",
    "build_model",
    "evaluate",
    "fit",
    "loss_for",
    "metric_names",
]
