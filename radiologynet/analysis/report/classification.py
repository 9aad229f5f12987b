"""The per-image figures of classification runs: the confusion matrix and the ROC curves,
drawn from a run's ``test_predictions.csv`` with the same functions that put the confusion
matrix and AUROC into its ``result.json``
(:func:`radiologynet.train.predictions.clinical_metrics`, :func:`~radiologynet.train.
predictions.roc_curves`), so the figure and the numbers agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radiologynet._optional import require
from radiologynet.analysis.report.figures import save_figure, slug
from radiologynet.analysis.report.results import higher_is_better, primary_metric
from radiologynet.analysis.report.tables import runs_at_best_lr
from radiologynet.train.predictions import (
    Predictions,
    clinical_metrics,
    read_predictions,
    roc_curves,
)
from radiologynet.train.runs import PREDICTIONS_NAMES

pd = require("pandas", "sweep figures")
Axes = require("matplotlib.axes", "sweep figures").Axes
Figure = require("matplotlib.figure", "sweep figures").Figure


def draw_confusion_matrix(ax: Axes, table: Predictions) -> None:
    """The confusion matrix of a predictions table (rows: true class, columns:
    predicted), each cell annotated with its count."""
    matrix = np.asarray(clinical_metrics(table)["confusion_matrix"])
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(table.classes))
    ax.set_xticks(ticks, table.classes, rotation=45, ha="right")
    ax.set_yticks(ticks, table.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if top and count > top / 2 else "black"
        ax.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=9)


def draw_roc(ax: Axes, table: Predictions) -> None:
    """The ROC curve of each class against the rest (a binary task: its positive class),
    with its AUROC in the legend; a class without positive or negative test images has
    none."""
    for name, (fpr, tpr, auroc) in roc_curves(table).items():
        ax.plot(fpr, tpr, linewidth=1.6, label=f"{name} (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], color="#7f7f7f", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)


def _chosen_runs(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per task x model x fraction x init: the run at the best learning rate with the
    best validation ``metric``."""
    chosen = runs_at_best_lr(runs, metric)
    column = f"val_{metric}"
    chosen = chosen.sort_values(
        [column, "run"], ascending=[not higher_is_better(metric), True], kind="stable"
    )
    keys = ["task", "model", "fraction", "init"]
    return chosen.drop_duplicates(keys).sort_values(keys, na_position="first")


def prediction_figures(
    runs: pd.DataFrame, out_dir: str | Path, *, metric: str | None = None
) -> list[Path]:
    """One figure per task x model x fraction x initialisation of a classification
    sweep: the confusion matrix and the ROC curves of the test images of one run (the run
    at the best learning rate with the best validation ``metric``). Runs without a
    ``test_predictions.csv`` (regression, segmentation, older runs) are skipped. Returns
    the PNG paths (an SVG is beside each)."""
    metric = metric or primary_metric(runs)
    if f"val_{metric}" not in runs:
        return []
    written = []
    for _, run in _chosen_runs(runs, metric).iterrows():
        file = Path(str(run["path"])) / PREDICTIONS_NAMES["test"]
        if not file.is_file():
            continue
        table = read_predictions(file)
        if not table.is_classification:
            continue
        figure = Figure(figsize=(9.0, 4.0), layout="constrained")
        matrix_ax, roc_ax = figure.subplots(1, 2)
        draw_confusion_matrix(matrix_ax, table)
        draw_roc(roc_ax, table)
        fraction = "" if pd.isna(run["fraction"]) else f", fraction {run['fraction']:g}"
        figure.suptitle(
            f"{run['task']}: {run['model']}, {run['init']} (lr {run['lr']}, run "
            f"{run['run']}{fraction}): {len(table.paths)} test images",
            fontsize=10,
        )
        stem = Path(out_dir) / slug(
            "predictions", run["task"], run["model"], run["init"], run["fraction"]
        )
        written.append(save_figure(figure, stem)[0])
    return written
