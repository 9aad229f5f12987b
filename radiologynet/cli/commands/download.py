"""``radiologynet download``: fetch weights into an offline bundle directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radiologynet.models._hub import WEIGHTS_DIR_ENV, bundle_weight
from radiologynet.models._weights import get_weights, list_weights


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Download (and convert) weights into DIR, one folder per weight, for "
        f"machines with no internet: copy DIR there and set {WEIGHTS_DIR_ENV}=DIR. "
        "Name the weights, or pass --all."
    )
    parser.add_argument(
        "names", nargs="*", help="arch.tag[@version], e.g. resnet50.radiologynet (or use --all)"
    )
    parser.add_argument("--to", required=True, type=Path, help="the bundle directory")
    parser.add_argument(
        "--all", action="store_true", help="every released weight of the zoo (instead of names)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.all == bool(args.names):
        problem = "names and --all together" if args.all else "no weight named"
        print(
            f"radiologynet download: error: {problem}; name the weights (e.g. "
            "resnet50.radiologynet) or pass --all",
            file=sys.stderr,
        )
        return 2
    if args.all:
        records = [r for r in list_weights() if r.released]
    else:
        records = [get_weights(name) for name in args.names]
    for record in records:
        target = bundle_weight(record, args.to)
        print(f"{record.full_name}: {target}")
    print(f"Bundle ready. On the offline machine: export {WEIGHTS_DIR_ENV}={args.to.resolve()}")
    return 0
