"""``radiologynet compare RESULTS --metric f1 --by init``: the paper's statistical tests."""

from __future__ import annotations

import argparse
import math

from radiologynet.paper import PAPER_ALPHA as ALPHA

_BY = ("init", "lr", "model", "fraction")


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``compare`` parser: description, options and ``func``."""
    from radiologynet.analysis.report.names import DEFAULT_METRIC_HELP

    parser.description = (
        "Levene, Kruskal-Wallis and pairwise two-sided Mann-Whitney U with "
        "Bonferroni correction between the groups of --by (each initialisation "
        "at its best learning rate by validation), per task x model. With "
        "--by init the paper's three initialisations (random, imagenet, "
        "radiologynet) are one family; other initialisations found are tested "
        "in a separate family; single-modality variants get Student's t-test "
        "against radiologynet at each learning rate."
    )
    parser.add_argument("results", help="the sweep's results folder")
    parser.add_argument(
        "--metric",
        default=None,
        help=f"metric that picks the lr and is tested ({DEFAULT_METRIC_HELP}; "
        "best_epoch: epochs to convergence, at the lr the default picks)",
    )
    parser.add_argument("--by", default="init", choices=_BY, help="what to compare")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="significance level")
    parser.add_argument("--csv", default=None, help="also write the tests to this CSV file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the tests (the frame :func:`~radiologynet.analysis.report.tables.stats_table` gives
    the report); returns 0."""
    from radiologynet._atomic import atomic_write_text
    from radiologynet.analysis.report.results import load_results
    from radiologynet.analysis.report.tables import stats_table

    runs = load_results(args.results)
    frame = stats_table(runs, args.metric, by=args.by, alpha=args.alpha)
    if frame.empty:
        print(f"nothing to compare: no task x model has two or more groups of {args.by}")
    keys = [k for k in _KEYS if k in frame]
    header = None
    for row in frame.to_dict("records"):
        where = ", ".join(_key(k, row[k]) for k in keys if _present(row[k]))
        if where != header:
            header = where
            print(f"{where} ({row['metric']})")
        print(_line(row))
        if row["test"] == "kruskal" and row["decision"] == "fail to reject H0":
            print(
                "    Kruskal-Wallis finds no difference: the pairwise tests are for "
                "information only."
            )
    if args.csv:
        atomic_write_text(args.csv, frame.to_csv(index=False))
    return 0


#: The columns of a stats_table row that say which runs were tested, in print order.
_KEYS = ("task", "model", "fraction", "init", "lr", "family")


def _present(value: object) -> bool:
    return not (isinstance(value, float) and math.isnan(value))


def _key(name: str, value: object) -> str:
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"


def _line(row: dict) -> str:
    n = str(row["n"]).replace(" ", "")
    return (
        f"  {row['test']:13s} {row['groups']:40s} n={n}"
        f"  stat={row['statistic']:.4g}  p={row['p']:.4g}  p_corr={row['p_corrected']:.4g}  "
        f"{'*' if row['significant'] else ' '} {row['decision']}"
    )
