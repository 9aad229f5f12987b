"""The paper's figures from a sweep: validation curves (Figs 6-7), the resource-limited
experiment (Fig 8) and box plots of the final metric with significance brackets.

Figures are drawn with matplotlib's object-oriented API (no pyplot state, no backend
switch at import) and written atomically as PNG and SVG.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from radiologynet._atomic import atomic_write_stream
from radiologynet._optional import require
from radiologynet.analysis import stats
from radiologynet.analysis.report.results import full_data, init_sort_key, primary_metric
from radiologynet.analysis.report.tables import (
    PAPER_FAMILY,
    comparisons,
    metric_column,
    metric_label,
    runs_at_best_lr,
)
from radiologynet.errors import ResultsFormatError
from radiologynet.models._weights import MODALITY_VARIANTS, RANDOM_INIT

pd = require("pandas", "sweep figures")
Axes = require("matplotlib.axes", "sweep figures").Axes
Figure = require("matplotlib.figure", "sweep figures").Figure

#: One colour per initialisation, the same in every figure.
INIT_COLOURS = {
    RANDOM_INIT: "#7f7f7f",
    "imagenet": "#1f77b4",
    "radiologynet": "#d62728",
    # the single-modality variants (radiologynet-mr, -cr, -ct), in the registry's order
    **dict(zip(MODALITY_VARIANTS, ("#ff7f0e", "#2ca02c", "#9467bd"), strict=True)),
    "imagenet-recon": "#17becf",
    "radiologynet-recon": "#8c564b",
}
FORMATS = ("png", "svg")


def init_colour(init: str) -> str:
    """The colour of ``init`` in every figure."""
    return INIT_COLOURS.get(init, "#bcbd22")


def save_figure(
    figure: Figure, stem: str | Path, formats: tuple[str, ...] = FORMATS, dpi: int = 150
) -> list[Path]:
    """Write ``figure`` as ``<stem>.png`` and ``<stem>.svg`` atomically; returns the paths."""
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        atomic_write_stream(path, lambda f, fmt=fmt: figure.savefig(f, format=fmt, dpi=dpi))
        paths.append(path)
    return paths


def slug(*parts: object) -> str:
    """A figure's file stem from its parts (characters other than ``A-Za-z0-9_.`` as ``_``)."""
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts)


def _log_metric(logs: pd.DataFrame, metric: str) -> str:
    column = f"val_{metric}"
    if column in logs and logs[column].notna().any():
        return column
    raise ResultsFormatError(
        f"The runs' log.jsonl files have no {column!r}; logged: "
        f"{', '.join(c for c in logs.columns if c.startswith('val_')) or 'nothing'}."
    )


def _mean_std_lines(
    ax: Axes,
    logs: pd.DataFrame,
    column: str,
    first_epochs: int | None,
) -> None:
    for init, group in sorted(logs.groupby("init"), key=lambda i: init_sort_key(str(i[0]))):
        if first_epochs is not None:
            group = group[group["epoch"] <= first_epochs]
        curve = group.groupby("epoch")[column].agg(["mean", "std", "count"])
        epochs = curve.index.to_numpy()
        mean = curve["mean"].to_numpy()
        std = curve["std"].fillna(0.0).to_numpy()
        colour = init_colour(str(init))
        lr = group["lr"].iloc[0]
        ax.plot(epochs, mean, color=colour, label=f"{init} (lr {lr})", linewidth=1.6)
        ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
    ax.grid(alpha=0.3)
    ax.set_xlabel("epoch")


def _selected_logs(runs: pd.DataFrame, logs: pd.DataFrame, select_by: str | None) -> pd.DataFrame:
    chosen = runs_at_best_lr(runs, select_by)[["task", "model", "fraction", "init", "lr", "run"]]
    return logs.merge(chosen, on=["task", "model", "fraction", "init", "lr", "run"])


def validation_curves(
    runs: pd.DataFrame,
    logs: pd.DataFrame,
    out_dir: str | Path,
    *,
    metric: str | None = None,
    first_epochs: int | None = None,
    select_by: str | None = None,
) -> list[Path]:
    """Validation ``metric`` per epoch, mean +- std over runs, one line per
    initialisation at its best learning rate (by validation ``select_by``, default the
    primary metric); one figure per task x model on the full training set (the paper's
    Figs 6-7). Returns the PNG paths (an SVG is beside each)."""
    metric = metric or primary_metric(runs)
    column = _log_metric(logs, metric)
    selected = _selected_logs(runs, logs, select_by)
    selected = selected[full_data(selected)]
    written = []
    for (task, model), group in selected.groupby(["task", "model"], sort=False):
        figure = Figure(figsize=(6.0, 3.8), layout="constrained")
        ax = figure.add_subplot()
        _mean_std_lines(ax, group, column, first_epochs)
        ax.set_ylabel(f"validation {metric_label(metric)}")
        span = f", first {first_epochs} epochs" if first_epochs else ""
        ax.set_title(f"{task}: {model}{span}")
        ax.legend(loc="lower right", fontsize=8)
        stem = Path(out_dir) / slug("curves", task, model, metric)
        written.append(save_figure(figure, stem)[0])
    return written


