"""The README's set-up block is what CI runs: the same two commands, in .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_setup_is_two_commands():
    commands = _setup_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in command for command in commands), commands
    assert commands[0].startswith("pip install") and "radiologynet demo" in commands[0]
    assert commands[1].startswith("python -m pytest")


def test_ci_runs_the_readme_setup_commands():
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    install, tests = _setup_commands()
    assert install in ci, f"{install!r} is not a line of .ci/run"
    # CI adds flags (no cache folder, durations, a marker split) but runs the README's command
    runs = [line for line in ci if line.startswith(tests)]
    assert runs, f".ci/run does not run {tests!r}"
    assert all("-k " not in run for run in runs), "CI must not deselect tests by name"
