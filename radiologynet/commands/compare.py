"""``radiologynet compare RESULTS --metric f1 --by init``: the paper's statistical tests."""

from __future__ import annotations

import argparse

from radiologynet._optional import require
from radiologynet.stats import ALPHA

_BY = ("init", "lr", "model", "fraction")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` sub-command."""
    parser = subparsers.add_parser(
        "compare",
        help="run the paper's statistical tests on a sweep and print them",
        description="Levene, Kruskal-Wallis and pairwise two-sided Mann-Whitney U with "
        "Bonferroni correction between the groups of --by (each initialisation "
        "at its best learning rate by validation), per task x model. With "
        "--by init the paper's three initialisations (random, imagenet, "
        "radiologynet) are one family; other initialisations found are tested "
        "in a separate family; single-modality variants get Student's t-test "
        "against radiologynet at each learning rate.",
    )
    parser.add_argument("results", help="the sweep's results folder")
    parser.add_argument(
        "--metric",
        default=None,
        help="test metric to compare (default: f1, mae or crop_dice; "
        "best_epoch: epochs to convergence)",
    )
    parser.add_argument("--by", default="init", choices=_BY, help="what to compare")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="significance level")
    parser.add_argument("--csv", default=None, help="also write the tests to this CSV file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the tests; returns 0."""
    from radiologynet._atomic import atomic_write_text
    from radiologynet.report.results import load_results
    from radiologynet.report.tables import comparisons, modality_tests

    runs = load_results(args.results)
    found = comparisons(runs, args.metric, by=args.by, alpha=args.alpha)
    if not found:
        print(f"nothing to compare: no task x model has two or more groups of {args.by}")
    rows = []
    for key, comparison in found:
        where = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in key.items()
        )
        print(f"{where} ({comparison.metric})")
        for test in comparison.results():
            print(_line(test))
            rows.append({**key, "metric": comparison.metric, **test.as_dict()})
        if not comparison.posthoc_warranted and not comparison.kruskal.not_run:
            print(
                "    Kruskal-Wallis finds no difference: the pairwise tests are for "
                "information only."
            )
    if args.by == "init":
        for key, test in modality_tests(runs, args.metric, alpha=args.alpha):
            print(
                f"task={key['task']}, model={key['model']}, lr={key['lr']} (modality)\n"
                f"{_line(test)}"
            )
            rows.append({**key, **test.as_dict()})
    if args.csv:
        pd = require("pandas", "radiologynet compare")

        atomic_write_text(args.csv, pd.DataFrame(rows).to_csv(index=False))
    return 0


def _line(test) -> str:
    return (
        f"  {test.test:13s} {' vs '.join(test.groups):40s} n={','.join(map(str, test.n))}"
        f"  stat={test.statistic:.4g}  p={test.p:.4g}  p_corr={test.p_corrected:.4g}  "
        f"{'*' if test.significant else ' '} {test.decision}"
    )