def resource_limited(
    runs: pd.DataFrame,
    logs: pd.DataFrame,
    out_dir: str | Path,
    *,
    metric: str | None = None,
    select_by: str | None = None,
) -> list[Path]:
    """The resource-limited experiment (the paper's Fig 8): validation ``metric`` per
    epoch for each training fraction (5/25/50 %), one panel per fraction, one line per
    initialisation; one figure per task x model that has fraction runs."""
    metric = metric or primary_metric(runs)
    limited = runs[~full_data(runs)]
    if limited.empty:
        return []
    column = _log_metric(logs, metric)
    selected = _selected_logs(limited, logs, select_by)
    written = []
    for (task, model), group in selected.groupby(["task", "model"], sort=False):
        fractions = sorted(group["fraction"].unique())
        figure = Figure(figsize=(4.0 * len(fractions), 3.6), layout="constrained")
        axes = figure.subplots(1, len(fractions), sharey=True, squeeze=False)[0]
        for ax, fraction in zip(axes, fractions, strict=True):
            _mean_std_lines(ax, group[group["fraction"] == fraction], column, None)
            ax.set_title(f"{fraction:.0%} of the training data")
        axes[0].set_ylabel(f"validation {metric_label(metric)}")
        axes[-1].legend(loc="lower right", fontsize=8)
        figure.suptitle(f"{task}: {model}, reduced training data")
        stem = Path(out_dir) / slug("fractions", task, model, metric)
        written.append(save_figure(figure, stem)[0])
    return written


def _brackets(
    ax: Axes,
    positions: dict[str, int],
    tests: tuple[stats.TestResult, ...],
    top: float,
    span: float,
) -> None:
    level = 0
    for test in tests:
        if not test.significant:
            continue
        left, right = sorted(positions[g] for g in test.groups)
        y = top + span * (0.08 + 0.12 * level)
        ax.plot(
            [left, left, right, right],
            [y - span * 0.03, y, y, y - span * 0.03],
            color="black",
            linewidth=1,
        )
        ax.text(
            (left + right) / 2, y, f"p={test.p_corrected:.3g}", ha="center", va="bottom", fontsize=7
        )
        level += 1


def final_boxplots(
    runs: pd.DataFrame,
    out_dir: str | Path,
    *,
    metric: str | None = None,
    alpha: float = stats.ALPHA,
) -> list[Path]:
    """Box plots of the final test ``metric`` per initialisation (at its best learning
    rate), with brackets over the pairs the Bonferroni-corrected Mann-Whitney U test
    finds different at ``alpha``, drawn only where Kruskal-Wallis rejects equality (the
    paper's protocol; the paper's three initialisations' family where present); one
    figure per task x model on the full training set."""
    metric = metric or primary_metric(runs)
    full = runs[full_data(runs)]
    if full.empty:
        return []
    column = metric_column(full, metric)  # the rule the tables and tests use
    split = column.split("_", 1)[0]
    tests: dict[tuple[str, str], stats.InitComparison] = {}
    for key, comparison in comparisons(full, metric, alpha=alpha):
        if key.get("family") == PAPER_FAMILY or (key["task"], key["model"]) not in tests:
            tests[(key["task"], key["model"])] = comparison  # the paper's family first
    selected = runs_at_best_lr(full, metric)
    written = []
    for (task, model), group in selected.groupby(["task", "model"], sort=False):
        inits = sorted(group["init"].unique(), key=init_sort_key)
        values = [group.loc[group["init"] == i, column].dropna().to_numpy() for i in inits]
        figure = Figure(figsize=(1.4 * len(inits) + 2.0, 3.8), layout="constrained")
        ax = figure.add_subplot()
        boxes = ax.boxplot(values, patch_artist=True, widths=0.55)
        ax.set_xticks(range(1, len(inits) + 1), inits)
        for patch, init in zip(boxes["boxes"], inits, strict=True):
            patch.set_facecolor(init_colour(init))
            patch.set_alpha(0.45)
        for position, data in enumerate(values, start=1):
            jitter = np.linspace(-0.08, 0.08, num=max(len(data), 1))[: len(data)]
            ax.scatter(position + jitter, data, s=12, color="black", zorder=3)
        everything = np.concatenate(values)
        top, span = float(everything.max()), float(np.ptp(everything) or 1e-3)
        comparison = tests.get((task, model))
        if comparison is not None and comparison.posthoc_warranted:  # only where KW rejects
            _brackets(
                ax,
                {init: k for k, init in enumerate(inits, start=1)},
                comparison.pairwise,
                top,
                span,
            )
            ax.set_ylim(top=top + span * (0.25 + 0.12 * len(comparison.pairwise)))
        ax.set_ylabel(f"{split} {metric_label(metric)}")
        ax.set_title(f"{task}: {model}")
        ax.grid(axis="y", alpha=0.3)
        stem = Path(out_dir) / slug("boxplot", task, model, metric)
        written.append(save_figure(figure, stem)[0])
    return written
