"""Result tables in the shape of the paper's Tables 2-6, and the statistics table.

Per task x model x initialisation: the learning rate with the best mean *validation*
metric, the mean +- std over that setting's runs of every test metric and of the epochs to
convergence (``best_epoch``), and the single best run (the run with the best validation
metric). :func:`to_markdown` / :func:`to_html` bold the best initialisation per metric.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from radiologynet._optional import require
from radiologynet.analysis import stats
from radiologynet.analysis.report.results import (
    RUN_METRICS,
    full_data,
    higher_is_better,
    init_sort_key,
    metric_columns,
    normalise_init,
    primary_metric,
)
from radiologynet.data.tasks import canonical_task_name
from radiologynet.errors import ResultsFormatError
from radiologynet.models._weights import MODALITY_VARIANTS
from radiologynet.paper import PAPER_INITS, paper_results

pd = require("pandas", "sweep reports")

#: The columns that identify one row of a results table.
GROUP_KEYS = ["task", "model", "fraction", "init"]
_LABELS = {
    "f1": "F1",
    "mae": "MAE",
    "rmse": "RMSE",
    "iou": "IoU",
    "dice": "Dice",
    "crop_dice": "Crop Dice",
    "crop_iou": "Crop IoU",
    "pooled_dice": "Pooled Dice",
    "pooled_iou": "Pooled IoU",
    "best_epoch": "Epochs to best",
}
#: The family of the paper's three initialisations in the statistics.
PAPER_FAMILY = "paper"
#: The family of every initialisation found, when there are more than the paper's.
ALL_FAMILY = "all initialisations (not the paper's)"
#: The single-modality RadiologyNET variants (the paper's t-tests).
MODALITY_INITS = tuple(MODALITY_VARIANTS)
#: The paper's metric names where this project's differ (LUNA16's Table 2 reports the
#: mean over validation crops).
PAPER_METRIC_NAMES = {"luna16": {"dice": "crop_dice", "iou": "crop_iou"}}
#: The paper's metrics printed under each other's name.
SWAPPED_IN_PAPER = ("precision", "recall")
#: Why the paper's precision and recall are swapped (shown wherever --paper prints them).
PRECISION_RECALL_NOTE = (
    "The paper's precision and recall are swapped: the authors called scikit-learn's "
    "classification_report(pred, true) with the arguments reversed, so its 'precision' "
    "is the recall and its 'recall' the precision. This report's precision and recall "
    "are the usual ones; paper columns, where shown, print the published numbers as "
    "they are."
)


def metric_label(metric: str) -> str:
    """A metric's name as tables and figures print it (``"f1"`` -> ``"F1"``)."""
    return _LABELS.get(metric, metric.replace("_", " ").capitalize())


def _groups(runs: pd.DataFrame, keys: Sequence[str]):
    return runs.groupby(list(keys), sort=False, dropna=False)  # NaN fraction: full data


