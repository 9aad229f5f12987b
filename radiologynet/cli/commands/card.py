"""``radiologynet card-results RESULTS --weights-dir DIR``: a sweep's results into a
weights folder's model card (README.md) and config.json."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``card-results`` parser: description, options and ``func``."""
    parser.description = (
        "Summarise the sweep's runs of the folder's architecture (best lr by "
        "validation, mean ± std per init) into README.md (a section between "
        "markers, replaced on update) and config.json "
        "(radiologynet.downstream_results)."
    )
    parser.add_argument("results", help="the sweep's results folder")
    parser.add_argument(
        "--weights-dir",
        required=True,
        help="the weights folder to update (config.json + README.md)",
    )
    parser.add_argument(
        "--arch", default=None, help="architecture whose runs to use (default: the folder's)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Update the folder; prints what was written."""
    from radiologynet.analysis.report.modelcard_results import write_card_results

    rows = write_card_results(args.results, args.weights_dir, arch=args.arch)
    tasks = sorted({r["task"] for r in rows})
    print(
        f"wrote {len(rows)} result rows ({', '.join(tasks)}) into "
        f"{args.weights_dir}/config.json and README.md"
    )
    return 0
