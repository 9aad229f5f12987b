"""Fine-tuning: task heads, the trainer (:func:`fit` with a :class:`TrainConfig`), losses
and the paper's metrics.

:class:`TrainConfig` loads without torch (the command line builds its options from it);
the other names load the trainer, torch and torchmetrics on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from radiologynet.train.config import TrainConfig

if TYPE_CHECKING:
    from radiologynet.train.heads import BoneAgeRegressor, build_model, loss_for
    from radiologynet.train.loop import evaluate, fit
    from radiologynet.train.metrics import PredictionMetrics
    from radiologynet.train.preemption import TrainingInterrupted
    from radiologynet.train.state import FitResult

_LAZY = {
    "BoneAgeRegressor": "heads",
    "build_model": "heads",
    "loss_for": "heads",
    "evaluate": "loop",
    "fit": "loop",
    "PredictionMetrics": "metrics",
    "TrainingInterrupted": "preemption",
    "FitResult": "state",
}

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"radiologynet.train.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
