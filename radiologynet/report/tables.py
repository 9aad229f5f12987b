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

from radiologynet import stats
from radiologynet._optional import require
from radiologynet.errors import ResultsFormatError, StatisticsInputError
from radiologynet.report.results import (
    higher_is_better,
    init_sort_key,
    metric_columns,
    normalise_init,
    primary_metric,
)
from radiologynet.weights import paper_results

pd = require("pandas", "sweep reports")

#: The columns that identify one row of a results table.
GROUP_KEYS = ["task", "model", "fraction", "init"]
#: Metrics between 0 and 1 (the paper prints some of them in percent).
_PROPORTIONS = frozenset({"accuracy", "precision", "recall", "f1", "dice", "iou"})
_LABELS = {"f1": "F1", "mae": "MAE", "rmse": "RMSE", "iou": "IoU", "dice": "Dice"}


def metric_label(metric: str) -> str:
    """A metric's name as tables and figures print it (``"f1"`` -> ``"F1"``)."""
    return _LABELS.get(metric, metric.replace("_", " ").capitalize())


def _groups(runs: pd.DataFrame, keys: Sequence[str]):
    return runs.assign(fraction=runs["fraction"].fillna(1.0)).groupby(list(keys), sort=False)


def best_lr(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The learning rate of each task x model x fraction x init with the best mean
    validation ``metric`` (default: :func:`primary_metric`).

    Returns:
        One row per setting: ``task, model, fraction, init, lr, val_<metric>`` (the mean).
    """
    metric = metric or primary_metric(runs)
    column = f"val_{metric}"
    if column not in runs:
        raise ResultsFormatError(f"No run recorded the validation metric {metric!r}; "
                                 f"recorded: {', '.join(metric_columns(runs, 'val'))}.")
    means = _groups(runs, [*GROUP_KEYS, "lr"])[column].mean().reset_index()
    ascending = not higher_is_better(metric)
    means = means.sort_values(column, ascending=ascending, na_position="last", kind="stable")
    return means.drop_duplicates(GROUP_KEYS).reset_index(drop=True)


def runs_at_best_lr(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The runs of each setting trained with its best learning rate (see :func:`best_lr`)."""
    chosen = best_lr(runs, metric)[[*GROUP_KEYS, "lr"]]
    keyed = runs.assign(fraction=runs["fraction"].fillna(1.0))
    return keyed.merge(chosen, on=[*GROUP_KEYS, "lr"], how="inner")


def results_table(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The paper-shaped table (numbers, not strings).

    Returns:
        One row per task x model x fraction x init (fraction 1.0 is the full training set)
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
    for key, group in selected.groupby(GROUP_KEYS, sort=False):
        row: dict[str, object] = dict(zip(GROUP_KEYS, key, strict=True))
        row.update(lr=group["lr"].iloc[0], n_runs=len(group),
                   **{f"val_{metric}": group[f"val_{metric}"].mean()})
        for name in names:
            values = group[f"{split}_{name}"]
            row[f"{name}_mean"], row[f"{name}_std"] = values.mean(), values.std(ddof=1)
        row["epochs_mean"], row["epochs_std"] = (group["best_epoch"].mean(),
                                                 group["best_epoch"].std(ddof=1))
        ordered = group.sort_values(f"val_{metric}", ascending=not higher_is_better(metric),
                                    kind="stable")
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
    order = table.assign(_r=rank).sort_values(["task", "model", "fraction", "_r", "init"],
                                              ascending=[True, True, False, True, True],
                                              kind="stable")
    result = order.drop(columns="_r").reset_index(drop=True)
    result.attrs.update(table.attrs)
    return result


def add_paper_results(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the paper's published numbers beside the user's: ``paper_lr``,
    ``paper_<m>_mean``/``paper_<m>_std`` (and ``paper_epochs_*``), and ``paper_best_<m>``
    where the paper gives its best run, for the task, model and initialisation of each
    full-data row (``baseline`` is ``random``; percentages become fractions)."""
    published: dict[tuple[str, str, str], dict[str, object]] = {}
    for result in paper_results():
        entry = published.setdefault((result.task, result.model, normalise_init(result.init)),
                                     {"paper_lr": result.lr})
        scale = 0.01 if result.metric in _PROPORTIONS and result.value > 1.0 else 1.0
        if result.statistic == "best":  # Table 3's single best run
            entry[f"paper_best_{result.metric}"] = result.value * scale
            continue
        entry[f"paper_{result.metric}_mean"] = result.value * scale
        entry[f"paper_{result.metric}_std"] = (None if result.std is None
                                               else result.std * scale)
    extra = [published.get((r.task, r.model, r.init), {}) if r.fraction == 1.0 else {}
             for r in table.itertuples()]
    merged = pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1)
    merged.attrs.update(table.attrs, paper=True)
    return merged


def emissions_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Energy (kWh), CO2 (kg) and duration summed per task x model x init over the runs
    that recorded codecarbon data; empty when none did."""
    recorded = runs[runs["energy_kwh"].notna()]
    if recorded.empty:
        return pd.DataFrame(columns=["task", "model", "init", "n_runs", "energy_kwh",
                                     "co2_kg", "duration_s"])
    summed = recorded.groupby(["task", "model", "init"], sort=False).agg(
        n_runs=("run", "size"), energy_kwh=("energy_kwh", "sum"), co2_kg=("co2_kg", "sum"),
        duration_s=("duration_s", "sum"),
    ).reset_index()
    rank = summed["init"].map(lambda i: init_sort_key(i)[0])
    return (summed.assign(_r=rank).sort_values(["task", "model", "_r"]).drop(columns="_r")
            .reset_index(drop=True))


def comparisons(runs: pd.DataFrame, metric: str | None = None, *, by: str = "init",
                split: str = "test", alpha: float = stats.ALPHA
                ) -> list[tuple[dict[str, object], stats.InitComparison]]:
    """The paper's tests on ``metric`` between the values of ``by`` (default: the
    initialisations, each at its best learning rate), per task x model x fraction.

    Returns:
        ``(key, comparison)`` pairs; ``key`` names the task/model/fraction (and init/lr
        when they are not ``by``). Settings with fewer than two groups are skipped.
    """
    metric = metric or primary_metric(runs)
    if split == "test" and not metric_columns(runs, "test"):
        split = "val"
    column = f"{split}_{metric}"
    if column not in runs:
        raise ResultsFormatError(f"No run recorded {split} {metric!r}; recorded: "
                                 f"{', '.join(metric_columns(runs, split))}.")
    keys = [k for k in ("task", "model", "fraction", "init", "lr") if k != by]
    if by == "lr":
        source = runs.assign(fraction=runs["fraction"].fillna(1.0))
    else:
        source = runs_at_best_lr(runs)
        keys = [k for k in keys if k != "lr"]
    found = []
    for key, group in source.groupby(keys, sort=False):
        values = {str(name): g[column].dropna().tolist()
                  for name, g in sorted(group.groupby(by, sort=False),
                                        key=lambda item: init_sort_key(str(item[0])))}
        values = {k: v for k, v in values.items() if v}
        if len(values) < 2:
            continue
        try:
            result = stats.compare_groups(values, metric=metric, alpha=alpha)
        except StatisticsInputError:
            continue
        found.append((dict(zip(keys, key, strict=True)), result))
    return found


def modality_tests(runs: pd.DataFrame, metric: str | None = None, *, split: str = "test",
                   alpha: float = stats.ALPHA) -> list[tuple[dict[str, object], stats.TestResult]]:
    """Student's t-test of multi-modality RadiologyNET against each single-modality
    variant (``radiologynet-mr``/``-cr``/``-ct``) present, per task x model."""
    metric = metric or primary_metric(runs)
    if split == "test" and not metric_columns(runs, "test"):
        split = "val"
    selected = runs_at_best_lr(runs)
    found = []
    for key, group in selected.groupby(["task", "model", "fraction"], sort=False):
        multi = group.loc[group["init"] == "radiologynet", f"{split}_{metric}"].dropna()
        for variant in ("radiologynet-mr", "radiologynet-cr", "radiologynet-ct"):
            single = group.loc[group["init"] == variant, f"{split}_{metric}"].dropna()
            if len(multi) < 2 or len(single) < 2:
                continue
            result = stats.t_test(multi.tolist(), single.tolist(),
                                  names=("radiologynet", variant), alpha=alpha)
            found.append((dict(zip(["task", "model", "fraction"], key, strict=True)), result))
    return found


def stats_table(runs: pd.DataFrame, metric: str | None = None, *, by: str = "init",
                alpha: float = stats.ALPHA) -> pd.DataFrame:
    """Every test of :func:`comparisons` and :func:`modality_tests` as one flat frame
    (``task, model, fraction, ..., metric, test, groups, n, statistic, p, p_corrected,
    significant``)."""
    metric = metric or primary_metric(runs)
    rows = []
    for key, comparison in comparisons(runs, metric, by=by, alpha=alpha):
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
    best = values.groupby([table[k] for k in keys]).transform("max" if higher else "min")
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
    if (table["fraction"] < 1.0).any():
        columns["Data"] = [f"{f:.0%}" for f in table["fraction"]]
    columns["Init"] = [escape(str(i)) for i in table["init"]]
    columns["LR"] = list(table["lr"])
    columns["Runs"] = [str(n) for n in table["n_runs"]]
    for name in [*names, "epochs"]:
        higher = higher_is_better(name)
        mask = _best_mask(table, f"{name}_mean", higher)
        cells = [_pm(m, s, 1 if name == "epochs" else 3)
                 for m, s in zip(table[f"{name}_mean"], table[f"{name}_std"], strict=True)]
        columns[metric_label(name)] = [
            wrap(c) if b else c for c, b in zip(cells, mask, strict=True)]
        if paper and f"paper_{name}_mean" in table:
            digits = 1 if name == "epochs" else 3
            columns[f"Paper {metric_label(name)}"] = [
                _pm(m, s, digits) for m, s in zip(table[f"paper_{name}_mean"],
                                                  table[f"paper_{name}_std"], strict=True)]
    if paper and "paper_lr" in table:
        columns["Paper LR"] = [_fmt(v) for v in table["paper_lr"]]
    selection = str(table.attrs.get("selection_metric", ""))
    main = selection if selection in names else names[0]
    columns[f"Best run ({metric_label(main)})"] = [
        f"{_fmt(v)} (run {r})" for v, r in zip(table[f"best_{main}"], table["best_run"],
                                                strict=True)]
    return pd.DataFrame(columns)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of :func:`display_table`."""
    shown = display_table(table, bold="markdown")
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
            for row in shown.itertuples(index=False)]
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
    body = ["| " + " | ".join(_fmt(v, digits) if isinstance(v, float) else str(v)
                              for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
