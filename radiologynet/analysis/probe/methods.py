"""The probes: small models trained on frozen features, each scored on the test images.

- :func:`logreg`: DINOv2's linear probe (``dinov2/eval/log_regression.py``): L2-penalised
  multinomial logistic regression (scikit-learn, L-BFGS) on standardised features, ``C``
  picked on the validation split, refit on train + val.
- :func:`knn`: DINOv2's k-NN classifier (``dinov2/eval/knn.py``): cosine similarity of
  L2-normalised features, the ``k`` nearest train + val images vote with weights
  ``softmax(similarity / T)``.
- :func:`fewshot`: logistic regression on ``n`` training images per class, several seeded
  draws per ``n``.
- :func:`ridge`: ridge regression for a continuous target (bone age), ``alpha`` picked on
  the validation split by mean absolute error.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radiologynet._optional import require

#: DINOv2's grid of inverse regularisation strengths: ``10 ** linspace(-6, 5, 45)``.
DINOV2_C_VALUES = tuple(float(c) for c in 10.0 ** np.linspace(-6, 5, 45))
#: The default grid: the same range in half-decade steps (every second DINOv2 value).
#: Neighbouring quarter-decade values differ in validation accuracy by far less than the
#: test interval's width, and the sweep takes half the time.
DEFAULT_C_VALUES = DINOV2_C_VALUES[::2]
#: The ridge penalties swept: ``10 ** linspace(-3, 6, 19)``.
DEFAULT_ALPHAS = tuple(float(a) for a in 10.0 ** np.linspace(-3, 6, 19))
#: DINOv2's k-NN defaults ("20 usually best") and softmax temperature.
DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07
#: Training images per class of the few-shot curve, and seeded draws per point.
DEFAULT_SHOTS = (1, 2, 5, 10, 25)
DEFAULT_DRAWS = 10
#: L-BFGS iterations per fit (DINOv2 uses 1,000 too).
MAX_ITER = 1000
#: BLAS / OpenMP threads of the scikit-learn fits unless asked otherwise. One: the fits
#: are small enough that threads gain little, and on shared cores they lose a lot (a
#: 23-value C sweep on 6,000 x 2,048 features: 9 s with one thread, 52 s with the
#: libraries' default, on 2 cores busy with other work; see benchmarks/probe.py).
DEFAULT_THREADS = 1


def limit_threads(threads: int | None) -> Any:
    """A context manager capping the BLAS and OpenMP threads of scikit-learn's fits at
    ``threads`` (``None``: the libraries' own default)."""
    threadpoolctl = require("threadpoolctl", "the probes")
    return threadpoolctl.threadpool_limits(limits=threads)


@dataclass(frozen=True)
class Split:
    """One feature set's images as the probes see them: features and targets per split
    (targets are class indices, or floats for regression)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 0


@dataclass(frozen=True)
class Scores:
    """A probe's output on the test images.

    Attributes:
        predictions: the predicted class index (or value, for regression) per test image.
        probabilities: ``(test images, classes)`` scores (``None`` for regression).
        settings: what was chosen or used (``C``, ``k``, the draw's images...).
    """

    predictions: np.ndarray
    probabilities: np.ndarray | None
    settings: dict[str, Any] = field(default_factory=dict)


def _standardise(fit_on: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """``arrays`` standardised with the mean and standard deviation of ``fit_on``
    (scikit-learn's StandardScaler: constant features are left centred, not divided)."""
    preprocessing = require("sklearn.preprocessing", "the logistic-regression probe")
    scaler = preprocessing.StandardScaler().fit(fit_on)
    return [scaler.transform(a).astype(np.float32, copy=False) for a in arrays]


def _logistic(c: float, warm_start: bool = False) -> Any:
    linear = require("sklearn.linear_model", "the logistic-regression probe")
    return linear.LogisticRegression(C=c, max_iter=MAX_ITER, warm_start=warm_start)


def sweep_c(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    c_values: Sequence[float],
) -> tuple[float, list[float]]:
    """The ``C`` of ``c_values`` with the best validation accuracy (the smallest, i.e.
    most regularised, on ties), and the accuracy of each. The fits are warm-started from
    the previous ``C`` (in increasing order), which gives the same solutions faster."""
    exceptions = require("sklearn.exceptions", "the logistic-regression probe")
    model = _logistic(1.0, warm_start=True)
    ordered = sorted(float(c) for c in c_values)
    accuracies = []
    with warnings.catch_warnings():
        # a large C on separable data stops at max_iter; its validation score still counts
        warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
        for c in ordered:
            model.set_params(C=c)
            model.fit(x_train, y_train)
            accuracies.append(float(np.mean(model.predict(x_val) == y_val)))
    return ordered[int(np.argmax(accuracies))], accuracies


def logreg(split: Split, c_values: Sequence[float] = DEFAULT_C_VALUES) -> Scores:
    """DINOv2's logistic-regression probe: standardise, sweep ``C`` on the validation
    split, refit on train + val with the best ``C``, score the test images.

    Returns:
        :class:`Scores` with class probabilities; ``settings`` holds ``C`` and the sweep.
    """
    x_train, x_val = _standardise(split.x_train, split.x_train, split.x_val)
    best, accuracies = sweep_c(x_train, split.y_train, x_val, split.y_val, c_values)
    x_all = np.concatenate([split.x_train, split.x_val])
    y_all = np.concatenate([split.y_train, split.y_val])
    x_all, x_test = _standardise(x_all, x_all, split.x_test)
    model = _logistic(best).fit(x_all, y_all)
    return Scores(
        predictions=model.predict(x_test),
        probabilities=_all_classes(model, model.predict_proba(x_test), split.n_classes),
        settings={"C": best, "val_accuracy": max(accuracies), "n_c_values": len(accuracies)},
    )


def _all_classes(model: Any, probabilities: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities with one column per class of the task (a class absent from the
    training images gets probability 0)."""
    full = np.zeros((probabilities.shape[0], n_classes), dtype=np.float64)
    full[:, np.asarray(model.classes_, dtype=int)] = probabilities
    return full


def knn(split: Split, k: int = DEFAULT_K, temperature: float = DEFAULT_TEMPERATURE) -> Scores:
    """DINOv2's weighted k-NN on L2-normalised features, train + val as the memory.

    Each test image's ``k`` most cosine-similar memory images vote for their class with
    weight ``softmax(similarity / temperature)`` over the ``k``; the votes are the class
    probabilities.

    Returns:
        :class:`Scores` with the vote shares as probabilities.
    """
    import torch

    memory = torch.from_numpy(np.concatenate([split.x_train, split.x_val]).astype(np.float32))
    labels = torch.from_numpy(np.concatenate([split.y_train, split.y_val]).astype(np.int64))
    memory = torch.nn.functional.normalize(memory, dim=1)
    queries = torch.nn.functional.normalize(
        torch.from_numpy(split.x_test.astype(np.float32)), dim=1
    )
    k = min(int(k), memory.shape[0])
    votes = []
    for chunk in torch.split(queries, 1024):
        similarity, nearest = (chunk @ memory.T).topk(k, dim=1, largest=True, sorted=True)
        weights = torch.softmax(similarity / temperature, dim=1)
        shares = torch.zeros(chunk.shape[0], split.n_classes, dtype=weights.dtype)
        votes.append(shares.scatter_add_(1, labels[nearest], weights))
    probabilities = torch.cat(votes).double().numpy()
    return Scores(
        predictions=probabilities.argmax(axis=1),
        probabilities=probabilities,
        settings={"k": k, "temperature": float(temperature)},
    )


def draw_shots(y_train: np.ndarray, n: int, n_classes: int, seed: int, draw: int) -> np.ndarray:
    """Indices of ``n`` training images per class for draw ``draw`` (the same images for
    every feature set: the draw depends only on the labels, ``n``, ``seed`` and ``draw``)."""
    rng = np.random.default_rng([seed, n, draw])
    picked = [
        rng.choice(np.flatnonzero(y_train == c), size=n, replace=False) for c in range(n_classes)
    ]
    return np.sort(np.concatenate(picked))


def shots_possible(y_train: np.ndarray, shots: Sequence[int], n_classes: int) -> list[int]:
    """The ``shots`` every class has enough training images for."""
    fewest = min(int(np.sum(y_train == c)) for c in range(n_classes))
    return [n for n in shots if n <= fewest]


def fewshot(
    split: Split,
    shots: Sequence[int] = DEFAULT_SHOTS,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    c_values: Sequence[float] = DEFAULT_C_VALUES,
) -> dict[int, list[Scores]]:
    """Logistic regression on ``n`` training images per class, ``draws`` seeded draws per
    ``n`` of ``shots`` (those every class has enough images for).

    The features are standardised with the whole training split's statistics (its images
    are there, only its labels are scarce). ``C`` is picked per ``n`` on the validation
    split with the first draw and kept for the others.

    Returns:
        ``{n: [Scores per draw]}``; each ``settings`` holds ``C``, ``n`` and ``draw``.
    """
    x_train, x_val, x_test = _standardise(split.x_train, split.x_train, split.x_val, split.x_test)
    return _fewshot_curve(split, x_train, x_val, x_test, shots, draws, seed, c_values)


def _fewshot_curve(
    split: Split,
    x_train: np.ndarray,
    x_val: np.ndarray,
    x_test: np.ndarray,
    shots: Sequence[int],
    draws: int,
    seed: int,
    c_values: Sequence[float],
) -> dict[int, list[Scores]]:
    exceptions = require("sklearn.exceptions", "the few-shot probe")
    curve: dict[int, list[Scores]] = {}
    for n in shots_possible(split.y_train, shots, split.n_classes):
        first = draw_shots(split.y_train, n, split.n_classes, seed, 0)
        c, _ = sweep_c(x_train[first], split.y_train[first], x_val, split.y_val, c_values)
        curve[n] = []
        for draw in range(draws):
            chosen = (
                first if draw == 0 else draw_shots(split.y_train, n, split.n_classes, seed, draw)
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
                model = _logistic(c).fit(x_train[chosen], split.y_train[chosen])
            curve[n].append(
                Scores(
                    predictions=model.predict(x_test),
                    probabilities=_all_classes(model, model.predict_proba(x_test), split.n_classes),
                    settings={"C": c, "n": n, "draw": draw},
                )
            )
    return curve


def ridge(split: Split, alphas: Sequence[float] = DEFAULT_ALPHAS) -> Scores:
    """Ridge regression on standardised features: ``alpha`` picked on the validation
    split by mean absolute error, refit on train + val, predicting the test images.

    Returns:
        :class:`Scores` with the predicted values; ``settings`` holds ``alpha``.
    """
    linear = require("sklearn.linear_model", "the ridge probe")
    x_train, x_val = _standardise(split.x_train, split.x_train, split.x_val)
    errors = []
    ordered = sorted(float(a) for a in alphas)
    for alpha in ordered:
        model = linear.Ridge(alpha=alpha).fit(x_train, split.y_train)
        errors.append(float(np.mean(np.abs(model.predict(x_val) - split.y_val))))
    best = ordered[int(np.argmin(errors))]
    x_all = np.concatenate([split.x_train, split.x_val])
    y_all = np.concatenate([split.y_train, split.y_val])
    x_all, x_test = _standardise(x_all, x_all, split.x_test)
    model = linear.Ridge(alpha=best).fit(x_all, y_all)
    return Scores(
        predictions=model.predict(x_test).astype(float),
        probabilities=None,
        settings={"alpha": best, "val_mae": min(errors)},
    )
