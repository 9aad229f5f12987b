"""Fine-tuning: task heads, the trainer (:func:`fit` with a :class:`TrainConfig`) and the
paper's metrics."""

from radiologynet.train.config import TrainConfig
from radiologynet.train.heads import BoneAgeRegressor, build_model, loss_for
from radiologynet.train.metrics import PredictionMetrics
from radiologynet.train.trainer import FitResult, TrainingInterrupted, evaluate, fit

__all__ = [
    "BoneAgeRegressor",
    "FitResult",
    "PredictionMetrics",
    "TrainConfig",
    "TrainingInterrupted",
    "build_model",
    "evaluate",
    "fit",
    "loss_for",
]
