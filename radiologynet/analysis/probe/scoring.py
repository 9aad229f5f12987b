"""The probe's metrics, computed on many bootstrap resamples of the test images at once.

Each metric takes the test targets, the probe's output and ``rows``: a ``(resamples,
images)`` array of test-image indices (one resample per row; ``whole(n)`` is the test set
itself) and returns one value per row. With ``rows = whole(n)`` they equal scikit-learn's
``accuracy_score``, ``f1_score(average="macro", labels=range(classes))``,
``roc_auc_score(multi_class="ovr", average="macro")`` and ``mean_absolute_error``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from radiologynet._optional import require

#: Classification metrics, in the order the tables list them.
CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "auroc")
#: Regression metrics.
REGRESSION_METRICS = ("mae",)
#: Metrics where lower is better.
LOWER_IS_BETTER = frozenset({"mae"})


def whole(n: int) -> np.ndarray:
    """The one "resample" that is the whole test set, as a ``(1, n)`` row."""
    return np.arange(n)[None, :]


def accuracy(y: np.ndarray, predictions: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The share of correct predictions in each resample."""
    return np.mean(y[rows] == predictions[rows], axis=1)


def macro_f1(
    y: np.ndarray, predictions: np.ndarray, rows: np.ndarray, n_classes: int
) -> np.ndarray:
    """The unweighted mean of the per-class F1 over all ``n_classes`` classes (a class
    neither present nor predicted in a resample scores 0, as scikit-learn's
    ``zero_division=0``)."""
    truth, guess = y[rows], predictions[rows]
    scores = np.zeros((rows.shape[0], n_classes))
    for c in range(n_classes):
        is_true, is_guess = truth == c, guess == c
        hits = np.sum(is_true & is_guess, axis=1)
        both = np.sum(is_true, axis=1) + np.sum(is_guess, axis=1)
        scores[:, c] = np.divide(2 * hits, both, out=np.zeros(rows.shape[0]), where=both > 0)
    return scores.mean(axis=1)


def auroc(y: np.ndarray, probabilities: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One-vs-rest AUROC averaged over the classes (the Mann-Whitney form on average
    ranks, so tied scores count half). A class absent from a resample (or present in all
    of it) is left out of that resample's average; NaN when no class is scorable."""
    rankdata = require("scipy.stats", "the probe's AUROC").rankdata
    truth = y[rows]
    per_class = []
    for c in range(probabilities.shape[1]):
        positive = truth == c
        n_pos = positive.sum(axis=1)
        n_neg = rows.shape[1] - n_pos
        ranks = rankdata(probabilities[rows, c], axis=1)
        u = np.sum(ranks * positive, axis=1) - n_pos * (n_pos + 1) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class.append(np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan))
    stacked = np.stack(per_class, axis=1)
    scorable = ~np.isnan(stacked)
    counts = scorable.sum(axis=1)
    total = np.where(scorable, stacked, 0.0).sum(axis=1)
    return np.divide(total, counts, out=np.full(rows.shape[0], np.nan), where=counts > 0)


def mae(y: np.ndarray, predictions: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The mean absolute error in each resample."""
    return np.mean(np.abs(y[rows] - predictions[rows]), axis=1)


def metric_functions(
    y: np.ndarray,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    n_classes: int,
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each metric of the task as a function of the resample rows alone (what
    :func:`radiologynet.analysis.stats.bootstrap_distribution` calls)."""
    if probabilities is None:
        return {"mae": lambda rows: mae(y, predictions, rows)}
    return {
        "accuracy": lambda rows: accuracy(y, predictions, rows),
        "macro_f1": lambda rows: macro_f1(y, predictions, rows, n_classes),
        "auroc": lambda rows: auroc(y, probabilities, rows),
    }
