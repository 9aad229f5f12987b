"""Comparing initialisations: paired bootstrap on the same test images, Mann-Whitney with
Bonferroni over the few-shot draws, and the summary in words."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from radiologynet.analysis import stats
from radiologynet.analysis.probe.scoring import LOWER_IS_BETTER

#: The method whose comparison the summary's verdict rests on, per task kind.
PRIMARY_METHOD = {"classification": "logreg", "regression": "ridge"}
#: How the summary names each metric.
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "auroc": "AUROC", "mae": "MAE"}


def paired_comparisons(
    names: Sequence[str],
    estimates: Mapping[tuple[str, str, str], float],
    distributions: Mapping[tuple[str, str, str], np.ndarray],
    methods: Sequence[str],
    metrics: Sequence[str],
    alpha: float = stats.ALPHA,
) -> list[dict[str, Any]]:
    """Every pair of feature sets on every method and metric: the paired bootstrap of
    their difference on the same test resamples, Bonferroni-corrected for the number of
    pairs. ``estimates`` and ``distributions`` are keyed by ``(features, method, metric)``.

    Returns:
        One row per comparison: ``method``, ``metric``, ``test``, ``groups``,
        ``difference`` (first minus second), ``ci_low``, ``ci_high``, ``p``,
        ``p_corrected``, ``significant``...
    """
    pairs = list(itertools.combinations(names, 2))
    rows = []
    for method, metric, (a, b) in itertools.product(methods, metrics, pairs):
        if (a, method, metric) not in estimates:
            continue
        result = stats.paired_bootstrap(
            estimates[(a, method, metric)],
            estimates[(b, method, metric)],
            distributions[(a, method, metric)],
            distributions[(b, method, metric)],
            names=(a, b),
            n_comparisons=len(pairs),
            alpha=alpha,
        )
        rows.append({"method": method, "metric": metric, **result.as_dict()})
    return rows


def fewshot_comparisons(
    draws: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    metrics: Sequence[str],
    alpha: float = stats.ALPHA,
) -> list[dict[str, Any]]:
    """Pairwise two-sided Mann-Whitney U tests over the few-shot draws, per images per
    class and metric, Bonferroni-corrected for the number of pairs (the paper's test).

    ``draws`` are rows ``{"features", "n", "draw", "metric", "value"}``."""
    rows = []
    for n in sorted({int(d["n"]) for d in draws}):
        for metric in metrics:
            groups = {
                name: [
                    float(d["value"])
                    for d in draws
                    if d["features"] == name and d["n"] == n and d["metric"] == metric
                ]
                for name in names
            }
            if len(groups) < 2 or not all(groups.values()):
                continue
            for result in stats.pairwise_mann_whitney(groups, alpha=alpha):
                a, b = result.groups
                difference = float(np.mean(groups[a]) - np.mean(groups[b]))
                rows.append(
                    {
                        **result.as_dict(),
                        "method": f"fewshot-{n}",
                        "metric": metric,
                        "difference": difference,
                        "p_method": result.method,
                    }
                )
    return rows


def _score(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "-"
    return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _verdict(candidate: str, other: str, row: Mapping[str, Any], metric: str) -> str:
    """One sentence on ``candidate`` against ``other`` from a paired-bootstrap row
    (whose difference is ``row['groups']``' first minus second)."""
    sign = 1.0 if row["groups"].split(" vs ")[0] == candidate else -1.0
    difference = sign * row["difference"]
    low, high = sorted((sign * row["ci_low"], sign * row["ci_high"]))
    better = -difference if metric in LOWER_IS_BETTER else difference
    name = METRIC_NAMES.get(metric, metric)
    interval = (
        f"95 % CI {low:+.3f} to {high:+.3f}"
        if "ci_low" in row and row["ci_low"] == row["ci_low"]
        else "mean over the few-shot draws, Mann-Whitney"
    )
    numbers = (
        f"{name} {difference:+.3f} ({interval}, p = {row['p_corrected']:.3g} Bonferroni-corrected)"
    )
    if row["significant"] and better > 0:
        return f"YES, better: {numbers}."
    if row["significant"]:
        return f"NO, worse: {numbers}."
    return (
        f"NOT SHOWN: {numbers}; the interval includes no difference "
        "(more test images would narrow it)."
    )


def summary_text(
    names: Sequence[str],
    table: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    context: Mapping[str, Any],
) -> str:
    """The one-screen answer to "do these weights help on my data?": each feature set's
    scores with 95 % intervals, then the first feature set against each other one in
    words, from the paired bootstrap of the primary method and metric.

    ``context`` holds ``task`` (classification/regression), ``metric``, ``n_test``,
    ``classes``, ``split`` (how the split was made) and ``methods``.
    """
    metric, task = context["metric"], context["task"]
    primary = _primary(comparisons, PRIMARY_METHOD[task])
    candidate = names[0]
    lookup = {(r["features"], r["method"], r["metric"]): r for r in table}
    lines = [
        f"Do the {candidate} features help on this data?  ({context['n_test']} test images"
        + (f", {len(context['classes'])} classes" if task == "classification" else "")
        + f"; split: {context['split']})",
        "",
        f"{'features':16s} " + "  ".join(f"{m:>24s}" for m in context["methods"]),
    ]
    for name in names:
        cells = [_score(lookup.get((name, m, metric))) for m in context["methods"]]
        lines.append(f"{name:16s} " + "  ".join(f"{c:>24s}" for c in cells))
    lines.append(f"({METRIC_NAMES.get(metric, metric)}, 95 % bootstrap interval over test images)")
    lines.append("")
    for other in names[1:]:
        row = _comparison(comparisons, primary, metric, candidate, other)
        if row is not None:
            lines.append(
                f"{candidate} vs {other} ({primary}): {_verdict(candidate, other, row, metric)}"
            )
    lines.extend(_agreement(comparisons, names, metric, primary))
    lines.append("")
    lines.append(
        "Frozen features with a small probe: a cheap first answer. Fine-tuning (the paper's "
        "protocol, `radiologynet benchmark`) can rank the initialisations differently."
    )
    return "\n".join(lines)


def _primary(comparisons: Sequence[Mapping[str, Any]], preferred: str) -> str:
    """The method the verdict rests on: ``preferred`` when it ran, else the first method
    compared (k-NN, or the largest few-shot size)."""
    ran = list(dict.fromkeys(row["method"] for row in comparisons))
    if preferred in ran or not ran:
        return preferred
    paired = [m for m in ran if not m.startswith("fewshot-")]
    return paired[0] if paired else max(ran, key=lambda m: int(m.split("-")[1]))


def _comparison(
    comparisons: Sequence[Mapping[str, Any]], method: str, metric: str, a: str, b: str
) -> Mapping[str, Any] | None:
    for row in comparisons:
        if (
            row["method"] == method
            and row["metric"] == metric
            and set(row["groups"].split(" vs ")) == {a, b}
        ):
            return row
    return None


def _agreement(
    comparisons: Sequence[Mapping[str, Any]], names: Sequence[str], metric: str, primary: str
) -> list[str]:
    """Lines naming the other methods whose significant comparisons do not agree with the
    primary method's verdict, so a reader sees when the answer depends on the probe."""
    lines = []
    for other in names[1:]:
        base = _comparison(comparisons, primary, metric, names[0], other)
        if base is None:
            continue
        disagreeing: dict[str, list[str]] = {}
        for row in comparisons:
            pair = set(row["groups"].split(" vs "))
            if row["metric"] != metric or row["method"] == primary or pair != {names[0], other}:
                continue
            same_sign = math.copysign(1, row["difference"]) == math.copysign(1, base["difference"])
            if row["significant"] and not (base["significant"] and same_sign):
                sign = (
                    "higher"
                    if (row["groups"].startswith(names[0])) == (row["difference"] > 0)
                    else "lower"
                )
                family = "few-shot" if row["method"].startswith("fewshot-") else row["method"]
                disagreeing.setdefault(f"{family} ({sign} for {names[0]})", []).append(
                    row["method"]
                )
        for what, methods in disagreeing.items():
            where = ", ".join(m.removeprefix("fewshot-") for m in methods)
            at = f" at {where} images per class" if what.startswith("few-shot") else ""
            lines.append(
                f"  note: {what} differs significantly from {other}{at}, unlike {primary}."
            )
    return lines
