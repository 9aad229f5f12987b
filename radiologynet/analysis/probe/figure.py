"""The probe's figure: a metric against training images per class, one line per
initialisation with its band (matplotlib's object-oriented API, no backend switch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radiologynet._optional import require
from radiologynet.analysis.probe.compare import METRIC_NAMES


def fewshot_figure(
    draws: Sequence[Mapping[str, Any]],
    table: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    metric: str,
    full_per_class: float | None,
) -> Any:
    """The few-shot curve of ``metric``: the mean over draws per images per class, the
    band from the 2.5th to the 97.5th percentile of the draws; the full logistic-regression
    probe (``table``'s ``logreg`` row and its interval) at ``full_per_class`` images per
    class (train + val). Returns the matplotlib Figure."""
    figure_module = require("matplotlib.figure", "the probe's figure")
    from radiologynet.analysis.report.figures import init_colour

    figure = figure_module.Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = figure.add_subplot()
    for name in names:
        colour = init_colour(name)
        ns = sorted({int(d["n"]) for d in draws if d["features"] == name})
        values = [
            np.array(
                [
                    d["value"]
                    for d in draws
                    if d["features"] == name and d["n"] == n and d["metric"] == metric
                ]
            )
            for n in ns
        ]
        if ns:
            ax.plot(ns, [v.mean() for v in values], marker="o", color=colour, label=name)
            ax.fill_between(
                ns,
                [np.percentile(v, 2.5) for v in values],
                [np.percentile(v, 97.5) for v in values],
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
        full = next(
            (
                r
                for r in table
                if (r["features"], r["method"], r["metric"]) == (name, "logreg", metric)
            ),
            None,
        )
        if full is not None and full_per_class:
            ax.errorbar(
                [full_per_class],
                [full["value"]],
                yerr=[[full["value"] - full["ci_low"]], [full["ci_high"] - full["value"]]],
                marker="s",
                color=colour,
                capsize=3,
                linestyle="none",
            )
    ax.set_xscale("log")
    ax.set_xlabel("training images per class (square: all of train + val)")
    ax.set_ylabel(f"test {METRIC_NAMES.get(metric, metric)}")
    ax.set_title("Frozen-feature probe: logistic regression")
    ax.grid(True, alpha=0.3)
    ax.legend(title="features")
    return figure


def save(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` atomically; returns the path."""
    from radiologynet.analysis.report.figures import save_figure

    stem = Path(path).with_suffix("")
    return save_figure(figure, stem, formats=("png",))[0]
