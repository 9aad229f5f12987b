"""``probe(...)``: the whole frozen-feature evaluation of several initialisations on the
same images, and the files it writes."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from radiologynet._atomic import atomic_write_json, atomic_write_text, make_shared_dir
from radiologynet._version import __version__
from radiologynet.analysis import stats
from radiologynet.analysis.probe import compare, scoring
from radiologynet.analysis.probe import methods as probes
from radiologynet.analysis.probe.features import SPLITS, FeatureSet, align, read_features
from radiologynet.errors import FeatureFileError, InvalidArgumentError

#: The probes of each task kind, in the order they run (the defaults: all of them).
METHODS = {"classification": ("logreg", "knn", "fewshot"), "regression": ("ridge",)}
#: Train / val / test shares of the split made when the files have none.
SPLIT_RATIOS = (0.6, 0.2, 0.2)
#: The columns of ``probe.csv``.
TABLE_COLUMNS = ("features", "method", "metric", "value", "ci_low", "ci_high")


@dataclass(frozen=True)
class ProbeResult:
    """What :func:`probe` found.

    Attributes:
        names: the feature sets, the first being the one asked about.
        task: ``"classification"`` or ``"regression"``.
        table: the rows of ``probe.csv`` (:data:`TABLE_COLUMNS`).
        comparisons: the rows of ``comparison.csv`` (paired bootstrap per method and
            metric; Mann-Whitney per few-shot size).
        fewshot: one row per few-shot draw and metric (``features``, ``n``, ``draw``,
            ``metric``, ``value``).
        summary: the answer in words (``summary.txt``).
        split: how the images were split (from the files, or made and how).
        details: what each probe chose (``C``, ``alpha``, ``k``) and the files' metadata.
        files: what was written, by kind (``table``, ``figure``...), when ``out`` was given.
    """

    names: tuple[str, ...]
    task: str
    table: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    fewshot: list[dict[str, Any]]
    summary: str
    split: str
    details: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class _Settings:
    methods: tuple[str, ...]
    metric: str
    seed: int
    n_resamples: int
    c_values: tuple[float, ...]
    k: int
    temperature: float
    shots: tuple[int, ...]
    draws: int
    alphas: tuple[float, ...]
    alpha: float


def probe(
    features: Sequence[str | os.PathLike[str] | FeatureSet],
    out: str | os.PathLike[str] | None = None,
    *,
    names: Sequence[str | None] | None = None,
    methods: Sequence[str] | None = None,
    metric: str | None = None,
    task: str = "auto",
    seed: int = 0,
    n_resamples: int = stats.N_RESAMPLES,
    c_values: Sequence[float] = probes.DEFAULT_C_VALUES,
    k: int = probes.DEFAULT_K,
    temperature: float = probes.DEFAULT_TEMPERATURE,
    shots: Sequence[int] = probes.DEFAULT_SHOTS,
    draws: int = probes.DEFAULT_DRAWS,
    alphas: Sequence[float] = probes.DEFAULT_ALPHAS,
    alpha: float = stats.ALPHA,
    threads: int | None = probes.DEFAULT_THREADS,
    progress: bool = True,
) -> ProbeResult:
    """Do these weights help on my data? Probe frozen features of several
    initialisations of the same images and compare them.

    Args:
        features: one feature file (``radiologynet embed``'s parquet) or
            :class:`FeatureSet` per initialisation; the first is the one asked about, the
            others its baselines (e.g. radiologynet, imagenet, random).
        out: a folder for ``probe.csv``, ``comparison.csv``, ``fewshot.csv``,
            ``split.csv``, ``probe.png``, ``summary.txt`` and ``probe.json``; ``None``
            writes nothing.
        names: what to call each feature set (default: its weights' name, else the stem).
        methods: the probes (default all of the task's: ``logreg``, ``knn``, ``fewshot``
            for classes, ``ridge`` for a continuous label).
        metric: the metric of the summary's verdict (``accuracy`` / ``mae``).
        task: ``"classification"``, ``"regression"``, or ``"auto"`` (float labels are a
            regression target).
        seed: the split made when the files have none, the few-shot draws and the
            bootstrap resamples.
        n_resamples: bootstrap resamples of the test images.
        c_values, alphas: the grids swept on the validation split (logistic regression's
            ``C``, ridge's ``alpha``).
        k, temperature: the k-NN probe's neighbours and softmax temperature.
        shots, draws: the few-shot curve's images per class and seeded draws per point.
        alpha: the significance level of the comparisons.
        threads: BLAS/OpenMP threads of the fits (default 1, fastest on shared cores;
            ``None``: the libraries' default, for a machine to yourself with many cores).

    Returns:
        A :class:`ProbeResult`.

    Raises:
        FeatureFileError: unreadable files, or files for different images or labels.
        InvalidArgumentError: a setting out of range or a method the task has not.
    """
    sets = _load(features, names)
    kind = _task_kind(sets[0], task)
    settings = _settings(kind, methods, metric, seed, n_resamples, c_values, k, temperature,
                         shots, draws, alphas, alpha)  # fmt: skip
    return _probe(sets, kind, settings, out, threads, progress)


def _probe(
    sets: list[FeatureSet],
    kind: str,
    settings: _Settings,
    out: str | os.PathLike[str] | None,
    threads: int | None,
    progress: bool,
) -> ProbeResult:
    """:func:`probe` after its arguments are checked: split, probe, score, compare, write."""
    split_names, split_note = assign_splits(sets[0], kind, settings.seed)
    classes, targets = _encode(sets[0].labels, kind)
    with probes.limit_threads(threads):
        outputs, details = _run_probes(sets, split_names, targets, len(classes), settings, progress)
    table, distributions, draws_rows = _score(outputs, split_names, targets, len(classes), settings)
    result = _result(sets, kind, classes, split_names, split_note, table, distributions,
                     draws_rows, details, settings)  # fmt: skip
    if out is None:
        return result
    files = write_outputs(result, Path(out), sets, split_names, settings)
    return ProbeResult(**{**result.__dict__, "files": files})


def _load(
    features: Sequence[str | os.PathLike[str] | FeatureSet], names: Sequence[str | None] | None
) -> list[FeatureSet]:
    if isinstance(features, (str, os.PathLike, FeatureSet)):
        features = [features]
    names = list(names) if names is not None else [None] * len(features)
    if len(names) != len(features):
        raise InvalidArgumentError(f"names: {len(names)} names for {len(features)} feature files")
    sets = [
        f if isinstance(f, FeatureSet) else read_features(f, name=n)
        for f, n in zip(features, names, strict=True)
    ]
    defaults = [f.name for f, n in zip(sets, names, strict=True) if n is None and f.source]
    if len(set(defaults)) < len(defaults):  # e.g. two archs' radiologynet weights: the stems
        sets = [
            replace(f, name=Path(f.source).stem) if n is None and f.source else f
            for f, n in zip(sets, names, strict=True)
        ]
    return align(sets)


#: Numeric labels with more distinct values than this are a regression target under
#: ``task="auto"`` (bone age in months); fewer are class names ("0", "1").
REGRESSION_MIN_VALUES = 20


def _numbers(labels: np.ndarray) -> np.ndarray | None:
    """The labels as floats, or ``None`` when one is not a number."""
    try:
        values = np.asarray([float(v) for v in labels], dtype=float)
    except (TypeError, ValueError):
        return None
    return values if np.isfinite(values).all() else None


def _task_kind(features: FeatureSet, task: str) -> str:
    """``classification`` or ``regression``: ``task``, or under ``auto`` regression for
    numeric labels with more than :data:`REGRESSION_MIN_VALUES` distinct values or any
    fraction."""
    if task not in ("auto", "classification", "regression"):
        raise InvalidArgumentError(f"task must be auto, classification or regression, got {task!r}")
    labels = features.labels
    missing = sum(v is None or (isinstance(v, float) and np.isnan(v)) for v in labels)
    if missing:
        raise FeatureFileError(
            f"{features.source or features.name}: {missing} images have no label; a probe "
            "needs every image labelled (embed labelled data: a class folder, a CSV with "
            "labels, or --task)"
        )
    numbers = _numbers(labels)
    if task == "regression" and numbers is None:
        raise FeatureFileError(
            f"{features.source or features.name}: labels are not all numbers (e.g. "
            f"{labels[0]!r}); a regression probe needs a numeric label"
        )
    if task != "auto":
        return task
    if numbers is not None and (
        len(np.unique(numbers)) > REGRESSION_MIN_VALUES or (numbers != np.round(numbers)).any()
    ):
        return "regression"
    return "classification"


def _settings(
    kind: str,
    methods_: Sequence[str] | None,
    metric: str | None,
    seed: int,
    n_resamples: int,
    c_values: Sequence[float],
    k: int,
    temperature: float,
    shots: Sequence[int],
    draws: int,
    alphas: Sequence[float],
    alpha: float,
) -> _Settings:
    allowed = METHODS[kind]
    chosen = tuple(methods_) if methods_ else allowed
    wrong = [m for m in chosen if m not in allowed]
    if wrong or not chosen:
        raise InvalidArgumentError(
            f"methods: {', '.join(wrong) or 'none'} cannot probe a {kind} label; "
            f"choose from {', '.join(allowed)}"
        )
    metrics = (
        scoring.CLASSIFICATION_METRICS if kind == "classification" else scoring.REGRESSION_METRICS
    )
    metric = metric or metrics[0]
    if metric not in metrics:
        raise InvalidArgumentError(
            f"metric {metric!r}: a {kind} probe reports {', '.join(metrics)}"
        )
    for name, value, least in (
        ("seed", seed, 0),
        ("n_resamples", n_resamples, 1),
        ("k", k, 1),
        ("draws", draws, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise InvalidArgumentError(f"{name} must be an integer >= {least}, got {value!r}")
    if not temperature > 0 or not 0 < alpha < 1:
        raise InvalidArgumentError(
            f"temperature must be > 0 and alpha in (0, 1); got {temperature!r}, {alpha!r}"
        )
    for name, grid in (("c_values", c_values), ("alphas", alphas)):
        if not grid or any(not float(v) > 0 for v in grid):
            raise InvalidArgumentError(f"{name} must be positive numbers, got {list(grid)!r}")
    if not shots or any(isinstance(n, bool) or int(n) != n or n < 1 for n in shots):
        raise InvalidArgumentError(f"shots must be integers >= 1, got {list(shots)!r}")
    return _Settings(
        chosen,
        metric,
        int(seed),
        int(n_resamples),
        tuple(float(c) for c in c_values),
        int(k),
        float(temperature),
        tuple(sorted({int(n) for n in shots})),
        int(draws),
        tuple(float(a) for a in alphas),
        float(alpha),
    )


def assign_splits(features: FeatureSet, kind: str, seed: int) -> tuple[np.ndarray, str]:
    """Each image's split, and how it was decided: the file's own, with a validation
    split carved from train when it has none, or a seeded stratified 60/20/20 split
    (per class, or per target decile for regression) when the file has no split.

    Raises:
        FeatureFileError: a file split without train or test images.
    """
    from radiologynet.data.splits import Sample, split_per_class, stratify_labels

    rng = np.random.default_rng([seed, 0x5B17])
    labels = features.labels
    if kind == "classification":
        index = {c: i for i, c in enumerate(sorted({str(v) for v in labels}))}
        samples = [
            Sample(str(p), index[str(v)]) for p, v in zip(features.paths, labels, strict=True)
        ]
    else:
        samples = [Sample(str(p), float(v)) for p, v in zip(features.paths, labels, strict=True)]
    strata = stratify_labels(samples, "multiclass" if kind == "classification" else kind)
    if features.splits is None:
        splits = np.empty(len(samples), dtype=object)
        parts = split_per_class(list(range(len(samples))), strata, SPLIT_RATIOS, rng)
        for name, part in zip(SPLITS, parts, strict=True):
            splits[part] = name
        shares = "/".join(f"{r:.0%}" for r in SPLIT_RATIOS)
        return splits, f"made: seeded ({seed}) stratified {shares} train/val/test"
    splits = features.splits.copy()
    absent = [s for s in ("train", "test") if not (splits == s).any()]
    if absent:
        raise FeatureFileError(
            f"{features.source or features.name}: no {' or '.join(absent)} images in its split "
            "column; embed data with train and test images, or without a split column (the "
            "probe then makes one)"
        )
    if (splits == "val").any():
        return splits, "from the feature files"
    train = np.flatnonzero(splits == "train")
    _, val = split_per_class(list(train), [strata[i] for i in train], (0.75, 0.25), rng)
    splits[val] = "val"
    return splits, f"from the feature files; val made: seeded ({seed}) stratified 25 % of train"


def _encode(labels: np.ndarray, kind: str) -> tuple[tuple[str, ...], np.ndarray]:
    if kind == "regression":
        return (), np.asarray([float(v) for v in labels], dtype=float)
    classes = tuple(sorted({str(v) for v in labels}))
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.asarray([index[str(v)] for v in labels], dtype=np.int64)


def _split_of(
    features: FeatureSet, splits: np.ndarray, targets: np.ndarray, n_classes: int
) -> probes.Split:
    parts = {s: splits == s for s in SPLITS}
    x = features.embeddings
    return probes.Split(
        x[parts["train"]],
        targets[parts["train"]],
        x[parts["val"]],
        targets[parts["val"]],
        x[parts["test"]],
        targets[parts["test"]],
        n_classes,
    )


def _run_probes(
    sets: Sequence[FeatureSet],
    splits: np.ndarray,
    targets: np.ndarray,
    n_classes: int,
    settings: _Settings,
    progress: bool,
) -> tuple[dict[tuple[str, str], Any], dict[str, Any]]:
    """Every method on every feature set: ``{(features, method): Scores or {n: [Scores]}}``
    and what each chose."""
    tqdm = __import__("tqdm").tqdm
    jobs = [(f, m) for f in sets for m in settings.methods]
    outputs: dict[tuple[str, str], Any] = {}
    details: dict[str, Any] = {}
    for features, method in tqdm(jobs, desc="probe", disable=None if progress else True):
        split = _split_of(features, splits, targets, n_classes)
        if method == "logreg":
            output = probes.logreg(split, settings.c_values)
        elif method == "knn":
            output = probes.knn(split, settings.k, settings.temperature)
        elif method == "ridge":
            output = probes.ridge(split, settings.alphas)
        else:
            output = probes.fewshot(
                split, settings.shots, settings.draws, settings.seed, settings.c_values
            )
        outputs[(features.name, method)] = output
        details[f"{features.name}/{method}"] = (
            {str(n): draws[0].settings["C"] for n, draws in output.items()}
            if method == "fewshot"
            else output.settings
        )
    return outputs, details


def _score(
    outputs: Mapping[tuple[str, str], Any],
    splits: np.ndarray,
    targets: np.ndarray,
    n_classes: int,
    settings: _Settings,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], np.ndarray], list[dict[str, Any]]]:
    """``probe.csv``'s rows, the bootstrap distributions behind them and the few-shot
    draws' rows."""
    y_test = targets[splits == "test"]
    table, distributions, draws = [], {}, []
    for (name, method), output in outputs.items():
        if method == "fewshot":
            draws.extend(_fewshot_rows(name, output, y_test, n_classes))
            continue
        functions = scoring.metric_functions(
            y_test, output.predictions, output.probabilities, n_classes
        )
        for metric, function in functions.items():
            value = float(function(scoring.whole(y_test.size))[0])
            spread = stats.bootstrap_distribution(
                function, y_test.size, n_resamples=settings.n_resamples, seed=settings.seed
            )
            low, high = stats.percentile_interval(spread)
            table.append(
                dict(zip(TABLE_COLUMNS, (name, method, metric, value, low, high), strict=True))
            )
            distributions[(name, method, metric)] = spread
    table.extend(_fewshot_table(draws))
    return table, distributions, draws


def _fewshot_rows(
    name: str, curve: Mapping[int, list[Any]], y_test: np.ndarray, n_classes: int
) -> list[dict[str, Any]]:
    rows = []
    for n, per_draw in curve.items():
        for scores in per_draw:
            functions = scoring.metric_functions(
                y_test, scores.predictions, scores.probabilities, n_classes
            )
            for metric, function in functions.items():
                value = float(function(scoring.whole(y_test.size))[0])
                rows.append(
                    {
                        "features": name,
                        "n": n,
                        "draw": scores.settings["draw"],
                        "metric": metric,
                        "value": value,
                    }
                )
    return rows


def _fewshot_table(draws: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``probe.csv`` rows of the few-shot curve: ``fewshot-<n>``, the mean over the draws
    and the 2.5th-97.5th percentile of the draws as its interval."""
    keys = dict.fromkeys((d["features"], d["n"], d["metric"]) for d in draws)
    rows = []
    for name, n, metric in keys:
        values = [
            d["value"] for d in draws if (d["features"], d["n"], d["metric"]) == (name, n, metric)
        ]
        low, high = stats.percentile_interval(values)
        rows.append(
            dict(
                zip(
                    TABLE_COLUMNS,
                    (name, f"fewshot-{n}", metric, float(np.mean(values)), low, high),
                    strict=True,
                )
            )
        )
    return rows


def _result(
    sets: Sequence[FeatureSet],
    kind: str,
    classes: tuple[str, ...],
    splits: np.ndarray,
    split_note: str,
    table: list[dict[str, Any]],
    distributions: Mapping[tuple[str, str, str], np.ndarray],
    draws: list[dict[str, Any]],
    details: dict[str, Any],
    settings: _Settings,
) -> ProbeResult:
    names = [f.name for f in sets]
    metrics = (
        scoring.CLASSIFICATION_METRICS if kind == "classification" else scoring.REGRESSION_METRICS
    )
    estimates = {(r["features"], r["method"], r["metric"]): r["value"] for r in table}
    paired = [m for m in settings.methods if m != "fewshot"]
    comparisons = compare.paired_comparisons(
        names, estimates, distributions, paired, metrics, settings.alpha
    )
    comparisons += compare.fewshot_comparisons(draws, names, metrics, settings.alpha)
    shown = [m for m in settings.methods if m != "fewshot"]
    shown += [f"fewshot-{n}" for n in sorted({d["n"] for d in draws})[-1:]]
    context = {
        "task": kind,
        "metric": settings.metric,
        "n_test": int((splits == "test").sum()),
        "classes": classes,
        "split": split_note,
        "methods": shown,
    }
    summary = compare.summary_text(names, table, comparisons, context)
    details = {
        "chosen": details,
        "classes": list(classes),
        "images": {s: int((splits == s).sum()) for s in SPLITS},
        "settings": {k: v for k, v in settings.__dict__.items()},
        "files": {f.name: {"source": f.source, "metadata": f.metadata} for f in sets},
        "version": __version__,
    }
    return ProbeResult(tuple(names), kind, table, comparisons, draws, summary, split_note, details)


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_outputs(
    result: ProbeResult,
    out: Path,
    sets: Sequence[FeatureSet],
    splits: np.ndarray,
    settings: _Settings,
) -> dict[str, Path]:
    """Write the probe's files into ``out`` (each atomically; other files left alone);
    returns them by kind."""
    make_shared_dir(out)
    files = {
        "table": atomic_write_text(out / "probe.csv", _csv_text(result.table, TABLE_COLUMNS)),
        "comparison": atomic_write_text(out / "comparison.csv", _csv_text(result.comparisons)),
        "split": atomic_write_text(
            out / "split.csv",
            _csv_text(
                [{"path": p, "split": s} for p, s in zip(sets[0].paths, splits, strict=True)]
            ),
        ),
        "summary": atomic_write_text(out / "summary.txt", result.summary + "\n"),
        "json": atomic_write_json(
            out / "probe.json",
            {
                "names": list(result.names),
                "task": result.task,
                "split": result.split,
                **result.details,
            },
        ),
    }
    if result.fewshot:
        files["fewshot"] = atomic_write_text(out / "fewshot.csv", _csv_text(result.fewshot))
        files["figure"] = _figure(result, settings, splits, out / "probe.png")
    return files


def _figure(result: ProbeResult, settings: _Settings, splits: np.ndarray, path: Path) -> Path:
    from radiologynet.analysis.probe import figure

    per_class = ((splits == "train") | (splits == "val")).sum() / max(
        1, len(result.details["classes"])
    )
    drawn = figure.fewshot_figure(
        result.fewshot, result.table, result.names, settings.metric, float(per_class)
    )
    return figure.save(drawn, path)
