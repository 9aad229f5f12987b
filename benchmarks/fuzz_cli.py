"""Fuzz campaign over the command line: one bad value at a time for every path and number
option of every command, counted by outcome.

The options come from the commands' own parsers (a new option is fuzzed as soon as it is
added); path options are those of ``radiologynet.cli.options.PATH_OPTIONS``. Every
case runs in-process through ``radiologynet.cli.main`` in a fresh sandbox folder
holding a folder, a file, a FIFO and (as root) a character device.

Outcomes:
    refused     one line on stderr, a non-zero exit, no traceback, nothing written
    traceback   an exception escaped the command line (a bug)
    multiline   refused, in more than one line (a bug)
    wrote       refused, after creating or changing files (a bug)
    accepted    exit 0: the value was taken (a bug for these values)
    timeout     still running after --timeout seconds: the value was taken (a bug)

``tests/test_cli_args.py`` runs the same cases for every option on every test run.

    PYTHONPATH=. python benchmarks/fuzz_cli.py [--commands finetune,report] [--timeout 20]

(``PYTHONPATH`` picks the tree fuzzed: point it at another checkout to compare.)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import stat
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

OUTCOMES = ("refused", "traceback", "multiline", "wrote", "accepted", "timeout")

#: Path options by command: the command line's own table.
from radiologynet.cli.options import PATH_OPTIONS as PATHS  # noqa: E402

#: Valid required arguments of each command (tests/test_cli_args.py reads this table).
BASE_ARGV = {
    "list": [],
    "info": ["resnet50.radiologynet"],
    "download": ["resnet50.radiologynet", "--to", "{out}"],
    "convert": ["{file}", "--out", "{out}"],
    "publish": ["{dir}", "--repo-id", "org/name", "--dry-run"],
    "preprocess": ["{dir}", "--out", "{out}"],
    "finetune": ["--task", "btmr", "--data", "{dir}", "--model", "resnet18", "--out", "{out}"],
    "benchmark": ["--task", "btmr", "--data", "{dir}", "--out", "{out}"],
    "report": ["{dir}", "--out", "{out}"],
    "compare": ["{dir}"],
    "card-results": ["{dir}", "--weights-dir", "{dir}"],
    "gradcam": ["--model", "{dir}", "--images", "{file}", "--out", "{out}"],
    "pseudo-label": ["{dir}", "--out", "{outfile}"],
    "pretrain": ["--data", "{dir}", "--labels", "{file}", "--out", "{out}"],
    "pretrain-reconstruction": ["--data", "{dir}", "--out", "{out}"],
    "demo": ["--out", "{out}"],
    "predict": ["resnet18.radiologynet", "{dir}", "--num-classes", "2", "--out", "{outfile}"],
    "embed": ["{dir}", "--model", "resnet18", "--weights", "random", "--out", "{outfile}"],
    "export": ["resnet18.radiologynet", "--num-classes", "2", "--out", "{outfile}"],
    "probe": ["{file}", "--out", "{out}"],
}

INT_VALUES = ("-1", "99999999999999999999", "abc", "1.5")
FLOAT_VALUES = ("nan", "inf", "-inf", "-1", "1e999", "abc")


def _sandbox(root: Path) -> dict[str, str]:
    (root / "dir").mkdir()
    (root / "dir" / "a.png").write_bytes(b"x")
    (root / "file.txt").write_text("x")
    os.mkfifo(root / "fifo")
    places = {
        "dir": str(root / "dir"),
        "file": str(root / "file.txt"),
        "fifo": str(root / "fifo"),
        "out": str(root / "new-out"),
        "outfile": str(root / "new-labels.csv"),
    }
    try:
        os.mknod(root / "device", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        places["device"] = str(root / "device")
    except PermissionError:
        pass
    return places


def _path_values(kind: str, places: dict[str, str]) -> list[str]:
    special = [places["fifo"]] + ([places["device"]] if "device" in places else [])
    if kind.startswith("out"):
        other = places["file"] if kind == "out_dir" else places["dir"]
        return special + [
            other,
            places["file"] + "/sub",
            places["dir"] + "/" + "x" * 300,
            "/proc/radiologynet-fuzz/out",
        ]
    wrong = {"dir": [places["file"]], "file": [places["dir"]]}.get(kind, [])
    return special + [places["dir"] + "/missing"] + wrong


def _number_kind(action: argparse.Action) -> str | None:
    kind = action.type
    name = getattr(kind, "__name__", type(kind).__name__)
    if kind is int or name == "IntRange":
        return "int"
    if kind is float or name == "FloatRange":
        return "float"
    return None


def cases(commands: list[str], places: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    """``(command, option, argv)`` for every bad value of every option."""
    from radiologynet.cli import build_parser

    out = []
    for name in commands:
        parser = build_parser(name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        base = [name] + [a.format(**places) for a in BASE_ARGV[name]]
        for action in sub.choices[name]._actions:
            label = action.option_strings[-1] if action.option_strings else action.dest
            kind = PATHS.get(name, {}).get(label)
            number = _number_kind(action)
            if kind is not None:
                values = _path_values(kind, places)
            elif number is not None:
                values = list(INT_VALUES if number == "int" else FLOAT_VALUES)
            else:
                continue
            for value in values:
                out.append((name, label, _with_value(base, action, value)))
    return out


def _with_value(argv: list[str], action: argparse.Action, value: str) -> list[str]:
    if not action.option_strings:
        index = next(i for i, a in enumerate(argv) if i > 0 and not a.startswith("-"))
        return argv[:index] + [value] + argv[index + 1 :]
    flag = action.option_strings[-1]
    if flag in argv:
        index = argv.index(flag)
        return argv[:index] + [f"{flag}={value}"] + argv[index + 2 :]
    return argv + [f"{flag}={value}"]


def _snapshot(root: Path) -> list[tuple]:
    return sorted(
        (str(p.relative_to(root)), p.lstat().st_mode, p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in root.rglob("*")
    )


class _Timeout(Exception):
    pass


def run_case(argv: list[str], root: Path, timeout: int) -> tuple[str, str]:
    """Run one case in ``root`` (the working folder); returns ``(outcome, stderr)``."""
    from radiologynet.cli import main

    before = _snapshot(root)
    err, out = io.StringIO(), io.StringIO()

    def alarm(*_: object) -> None:
        raise _Timeout

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
    except _Timeout:
        return "timeout", err.getvalue()
    except BaseException as exc:  # noqa: BLE001 - what escaped is the finding
        return "traceback", f"{type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
    text = err.getvalue()
    if code == 0:
        return "accepted", text
    if "Traceback" in text:
        return "traceback", text
    if len(text.strip().splitlines()) != 1:
        return "multiline", text
    if _snapshot(root) != before:
        return "wrote", text
    return "refused", text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", default=",".join(BASE_ARGV), help="comma-separated")
    parser.add_argument("--timeout", type=int, default=20, help="seconds per case")
    parser.add_argument("--show", type=int, default=3, help="examples shown per bug outcome")
    args = parser.parse_args()
    commands = [c for c in args.commands.split(",") if c]
    counts: Counter[tuple[str, str]] = Counter()
    examples: dict[str, list[str]] = {}
    start = time.perf_counter()
    here = os.getcwd()
    total = 0
    for command in commands:
        with tempfile.TemporaryDirectory() as tmp:
            plan_root = Path(tmp) / "plan"
            plan_root.mkdir()
            places = _sandbox(plan_root)
            for _command, _option, argv in cases([command], places):
                case_root = Path(tmp) / f"case{total}"
                case_root.mkdir()
                mapped = [a.replace(str(plan_root), str(case_root)) for a in argv]
                _sandbox(case_root)
                os.chdir(case_root)
                try:
                    outcome, text = run_case(mapped, case_root, args.timeout)
                finally:
                    os.chdir(here)
                total += 1
                counts[(command, outcome)] += 1
                if outcome != "refused":
                    examples.setdefault(outcome, []).append(
                        f"{' '.join(argv)[:160]} -> {' '.join(text.split())[:200]}"
                    )
    print(f"{total} cases over {len(commands)} commands in {time.perf_counter() - start:.0f} s")
    print(f"{'command':26s} " + " ".join(f"{o:>9s}" for o in OUTCOMES))
    for command in commands:
        row = [counts[(command, o)] for o in OUTCOMES]
        if sum(row):
            print(f"{command:26s} " + " ".join(f"{n:9d}" for n in row))
    totals = [sum(counts[(c, o)] for c in commands) for o in OUTCOMES]
    print(f"{'total':26s} " + " ".join(f"{n:9d}" for n in totals))
    for outcome, lines in examples.items():
        print(f"\n{outcome}:")
        for line in lines[: args.show]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