def best_lr(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The learning rate of each task x model x fraction x init with the best mean
    validation ``metric`` (default: :func:`primary_metric`).

    Returns:
        One row per setting: ``task, model, fraction, init, lr, val_<metric>`` (the mean).
    """
    metric = metric or primary_metric(runs)
    column = f"val_{metric}"
    if column not in runs:
        raise ResultsFormatError(
            f"No run recorded the validation metric {metric!r}; "
            f"recorded: {', '.join(metric_columns(runs, 'val'))}."
        )
    means = _groups(runs, [*GROUP_KEYS, "lr"])[column].mean().reset_index()
    ascending = not higher_is_better(metric)
    means = means.sort_values(column, ascending=ascending, na_position="last", kind="stable")
    return means.drop_duplicates(GROUP_KEYS).reset_index(drop=True)


def runs_at_best_lr(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The runs of each setting trained with its best learning rate (see :func:`best_lr`)."""
    chosen = best_lr(runs, metric)[[*GROUP_KEYS, "lr"]]
    return runs.merge(chosen, on=[*GROUP_KEYS, "lr"], how="inner")  # NaN matches NaN


def results_table(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The paper-shaped table (numbers, not strings).

    Returns:
        One row per task x model x fraction x init (fraction NaN is the full training
        set, see :func:`~radiologynet.analysis.report.results.full_data`)
        with ``lr, n_runs, val_<metric>`` (mean, used to pick the lr), for every test
        metric ``<m>_mean``/``<m>_std``, ``epochs_mean``/``epochs_std`` (of
        ``best_epoch``), ``best_run`` and ``best_<m>`` (the test metrics of the run with
        the best validation metric). Metrics come from the test split, or from validation
        when no run has test metrics (LUNA16 reports validation only).
    """
    metric = metric or primary_metric(runs)
    split = "test" if metric_columns(runs, "test") else "val"
    names = [m for m in metric_columns(runs, split) if m != "loss"] or ["loss"]
    selected = runs_at_best_lr(runs, metric)
    rows = []
    for key, group in _groups(selected, GROUP_KEYS):
        row: dict[str, object] = dict(zip(GROUP_KEYS, key, strict=True))
        row.update(
            lr=group["lr"].iloc[0],
            n_runs=len(group),
            **{f"val_{metric}": group[f"val_{metric}"].mean()},
        )
        for name in names:
            values = group[f"{split}_{name}"]
            row[f"{name}_mean"], row[f"{name}_std"] = values.mean(), values.std(ddof=1)
        row["epochs_mean"], row["epochs_std"] = (
            group["best_epoch"].mean(),
            group["best_epoch"].std(ddof=1),
        )
        ordered = group.sort_values(
            f"val_{metric}", ascending=not higher_is_better(metric), kind="stable"
        )
        best = ordered.iloc[0]
        row["best_run"] = int(best["run"])
        for name in names:
            row[f"best_{name}"] = best[f"{split}_{name}"]
        row["best_epochs"] = best["best_epoch"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(split=split, metrics=names, selection_metric=metric)
    return _sorted(table)


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    rank = table["init"].map(lambda i: init_sort_key(i)[0])
    order = table.assign(_r=rank).sort_values(
        ["task", "model", "fraction", "_r", "init"],
        ascending=[True, True, False, True, True],
        kind="stable",
        na_position="first",  # the full training set before the fractions
    )
    result = order.drop(columns="_r").reset_index(drop=True)
    result.attrs.update(table.attrs)
    return result


def add_paper_results(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the paper's published numbers beside the user's: ``paper_lr``,
    ``paper_<m>_mean``/``paper_<m>_std`` (and ``paper_epochs_*``), and ``paper_best_<m>``
    where the paper gives its best run, for the task, model and initialisation of each
    full-data row (``baseline`` is ``random``; the paper's percentages, by
    :data:`~radiologynet.paper.PAPER_METRIC_UNITS`, become fractions)."""
    published: dict[tuple[str, str, str], dict[str, object]] = {}
    for result in paper_results():
        task = canonical_task_name(result.task) or result.task  # the paper's pba, luna
        metric = PAPER_METRIC_NAMES.get(task, {}).get(result.metric, result.metric)
        entry = published.setdefault(
            (task, result.model, normalise_init(result.init)), {"paper_lr": result.lr}
        )
        scale = 0.01 if result.unit == "%" else 1.0
        if result.statistic == "best":  # Table 3's single best run
            entry[f"paper_best_{metric}"] = result.value * scale
            continue
        entry[f"paper_{metric}_mean"] = result.value * scale
        entry[f"paper_{metric}_std"] = None if result.std is None else result.std * scale
    extra = [
        published.get((canonical_task_name(r.task) or r.task, r.model, r.init), {}) if full else {}
        for r, full in zip(table.itertuples(), full_data(table), strict=True)
    ]
    merged = pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1)
    merged.attrs.update(table.attrs, paper=True)
    return merged


def shows_swapped_paper_metrics(table: pd.DataFrame) -> bool:
    """Whether ``table`` (with :func:`add_paper_results`) shows precision or recall beside
    the paper's numbers, which needs :data:`PRECISION_RECALL_NOTE` (a reader comparing
    with the paper's tables meets the swap there)."""
    shown = set(table.attrs.get("metrics", []))
    return bool(table.attrs.get("paper")) and any(
        m in shown or f"paper_{m}_mean" in table for m in SWAPPED_IN_PAPER
    )


def emissions_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Energy (kWh), CO2 (kg) and duration summed per task x model x init over the runs
    that recorded codecarbon data; empty when none did."""
    recorded = runs[runs["energy_kwh"].notna()]
    if recorded.empty:
        return pd.DataFrame(
            columns=["task", "model", "init", "n_runs", "energy_kwh", "co2_kg", "duration_s"]
        )
    summed = (
        recorded.groupby(["task", "model", "init"], sort=False)
        .agg(
            n_runs=("run", "size"),
            energy_kwh=("energy_kwh", "sum"),
            co2_kg=("co2_kg", "sum"),
            duration_s=("duration_s", "sum"),
        )
        .reset_index()
    )
    rank = summed["init"].map(lambda i: init_sort_key(i)[0])
    return (
        summed.assign(_r=rank)
        .sort_values(["task", "model", "_r"])
        .drop(columns="_r")
        .reset_index(drop=True)
    )


def metric_column(runs: pd.DataFrame, metric: str, split: str = "test") -> str:
    """The column holding ``metric``: ``<split>_<metric>``, or the run-level
    ``best_epoch`` / ``epochs_run`` (epochs to convergence, the paper's supplementary
    table), falling back to validation when no run has test metrics.

    Raises:
        ResultsFormatError: no run recorded it.
    """
    if metric in RUN_METRICS:
        if runs[metric].notna().any():
            return metric
        raise ResultsFormatError(
            f"No run recorded {metric!r} (the epoch of the best "
            "checkpoint); re-run with a current radiologynet."
        )
    if split == "test" and not metric_columns(runs, "test"):
        split = "val"
    column = f"{split}_{metric}"
    if column not in runs:
        raise ResultsFormatError(
            f"No run recorded {split} {metric!r}; recorded: "
            f"{', '.join([*metric_columns(runs, split), *RUN_METRICS])}."
        )
    return column


def init_families(values: dict[str, list[float]]) -> list[tuple[str, dict[str, list[float]]]]:
    """The families of initialisations tested together: the paper's three
    (``random``, ``imagenet``, ``radiologynet``: :data:`PAPER_FAMILY`), and, when the
    folder holds others (single-modality variants, a user's weights), all of them in a
    separate family (:data:`ALL_FAMILY`), so the others never change the paper's
    Kruskal-Wallis or its Bonferroni factor."""
    paper = {k: v for k, v in values.items() if k in PAPER_INITS}
    families = [(PAPER_FAMILY, paper)] if len(paper) >= 2 else []
    if set(values) - set(PAPER_INITS) and len(values) >= 2:
        families.append((ALL_FAMILY, values))
    return families


def comparisons(
    runs: pd.DataFrame,
    metric: str | None = None,
    *,
    by: str = "init",
    split: str = "test",
    alpha: float = stats.ALPHA,
    select_by: str | None = None,
) -> list[tuple[dict[str, object], stats.InitComparison]]:
    """The paper's tests on ``metric`` between the values of ``by`` (default: the
    initialisations, each at its best learning rate by validation ``select_by``), per
    task x model x fraction. ``metric`` may be ``best_epoch`` (epochs to convergence).

    ``select_by`` defaults to ``metric`` itself (the runs :func:`results_table` shows for
    that metric), or to the primary metric when ``metric`` is recorded once per run
    (``best_epoch``, ``epochs_run``: no validation value to pick an lr by).

    With ``by="init"`` the paper's three initialisations form one family (``family:
    "paper"``); other initialisations in the folder are tested in a second, separately
    labelled family (``"all initialisations (not the paper's)"``).

    Returns:
        ``(key, comparison)`` pairs; ``key`` names the task/model/fraction (and init/lr
        when they are not ``by``, and the family). A test the runs are too few for is
        reported as not run ("not enough runs").
    """
    metric = metric or primary_metric(runs)
    column = metric_column(runs, metric, split)
    keys = [k for k in ("task", "model", "fraction", "init", "lr") if k != by]
    if by == "lr":
        source = runs
    else:
        if select_by is None and metric not in RUN_METRICS:
            select_by = metric
        source = runs_at_best_lr(runs, select_by)
        keys = [k for k in keys if k != "lr"]
    found = []
    for key, group in _groups(source, keys):
        values = {
            str(name): g[column].dropna().tolist()
            for name, g in sorted(
                group.groupby(by, sort=False), key=lambda item: init_sort_key(str(item[0]))
            )
        }
        values = {k: v for k, v in values.items() if v}
        families = init_families(values) if by == "init" else [("", values)]
        for family, members in families:
            if len(members) < 2:
                continue
            label = dict(zip(keys, key, strict=True))
            if family:
                label["family"] = family
            found.append((label, stats.compare_groups(members, metric=metric, alpha=alpha)))
    return found


def modality_tests(
    runs: pd.DataFrame,
    metric: str | None = None,
    *,
    split: str = "test",
    alpha: float = stats.ALPHA,
) -> list[tuple[dict[str, object], stats.TestResult]]:
    """Student's t-test of multi-modality RadiologyNET against each single-modality
    variant (``radiologynet-mr``/``-cr``/``-ct``) present, per task x model x learning
    rate, as the paper compares them. Fewer than two runs on a side: reported as not run
    ("not enough runs")."""
    metric = metric or primary_metric(runs)
    column = metric_column(runs, metric, split)
    keys = ["task", "model", "fraction", "lr"]
    found = []
    for key, group in _groups(runs, keys):
        multi = group.loc[group["init"] == "radiologynet", column].dropna()
        for variant in MODALITY_INITS:
            single = group.loc[group["init"] == variant, column].dropna()
            if single.empty or multi.empty:
                continue
            names = ("radiologynet", variant)
            if len(multi) < 2 or len(single) < 2:
                result = stats.TestResult.skipped(
                    "ttest",
                    {names[0]: multi.tolist(), names[1]: single.tolist()},
                    stats.NOT_ENOUGH_RUNS,
                    alpha=alpha,
                )
            else:
                result = stats.t_test(multi.tolist(), single.tolist(), names=names, alpha=alpha)
            found.append(({**dict(zip(keys, key, strict=True)), "family": "modality"}, result))
    return found


def stats_table(
    runs: pd.DataFrame,
    metric: str | None = None,
    *,
    by: str = "init",
    alpha: float = stats.ALPHA,
    select_by: str | None = None,
) -> pd.DataFrame:
    """Every test of :func:`comparisons` (``select_by`` picks each setting's learning
    rate, as there) and :func:`modality_tests` as one flat frame (``task, model,
    fraction, ..., family, metric, test, groups, n, statistic, p, p_corrected,
    significant, decision``)."""
    metric = metric or primary_metric(runs)
    rows = []
    for key, comparison in comparisons(runs, metric, by=by, alpha=alpha, select_by=select_by):
        for result in comparison.results():
            rows.append({**key, "metric": metric, **result.as_dict()})
    if by == "init":
        for key, result in modality_tests(runs, metric, alpha=alpha):
            rows.append({**key, "metric": metric, **result.as_dict()})
    return pd.DataFrame(rows)


# -- rendering --------------------------------------------------------------------------


def _fmt(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pm(mean: object, std: object, digits: int = 3) -> str:
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return _fmt(mean, digits)
    return f"{_fmt(mean, digits)} ± {_fmt(std, digits)}"


def _best_mask(table: pd.DataFrame, column: str, higher: bool) -> pd.Series:
    keys = ["task", "model", "fraction"]
    values = table[column].astype(float)
    best = values.groupby([table[k] for k in keys], dropna=False).transform(
        "max" if higher else "min"
    )
    return values.eq(best) & values.notna()


def display_table(table: pd.DataFrame, *, bold: str = "markdown") -> pd.DataFrame:
    """``table`` as strings, one column per metric (``mean ± std``), the best init per
    task x model in bold (``bold="markdown"`` uses ``**``, ``"html"`` uses ``<b>``)."""
    names = list(table.attrs.get("metrics", []))
    paper = bool(table.attrs.get("paper"))
    wrap = (lambda s: f"**{s}**") if bold == "markdown" else (lambda s: f"<b>{s}</b>")
    escape = html.escape if bold == "html" else (lambda s: s)
    columns: dict[str, list[str]] = {
        "Task": [escape(str(t)) for t in table["task"]],
        "Model": [escape(str(m)) for m in table["model"]],
    }
    if not full_data(table).all():
        columns["Data"] = [
            "full" if full else f"{f:.0%}"
            for f, full in zip(table["fraction"], full_data(table), strict=True)
        ]
    columns["Init"] = [escape(str(i)) for i in table["init"]]
    columns["LR"] = list(table["lr"])
    columns["Runs"] = [str(n) for n in table["n_runs"]]
    for name in [*names, "epochs"]:
        higher = higher_is_better(name)
        mask = _best_mask(table, f"{name}_mean", higher)
        cells = [
            _pm(m, s, 1 if name == "epochs" else 3)
            for m, s in zip(table[f"{name}_mean"], table[f"{name}_std"], strict=True)
        ]
        columns[metric_label(name)] = [
            wrap(c) if b else c for c, b in zip(cells, mask, strict=True)
        ]
        if paper and f"paper_{name}_mean" in table:
            digits = 1 if name == "epochs" else 3
            swapped = " (swapped, see note)" if name in SWAPPED_IN_PAPER else ""
            columns[f"Paper {metric_label(name)}{swapped}"] = [
                _pm(m, s, digits)
                for m, s in zip(
                    table[f"paper_{name}_mean"], table[f"paper_{name}_std"], strict=True
                )
            ]
    if paper and "paper_lr" in table:
        columns["Paper LR"] = [_fmt(v) for v in table["paper_lr"]]
    selection = str(table.attrs.get("selection_metric", ""))
    main = selection if selection in names else names[0]
    columns[f"Best run ({metric_label(main)})"] = [
        f"{_fmt(v)} (run {r})"
        for v, r in zip(table[f"best_{main}"], table["best_run"], strict=True)
    ]
    return pd.DataFrame(columns)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of :func:`display_table`."""
    shown = display_table(table, bold="markdown")
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    body = [
        "| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
        for row in shown.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body]) + "\n"


def to_html(table: pd.DataFrame) -> str:
    """An HTML ``<table>`` of :func:`display_table`."""
    shown = display_table(table, bold="html")
    return shown.to_html(index=False, escape=False, border=0, classes="results")


def frame_to_markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    """Any small frame (statistics, emissions) as a Markdown table."""
    if frame.empty:
        return "_none_\n"
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join(_fmt(v, digits) if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body]) + "\n"
