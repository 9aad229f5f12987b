"""``radiologynet demo``: fine-tune and evaluate end to end on generated data, offline."""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from radiologynet.cli.options import option


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``demo`` parser: description, options and ``func``."""
    parser.description = (
        "Generate small synthetic radiographs, pretrain a backbone on a "
        "pseudo-labelled synthetic archive, and compare it with random "
        "initialisation through the real benchmark runner. No download."
    )
    parser.add_argument(
        "--out", default="radiologynet-demo", help="working folder (default ./radiologynet-demo)"
    )
    default = _run_demo_defaults()
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"fine-tuning runs per initialisation (default {default['runs']})",
    )
    parser.add_argument(
        option("max_epochs"),
        dest="max_epochs",
        type=int,
        default=None,
        help=f"epoch budget of each fine-tuning run (default {default['max_epochs']})",
    )
    parser.add_argument("--model", default=None, help=f"architecture (default {default['model']})")
    parser.add_argument(
        option("input_size"),
        dest="input_size",
        type=int,
        default=None,
        help=f"input side in pixels (default {default['input_size']}, at least 32)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the full demo: pseudo-label a synthetic DICOM archive, pretrain, "
        "fine-tune, report (longer)",
    )
    parser.set_defaults(func=run)


def _run_demo_defaults() -> dict[str, Any]:
    """The keyword defaults of :func:`radiologynet.demo.quick.run_demo` (shown in --help)."""
    from radiologynet.demo.quick import run_demo

    return {
        name: param.default
        for name, param in inspect.signature(run_demo).parameters.items()
        if param.default is not inspect.Parameter.empty
    }


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
