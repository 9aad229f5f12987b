"""Start-up time of the command line against importing timm, measured in the same run.

Each command runs as a fresh process (``python -m radiologynet ...`` with this checkout on
``PYTHONPATH``); the baseline is ``python -c "import timm"``. Runs are interleaved
(baseline, --help, list, baseline, ...) so a busy machine slows all alike, and the best of
``--repeats`` is kept. Target: each ratio <= 0.1x.

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import timm (baseline)": [sys.executable, "-c", "import timm"],
    "radiologynet --help": [sys.executable, "-m", "radiologynet", "--help"],
    "radiologynet list": [sys.executable, "-m", "radiologynet", "list"],
}
TARGET = 0.1


def time_once(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one run of ``argv`` (its output discarded; a failure aborts)."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each (best kept)")
    args = parser.parse_args(argv)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    for command in COMMANDS.values():  # warm the file cache once, untimed
        time_once(command, env)
    best = dict.fromkeys(COMMANDS, float("inf"))
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            best[name] = min(best[name], time_once(command, env))
    baseline = best["import timm (baseline)"]
    print(f"best of {args.repeats}, interleaved, {os.cpu_count()} CPUs")
    worst = 0.0
    for name, seconds in best.items():
        ratio = seconds / baseline
        if name != "import timm (baseline)":
            worst = max(worst, ratio)
        print(f"  {name:24s} {seconds:6.3f} s   {ratio:5.2f}x")
    verdict = "meets" if worst <= TARGET else "misses"
    print(f"worst ratio {worst:.2f}x {verdict} the target <= {TARGET}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
