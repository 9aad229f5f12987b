"""The ``radiologynet`` command line.

Each sub-command lives in its own module under :mod:`radiologynet.commands` and exposes
``register(subparsers)``; this module discovers them, so adding a command touches one file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from radiologynet import __version__
from radiologynet.errors import RadiologyNetError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every discovered sub-command."""
    parser = argparse.ArgumentParser(
        prog="radiologynet",
        description="RadiologyNET foundation models for medical-imaging transfer learning.",
    )
    parser.add_argument("--version", action="version", version=f"radiologynet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import radiologynet.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"radiologynet.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except RadiologyNetError as err:
        print(f"radiologynet {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
