"""``radiologynet report RESULTS --out DIR [--paper]``: tables, tests and figures of a sweep."""

from __future__ import annotations

import argparse

from radiologynet.paper import PAPER_ALPHA as ALPHA


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``report`` parser: description, options and ``func``."""
    from radiologynet.analysis.report.names import DEFAULT_METRIC_HELP

    parser.description = (
        "Read a results folder (one sub-folder per run) and write the paper-"
        "shaped results table (Markdown, HTML, CSV), the statistical tests, "
        "energy sums and figures, linked from report.md and report.html."
    )
    parser.add_argument("results", help="the sweep's results folder")
    parser.add_argument("--out", required=True, help="folder to write the report into")
    parser.add_argument(
        "--paper", action="store_true", help="put the paper's published numbers beside yours"
    )
    parser.add_argument(
        "--metric",
        default=None,
        help=f"metric that picks the lr and is tested ({DEFAULT_METRIC_HELP})",
    )
    parser.add_argument(
        "--first-epochs",
        type=int,
        default=None,
        metavar="N",
        help="plot only the first N epochs of the validation curves",
    )
    parser.add_argument("--alpha", type=float, default=ALPHA, help="significance level")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report; prints where it went."""
    from radiologynet.analysis.report.render import build_report

    report = build_report(
        args.results,
        args.out,
        paper=args.paper,
        metric=args.metric,
        first_epochs=args.first_epochs,
        alpha=args.alpha,
    )
    print(
        f"wrote {report.markdown} and {report.html} "
        f"({len(report.figures)} figures, {len(report.csv)} CSV files)"
    )
    return 0
