"""What a :func:`~radiologynet.train.fit` run carries from epoch to epoch and returns:
:class:`FitState` (saved in the checkpoint), :class:`FitResult` and the early-stopping rule
(:class:`EarlyStopping`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from radiologynet.errors import RadiologyNetError


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        best_epoch: the epoch whose weights were kept (1-based; "epochs to best").
        epochs_run: epochs trained in total (over all resumptions).
        val: validation metrics of the best epoch (``loss`` and the task's metrics).
        test: test metrics of the best weights (``None`` without a test set).
        history: one dict per epoch (the lines of ``log.jsonl``).
        emissions: ``{"energy_kwh", "co2_kg", "duration_s"}`` with ``track_emissions``.
        stopped_early: whether early stopping ended the run before ``max_epochs``.
        status: ``finished``, or ``diverged`` when the training loss became NaN/inf
            (``diverged`` then says where; ``val``/``test`` are those of the best
            weights before it, if any).
    """

    best_epoch: int
    epochs_run: int
    val: dict[str, float]
    test: dict[str, float] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    emissions: dict[str, float] | None = None
    stopped_early: bool = False
    status: str = "finished"
    diverged: str | None = None


@dataclass
class FitState:
    """The resumable progress of a run (saved in ``checkpoint.pt``).

    ``epoch`` counts finished epochs; ``step`` the batches already trained of the next
    one (non-zero in a checkpoint written mid-epoch by the time interval or a signal).
    ``status`` is ``running``, ``completed`` or ``diverged``.
    """

    epoch: int = 0
    step: int = 0
    loss_sum: list[float] = field(default_factory=lambda: [0.0, 0.0])
    train_time: float = 0.0
    augment_state: torch.Tensor | None = None
    best_score: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    best_val: dict[str, float] = field(default_factory=dict)
    stop_best_score: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    diverged: str | None = None
    emissions: dict[str, float] | None = None


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if mode == "min" else value > best


def _value(val_result: dict[str, float], name: str) -> float:
    score = val_result.get(name)
    if score is None:
        raise RadiologyNetError(
            f"fit: monitor {name!r} is not among the validation values {sorted(val_result)}"
        )
    return score


class EarlyStopping:
    """Tracks the best validation ``monitor`` value (the epoch whose weights are kept); a
    run stops after ``patience`` epochs without improving it, or without improving
    ``stop_monitor`` (better as ``stop_mode`` says) when one is given."""

    def __init__(
        self,
        patience: int,
        monitor: str,
        mode: str,
        stop_monitor: str | None = None,
        stop_mode: str | None = None,
    ) -> None:
        self.patience, self.monitor, self.mode = patience, monitor, mode
        self.stop_monitor, self.stop_mode = stop_monitor, stop_mode or mode

    def update(self, state: FitState, epoch: int, val_result: dict[str, float]) -> bool:
        """Record epoch ``epoch``'s validation; returns whether it is the new best."""
        score = _value(val_result, self.monitor)
        best = _improved(score, state.best_score, self.mode)
        if best:
            state.best_score, state.best_epoch = score, epoch
            state.best_val = dict(val_result)
        if self.stop_monitor is None:
            improved = best
        else:
            stop_score = _value(val_result, self.stop_monitor)
            improved = _improved(stop_score, state.stop_best_score, self.stop_mode)
            if improved:
                state.stop_best_score = stop_score
        state.bad_epochs = 0 if improved else state.bad_epochs + 1
        return best

    def should_stop(self, state: FitState) -> bool:
        """Whether the patience is used up."""
        return state.bad_epochs >= self.patience
