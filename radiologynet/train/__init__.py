"""Fine-tuning: task heads, the trainer (:func:`fit` with a :class:`TrainConfig`) and the
paper's metrics."""

from radiologynet.train.config import TrainConfig
from radiologynet.train.heads import BoneAgeRegressor, build_model, loss_for
from radiologynet.train.loop import evaluate, fit
from radiologynet.train.metrics import PredictionMetrics
from radiologynet.train.preemption import TrainingInterrupted
from radiologynet.train.state import FitResult

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
