"""``radiologynet download``: fetch weights into an offline bundle directory."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from radiologynet._atomic import atomic_dir
from radiologynet.hub import WEIGHTS_DIR_ENV, resolve_record
from radiologynet.weights import WeightRecord, get_weights, list_weights


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download", help="download weights into an offline bundle",
        description="Download (and convert) weights into DIR, one folder per weight, for "
                    f"machines with no internet: copy DIR there and set {WEIGHTS_DIR_ENV}=DIR. "
                    "Name the weights, or pass --all.")
    parser.add_argument("names", nargs="*",
                        help="arch.tag[@version], e.g. resnet50.radiologynet (or use --all)")
    parser.add_argument("--to", required=True, type=Path, help="the bundle directory")
    parser.add_argument("--all", action="store_true",
                        help="every released weight of the zoo (instead of names)")
    parser.set_defaults(func=run)


def bundle_weight(record: WeightRecord, to: Path) -> Path:
    """Resolve ``record`` and place it as ``to/<arch.tag@version>/``, a weights folder
    (written as a whole: a half-copied bundle entry never appears)."""
    resolved = resolve_record(record)
    source_dir = resolved.file.parent
    target = to / record.full_name
    with atomic_dir(target) as staging:
        if (source_dir / "config.json").is_file():
            shutil.copytree(source_dir, staging, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.lock", ".*"))
        else:  # a bare model.safetensors (e.g. from the Hub): give it its config and card
            from safetensors.torch import load_file

            from radiologynet.convert import write_weights_folder

            write_weights_folder(load_file(str(resolved.file)), staging,
                                 arch=record.architecture, record=record)
    return target


def run(args: argparse.Namespace) -> int:
    if args.all == bool(args.names):
        problem = ("names and --all together" if args.all else "no weight named")
        print(f"radiologynet download: error: {problem}; name the weights (e.g. "
              "resnet50.radiologynet) or pass --all", file=sys.stderr)
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
