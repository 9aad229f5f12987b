"""Per-image results of a run: ``val_predictions.csv`` and ``test_predictions.csv`` in the
run folder, and the clinical metrics computed from them.

A predictions file has one row per image: ``path`` (relative to the dataset folder where
the image lies under it), ``label`` (the true class name, or the target value for
regression), ``prediction`` (the predicted class name, or value) and, for classification,
one ``score_<class>`` column per class (softmax for multiclass; for a binary task the
sigmoid of its one logit, ``score_<positive>``, and one minus it).

:func:`clinical_metrics` reads nothing but such a table, so the confusion matrix, AUROC,
sensitivity and specificity in ``result.json`` and the report's figures
(:func:`roc_curves`) always agree with the file a reader opens. The maths is
scikit-learn's. Loads no torch: a report reads the files without the framework.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radiologynet._atomic import atomic_write_text
from radiologynet._optional import require
from radiologynet.errors import ResultsFormatError

#: The prefix of the score columns: ``score_<class name>``.
SCORE_PREFIX = "score_"
#: How many significant digits a score or regression value is written with.
DIGITS = 6


@dataclass(frozen=True)
class Predictions:
    """A predictions file in memory.

    Attributes:
        paths: one per image.
        labels / predicted: class indices (classification) or values (regression).
        scores: ``(images, classes)`` probabilities; ``None`` for regression.
        classes: the class names in index order (``()`` for regression).
    """

    paths: tuple[str, ...]
    labels: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray | None
    classes: tuple[str, ...]

    @property
    def is_classification(self) -> bool:
        """Whether the rows are classes with scores (not regression values)."""
        return self.scores is not None


def _number(value: float) -> str:
    return f"{float(value):.{DIGITS}g}"


def class_scores(outputs: np.ndarray, kind: str) -> np.ndarray:
    """The probabilities of raw model outputs: softmax over ``(B, C)`` logits
    (``multiclass``), or ``[1 - p, p]`` with ``p`` the sigmoid of a ``(B, 1)`` logit
    (``binary``); returns ``(B, C)``."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if kind == "binary":
        positive = 1.0 / (1.0 + np.exp(-outputs.reshape(-1)))
        return np.stack([1.0 - positive, positive], axis=1)
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def predictions_csv_text(
    paths: Sequence[str],
    targets: Sequence[float],
    outputs: np.ndarray,
    kind: str,
    classes: Sequence[str] = (),
) -> str:
    """The predictions file of a split as CSV text, from the model's raw ``outputs``
    (``(B, C)`` logits, ``(B, 1)`` binary logit or regression value) and the true
    ``targets`` (class indices or values). A binary image is predicted positive when its
    logit is above 0 (the training metrics' rule)."""
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(paths), -1)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if kind == "regression":
        writer.writerow(["path", "label", "prediction"])
        for path, target, value in zip(paths, targets, outputs[:, 0], strict=True):
            writer.writerow([path, _number(target), _number(value)])
        return buffer.getvalue()
    scores = class_scores(outputs, kind)
    names = list(classes) or [str(i) for i in range(scores.shape[1])]
    if len(names) != scores.shape[1]:
        raise ResultsFormatError(
            f"{len(names)} class names ({names}) for {scores.shape[1]} scores per image"
        )
    predicted = (outputs[:, 0] > 0).astype(int) if kind == "binary" else outputs.argmax(axis=1)
    writer.writerow(["path", "label", "prediction", *(f"{SCORE_PREFIX}{n}" for n in names)])
    for path, target, index, row in zip(paths, targets, predicted, scores, strict=True):
        writer.writerow([path, names[int(target)], names[int(index)], *map(_number, row)])
    return buffer.getvalue()


def write_predictions(path: str | os.PathLike[str], text: str) -> Path:
    """Write a predictions file (:func:`predictions_csv_text`) atomically; returns it."""
    atomic_write_text(Path(path), text)
    return Path(path)


