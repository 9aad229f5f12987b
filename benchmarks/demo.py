"""How long ``radiologynet demo`` takes, and what share of it is training compute.

Runs the demo as a user would (``python -m radiologynet demo``, a fresh process, into a
temporary folder) and reports, from one run:

- the process wall time and its CPU time (user + sys, from ``getrusage``);
- the demo's own per-phase breakdown (its ``timings.json``: import, data generation,
  setup, pretraining, fine-tuning, evaluation, writing);
- the training-compute share: pretraining + fine-tuning steps over the process wall
  time (target >= 0.70, with a wall time <= 90 s on 2 idle cores).

With ``--repeats N`` the demo runs N times and the run with the median wall time is
reported, every run's wall time and share beside it.

CPU time close to the wall time means the demo had the cores to itself; far below it,
other processes were competing and the wall time overstates the demo's cost.

Usage::

    python benchmarks/demo.py [--json result.json] [--repeats 3] [-- extra demo arguments]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WALL_TARGET_S = 90.0
SHARE_TARGET = 0.70


def summarise(timings: dict[str, Any], wall_s: float, cpu_s: float) -> dict[str, Any]:
    """One result from the demo's ``timings.json`` and the process's wall and CPU time:
    the demo's phases, process start-up (the wall time the demo itself did not see), the
    training share of the process wall time, and whether the targets were met."""
    phases = dict(timings["phases"])
    startup = max(0.0, wall_s - float(timings["total_s"]))
    training = float(timings["training_s"])
    share = training / wall_s if wall_s > 0 else 0.0
    return {
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "cpu_over_wall": round(cpu_s / wall_s, 3) if wall_s > 0 else 0.0,
        "process_startup_s": round(startup, 2),
        "phases_s": phases,
        "training_s": round(training, 2),
        "training_share_of_wall": round(share, 4),
        "targets": {
            "wall_s": WALL_TARGET_S,
            "training_share": SHARE_TARGET,
            "wall_met": wall_s <= WALL_TARGET_S,
            "share_met": share >= SHARE_TARGET,
        },
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time, with every run's wall time and training share
    beside it (``repeats``); one run is returned as it is."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    result = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        result["repeats"] = [
            {"wall_s": r["wall_s"], "training_share_of_wall": r["training_share_of_wall"]}
            for r in runs
        ]
    return result


def run_demo(extra: list[str]) -> dict[str, Any]:
    """Run the demo once in a fresh process; return :func:`summarise` of it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "radiologynet", "demo", "--out", str(out), *extra],
            check=True,
            env=os.environ.copy(),
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        timings = json.loads((out / "timings.json").read_text())
    return summarise(timings, wall, cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="also write the result to this file")
    parser.add_argument(
        "demo_args",
        nargs=argparse.REMAINDER,
        help="after --: arguments passed to `radiologynet demo`",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="run the demo this many times; report the median"
    )
    args = parser.parse_args(argv)
    extra = [a for a in args.demo_args if a != "--"]
    runs = [run_demo(extra) for _ in range(max(1, args.repeats))]
    result = median_run(runs)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "load_1min_after": os.getloadavg()[0],
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    print()
    print(
        f"demo wall {result['wall_s']:.1f} s (target <= {WALL_TARGET_S:.0f} s), "
        f"CPU {result['cpu_s']:.1f} s ({result['cpu_over_wall']:.2f} of wall; "
        f"well under 1 with one thread means a busy machine), "
        f"process start-up {result['process_startup_s']:.1f} s"
    )
    print(
        f"training compute {result['training_s']:.1f} s = "
        f"{100 * result['training_share_of_wall']:.0f} % of the wall time "
        f"(target >= {100 * SHARE_TARGET:.0f} %)"
    )
    if args.json:
        from radiologynet._atomic import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
