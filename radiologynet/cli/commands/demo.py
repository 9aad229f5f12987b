"""``radiologynet demo``: fine-tune and evaluate end to end on generated data, offline."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="offline end-to-end demo on generated radiographs (about a minute on CPU)",
        description="Generate small synthetic radiographs, pretrain a backbone on a "
        "pseudo-labelled synthetic archive, and compare it with random "
        "initialisation through the real benchmark runner. No download.",
    )
    parser.add_argument(
        "--out", default="radiologynet-demo", help="working folder (default ./radiologynet-demo)"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per initialisation (default 3)"
    )
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="fine-tuning epochs (default 6)"
    )
    parser.add_argument("--model", default=None, help="architecture (default resnet18)")
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="input side in pixels (default 48, at least 32)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the full demo: pseudo-label a synthetic DICOM archive, pretrain, "
        "fine-tune, report (longer)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    if args.full:
        from radiologynet.demo.full import run_full_demo

        run_full_demo(args.out)
        return 0
    from radiologynet.demo.quick import run_demo

    given = {
        "model": args.model,
        "input_size": args.input_size,
        "runs": args.runs,
        "max_epochs": args.max_epochs,
    }
    run_demo(args.out, **{k: v for k, v in given.items() if v is not None})
    return 0
