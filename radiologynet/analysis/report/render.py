"""One command's worth of evidence: ``report.md`` + ``report.html`` + figures + CSVs.

:func:`build_report` reads a results folder, writes the paper-shaped results table
(Markdown, HTML, CSV), the statistical tests, the energy/CO2 sums, the validation curves,
the resource-limited figure and the box plots, and links them from one report.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from radiologynet._atomic import atomic_write_text
from radiologynet._optional import require
from radiologynet.analysis import stats
from radiologynet.analysis.report import classification, figures, tables
from radiologynet.analysis.report.results import (
    diverged_runs,
    load_logs,
    load_results,
    primary_metric,
)
from radiologynet.paper import PAPER_INITS

pd = require("pandas", "sweep reports")


@dataclass(frozen=True)
class Report:
    """What :func:`build_report` wrote (every path is inside ``out_dir``)."""

    out_dir: Path
    markdown: Path
    html: Path
    csv: dict[str, Path]
    figures: list[Path] = field(default_factory=list)


def build_report(
    results_dir: str | Path,
    out_dir: str | Path,
    *,
    paper: bool = False,
    metric: str | None = None,
    first_epochs: int | None = None,
    alpha: float = stats.ALPHA,
    title: str | None = None,
) -> Report:
    """Analyse a sweep and write its report.

    Args:
        results_dir: the sweep's results folder (one sub-folder per run).
        out_dir: where the report goes (created).
        paper: put the paper's published numbers beside the sweep's.
        metric: the metric that picks the learning rate and is tested (default: F1,
            MAE or Dice, whichever the runs recorded).
        first_epochs: plot only the first N epochs of the validation curves.
        alpha: the significance level.

    Returns:
        The paths written (:class:`Report`).

    Raises:
        ResultsFormatError: the results folder is missing, empty or malformed.
    """
    out = Path(out_dir)
    runs = load_results(results_dir)
    logs = load_logs(runs)
    metric = metric or primary_metric(runs)
    table = tables.results_table(runs, metric)
    if paper:
        table = tables.add_paper_results(table)
    tests = tables.stats_table(runs, metric, alpha=alpha)
    if runs["best_epoch"].notna().any() and metric != "best_epoch":
        # epochs to convergence: the paper's supplementary table
        tests = pd.concat(
            [tests, tables.stats_table(runs, "best_epoch", alpha=alpha, select_by=metric)],
            ignore_index=True,
        )
    diverged = diverged_runs(results_dir)
    emissions = tables.emissions_table(runs)
    csv = {
        "runs": _csv(runs.drop(columns=["path"]), out / "runs.csv"),
        "table": _csv(table, out / "results-table.csv"),
        "stats": _csv(tests, out / "statistics.csv"),
        "emissions": _csv(emissions, out / "emissions.csv"),
        "diverged": _csv(diverged.drop(columns=["path"]), out / "diverged.csv"),
    }
    figure_dir = out / "figures"
    pngs: list[Path] = []
    if len(logs):
        logged = f"val_{metric}" in logs and logs[f"val_{metric}"].notna().any()
        curve_metric = metric if logged else "loss"  # the runs' logs lack the metric
        pngs += figures.validation_curves(
            runs, logs, figure_dir, metric=curve_metric, first_epochs=first_epochs, select_by=metric
        )
        pngs += figures.resource_limited(
            runs, logs, figure_dir, metric=curve_metric, select_by=metric
        )
    pngs += figures.final_boxplots(runs, figure_dir, metric=metric, alpha=alpha)
    pngs += classification.prediction_figures(runs, figure_dir, metric=metric)
    title = title or f"Sweep report: {', '.join(sorted(runs['task'].unique()))}"
    context = _Context(
        title=title,
        metric=metric,
        runs=runs,
        table=table,
        tests=tests,
        emissions=emissions,
        diverged=diverged,
        figures=[p.relative_to(out) for p in pngs],
        paper=paper,
        alpha=alpha,
        results_dir=Path(results_dir),
    )
    markdown = atomic_write_text(out / "report.md", _markdown(context))
    page = atomic_write_text(out / "report.html", _html(context))
    return Report(out_dir=out, markdown=markdown, html=page, csv=csv, figures=pngs)


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False))


@dataclass
class _Context:
    title: str
    metric: str
    runs: pd.DataFrame
    table: pd.DataFrame
    tests: pd.DataFrame
    emissions: pd.DataFrame
    diverged: pd.DataFrame
    figures: list[Path]
    paper: bool
    alpha: float
    results_dir: Path


_TEST_COLUMNS = [
    "task",
    "model",
    "fraction",
    "lr",
    "family",
    "metric",
    "test",
    "groups",
    "n",
    "statistic",
    "p",
    "p_corrected",
    "decision",
]


def _intro(c: _Context) -> str:
    label = tables.metric_label(c.metric)
    split = c.table.attrs.get("split", "test")
    return (
        f"{len(c.runs)} finished runs from `{c.results_dir}`. For each task x model x "
        f"initialisation, the learning rate with the best mean validation {label} is "
        f"shown with the mean ± std over its runs of every {split} metric and of the "
        f"epochs to the best checkpoint; the best run is the one with the best validation "
        f"{label}. Bold: the best initialisation per task x model. Statistics on {split} "
        f"{label}: Levene, Kruskal-Wallis across initialisations, pairwise two-sided "
        f"Mann-Whitney U with Bonferroni correction (alpha = {c.alpha:g})."
        + f" The paper's family is its three initialisations ({', '.join(PAPER_INITS)});"
        " other initialisations found are tested in a separate family and never change"
        " the paper's Bonferroni factor. Single-modality RadiologyNET variants: Student's"
        " t-test against multi-modality RadiologyNET at each learning rate. The tests are"
        " repeated on the epochs to the best checkpoint (best_epoch). A test the runs are"
        " too few for says 'not enough runs'."
        + (
            " The paper's published numbers (mean ± std over its five runs) are beside "
            "ours; 'random' is the paper's 'baseline'."
            if c.paper
            else ""
        )
        + (
            f" {tables.PRECISION_RECALL_NOTE}"
            if c.paper and tables.shows_swapped_paper_metrics(c.table)
            else ""
        )
        + (
            f" {len(c.diverged)} run(s) diverged (loss became NaN or infinite): they are"
            " listed under 'Diverged runs' and left out of the tables and tests."
            if len(c.diverged)
            else ""
        )
    )


def _shown_tests(tests: pd.DataFrame) -> pd.DataFrame:
    return tests[[c for c in _TEST_COLUMNS if c in tests]] if len(tests) else tests


def _markdown(c: _Context) -> str:
    parts = [
        f"# {c.title}\n",
        _intro(c) + "\n",
        "## Results\n",
        tables.to_markdown(c.table),
        "## Statistical tests\n",
        tables.frame_to_markdown(_shown_tests(c.tests)),
    ]
    if len(c.diverged):
        parts += ["## Diverged runs\n", tables.frame_to_markdown(c.diverged.drop(columns=["path"]))]
    if len(c.emissions):
        parts += [
            "## Energy and emissions (codecarbon, summed over runs)\n",
            tables.frame_to_markdown(c.emissions),
        ]
    if c.figures:
        parts.append("## Figures\n")
        parts += [f"![{p.stem}]({p.as_posix()})\n" for p in c.figures]
    return "\n".join(parts)


_STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;font-size:90%;margin-bottom:1.5em}"
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "img{max-width:100%;margin:.5em 0}"
)


def _html(c: _Context) -> str:
    def frame(f: pd.DataFrame) -> str:
        return (
            "<p><em>none</em></p>"
            if f.empty
            else f.to_html(index=False, border=0, float_format="%.4g")
        )

    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(c.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(c.title)}</h1><p>{html.escape(_intro(c))}</p>",
        "<h2>Results</h2>",
        tables.to_html(c.table),
        "<h2>Statistical tests</h2>",
        frame(_shown_tests(c.tests)),
    ]
    if len(c.diverged):
        parts += ["<h2>Diverged runs</h2>", frame(c.diverged.drop(columns=["path"]))]
    if len(c.emissions):
        parts += [
            "<h2>Energy and emissions (codecarbon, summed over runs)</h2>",
            frame(c.emissions),
        ]
    if c.figures:
        parts.append("<h2>Figures</h2>")
        parts += [
            f"<img src='{html.escape(p.as_posix())}' alt='{html.escape(p.stem)}'>"
            for p in c.figures
        ]
    parts.append("</body></html>\n")
    return "\n".join(parts)