def read_predictions(path: str | os.PathLike[str]) -> Predictions:
    """A predictions file as :class:`Predictions`.

    Raises:
        ResultsFormatError: the file is unreadable, lacks ``path``/``label``/``prediction``,
            or names a class without a score column.
    """
    path = Path(path)
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ResultsFormatError(f"{path}: not a readable predictions file ({err})") from err
    header = rows[0] if rows else []
    if header[:3] != ["path", "label", "prediction"]:
        raise ResultsFormatError(
            f"{path}: a predictions file starts with the columns path,label,prediction; "
            f"found {header[:3]}"
        )
    body = [r for r in rows[1:] if r]
    classes = tuple(h[len(SCORE_PREFIX) :] for h in header[3:] if h.startswith(SCORE_PREFIX))
    paths = tuple(r[0] for r in body)
    if not classes:
        values = np.array([[float(r[1]), float(r[2])] for r in body], dtype=float).reshape(-1, 2)
        return Predictions(paths, values[:, 0], values[:, 1], None, ())
    index = {name: i for i, name in enumerate(classes)}
    try:
        labels = np.array([index[r[1]] for r in body], dtype=int)
        predicted = np.array([index[r[2]] for r in body], dtype=int)
    except KeyError as err:
        raise ResultsFormatError(
            f"{path}: class {err.args[0]!r} has no score column (classes: {list(classes)})"
        ) from None
    scores = np.array([[float(v) for v in r[3 : 3 + len(classes)]] for r in body], dtype=float)
    return Predictions(paths, labels, predicted, scores.reshape(-1, len(classes)), classes)


def roc_curves(table: Predictions) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """The ROC curve of each class against the rest: ``{class: (fpr, tpr, auroc)}``, for
    the classes the table has both positives and negatives of (a binary task: its positive
    class only). Empty for regression."""
    if table.scores is None:
        return {}
    metrics = require("sklearn.metrics", "the per-image metrics of a run")
    chosen = range(len(table.classes))
    if len(table.classes) == 2:
        chosen = range(1, 2)
    curves = {}
    for index in chosen:
        truth = table.labels == index
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = metrics.roc_curve(truth, table.scores[:, index])
        curves[table.classes[index]] = (fpr, tpr, float(metrics.auc(fpr, tpr)))
    return curves


def clinical_metrics(table: Predictions) -> dict[str, Any]:
    """The metrics a clinical reader asks for first, from a predictions table.

    Returns (classification): ``confusion_matrix`` (rows: true class, columns: predicted,
    in the order of ``classes``), ``classes``, ``auroc`` (binary: of the positive class;
    multiclass: the mean of the one-vs-rest AUROCs, ``auroc_per_class``; ``None`` where a
    class has no positive or no negative image) and, for two classes, ``sensitivity`` and
    ``specificity`` of the second class (``None`` when undefined). Regression: ``{}``.
    """
    if table.scores is None:
        return {}
    metrics = require("sklearn.metrics", "the per-image metrics of a run")
    n = len(table.classes)
    matrix = metrics.confusion_matrix(table.labels, table.predicted, labels=list(range(n)))
    curves = roc_curves(table)
    result: dict[str, Any] = {
        "classes": list(table.classes),
        "confusion_matrix": matrix.astype(int).tolist(),
    }
    if n == 2:
        (tn, fp), (fn, tp) = matrix.tolist()
        result["auroc"] = curves[table.classes[1]][2] if curves else None
        result["sensitivity"] = tp / (tp + fn) if tp + fn else None
        result["specificity"] = tn / (tn + fp) if tn + fp else None
        return result
    per_class = {name: curves[name][2] if name in curves else None for name in table.classes}
    defined = [v for v in per_class.values() if v is not None]
    result["auroc"] = float(np.mean(defined)) if len(defined) == n else None
    result["auroc_per_class"] = per_class
    return result
