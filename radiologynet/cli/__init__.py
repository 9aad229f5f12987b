"""The ``radiologynet`` command line.

Sub-commands are looked up by name in :data:`radiologynet.cli.commands.COMMANDS` and only the
one being run is imported, so ``radiologynet --help``, ``--version``, ``list`` and ``info``
never import torch. Every :class:`~radiologynet.errors.RadiologyNetError` (a missing extra
included) is printed as one line, with exit code 1.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

from radiologynet import __version__
from radiologynet.cli.commands import COMMANDS, load
from radiologynet.cli.options import OneLineParser, error_text, harden
from radiologynet.errors import RadiologyNetError

PROG = "radiologynet"


def _command_name(argv: Sequence[str]) -> str | None:
    """The sub-command named on the command line (the first non-option argument)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every command named with its help from :data:`COMMANDS`, and
    the options of ``command`` (its module is imported and fills its parser)."""
    parser = OneLineParser(
        prog=PROG,
        description="RadiologyNET foundation models for medical-imaging transfer learning.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineParser
    )
    for name, entry in COMMANDS.items():
        command_parser = subparsers.add_parser(name, help=entry.help)
        if name == command:
            load(name).register(command_parser)
            harden(name, command_parser)
    return parser


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_name(argv)
    if command not in COMMANDS:
        command = None  # argparse reports the unknown name with the list of commands
    try:
        args = build_parser(command).parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return 2
        result = args.func(args)
    except RadiologyNetError as err:
        where = f"{PROG} {command}" if command else PROG
        print(f"{where}: error: {_one_line(error_text(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def console_main() -> int:
    """The ``radiologynet`` script and ``python -m radiologynet``: :func:`main`, then
    ``gc.freeze()`` so the interpreter's exit skips the cycle collector's passes over the
    half-million objects torch and timm leave behind (1.6 s of every command that trained or
    converted a model, on 2 cores). Call :func:`main` from Python code instead: freezing
    there would keep the caller's garbage alive."""
    try:
        code = main()
    except BaseException:
        _stop_children()
        raise
    if code:
        _stop_children()
    gc.freeze()
    return code


def _stop_children(grace_s: float = 5.0) -> None:
    """End the processes a failed command started and left running (DataLoader workers,
    decoding pools), so none outlives it holding the caller's pipes: terminated, then
    killed after ``grace_s``. Only for the command-line process (:func:`console_main`):
    a Python caller's own children are not this library's to end."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(grace_s)
        if child.is_alive():
            child.kill()
            child.join(grace_s)
