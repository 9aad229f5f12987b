"""Bad command-line values: each gives a non-zero exit and exactly one line on stderr,
before any training or decoding starts (run in-process through ``radiologynet.cli.main``)."""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path

import pytest
import torch

from radiologynet.cli import main

FINETUNE = [
    "finetune",
    "--task",
    "btmr",
    "--model",
    "resnet18",
    "--weights",
    "random",
    "--no-progress",
]
BENCHMARK = [
    "benchmark",
    "--task",
    "btmr",
    "--models",
    "resnet18",
    "--inits",
    "random",
    "--no-progress",
]

CASES = [
    # (name, argv after the command's required options, text the error must contain)
    ("finetune batch size 0", FINETUNE + ["--batch-size", "0"], "--batch-size"),
    ("finetune max epochs 0", FINETUNE + ["--max-epochs", "0"], "--max-epochs"),
    ("finetune input size 0", FINETUNE + ["--input-size", "0"], "--input-size"),
    ("finetune input size -32", FINETUNE + ["--input-size", "-32"], "--input-size"),
    ("finetune workers -1", FINETUNE + ["--workers", "-1"], "--workers"),
    ("finetune device banana", FINETUNE + ["--device", "banana"], "--device 'banana'"),
    ("finetune device cuda, no GPU", FINETUNE + ["--device", "cuda"], "no CUDA GPU"),
    ("finetune lr inf", FINETUNE + ["--lr", "inf"], "learning rate 'inf'"),
    ("finetune lr nan", FINETUNE + ["--lr", "nan"], "learning rate 'nan'"),
    ("finetune patience 0", FINETUNE + ["--patience", "0"], "--patience"),
    ("finetune seed -1", FINETUNE + ["--seed", "-1"], "--seed"),
    (
        "finetune checkpoint interval -1",
        FINETUNE + ["--checkpoint-interval", "-1"],
        "--checkpoint-interval",
    ),
    (
        "finetune --paper --head pooled",
        FINETUNE + ["--paper", "--head", "pooled"],
        "drop --paper or --head pooled",
    ),
    (
        "benchmark --paper --precision bf16",
        BENCHMARK + ["--paper", "--precision", "bf16"],
        "drop --paper or --precision bf16",
    ),
    ("benchmark models ,", BENCHMARK[:3] + ["--models", ","], "--models lists nothing"),
    ("benchmark lrs ,", BENCHMARK + ["--lrs", ","], "--lrs lists nothing"),
    ("benchmark inits ,", BENCHMARK[:5] + ["--inits", ","], "--inits lists nothing"),
    ("benchmark batch size 0", BENCHMARK + ["--batch-size", "0"], "--batch-size"),
    ("benchmark runs 0", BENCHMARK + ["--runs", "0"], "--runs: must be an integer from 1"),
]


@pytest.fixture
def no_gpu(monkeypatch):
    """Every case sees a machine without CUDA (the answer must not depend on the host)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _exit_code(argv: list[str]) -> int:
    """``main``'s exit code; a refusal while parsing exits (argparse's SystemExit, 2)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def _one_line_error(capsys, argv: list[str]) -> str:
    code = _exit_code(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code != 0, f"{argv} exited 0"
    assert len(lines) == 1, f"{argv}: expected one line on stderr, got {captured.err!r}"
    return lines[0]


@pytest.mark.parametrize("argv,expected", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_is_one_line(argv, expected, tmp_path, capsys, no_gpu):
    full = argv + ["--data", str(tmp_path), "--out", str(tmp_path / "out")]
    line = _one_line_error(capsys, full)
    assert expected in line
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize("command", [FINETUNE, BENCHMARK], ids=["finetune", "benchmark"])
def test_out_pointing_at_a_file(command, tmp_path, capsys, no_gpu):
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    line = _one_line_error(capsys, command + ["--data", str(tmp_path), "--out", str(target)])
    assert str(target) in line and "not a folder" in line


def test_preprocess_size_zero(tmp_path, capsys):
    from PIL import Image

    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    line = _one_line_error(
        capsys, ["preprocess", str(tmp_path), "--out", str(tmp_path / "cache"), "--size", "0"]
    )
    assert "--size" in line
    assert not (tmp_path / "cache" / "images.npy").exists()


def test_read_only_output_is_one_line(tmp_path, capsys, monkeypatch, no_gpu):
    import errno

    import radiologynet.protocol.runner as runner

    def read_only(path, obj, **kw):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    from tests.datasets_fakes import make_btmr

    monkeypatch.setattr(runner, "atomic_write_json", read_only)
    data = make_btmr(tmp_path / "btmr")  # data is checked before anything is written
    line = _one_line_error(
        capsys,
        FINETUNE + ["--data", str(data), "--out", str(tmp_path / "out"), "--input-size", "32"],
    )
    assert "result.json" in line and "read-only" in line


def test_paper_defaults_and_explicit_options():
    import argparse

    from radiologynet.cli.options import add_training_options, run_configuration

    parser = argparse.ArgumentParser()
    add_training_options(parser)

    def chosen(argv: list[str], paper: bool) -> tuple[str, str]:
        config, settings = run_configuration(parser.parse_args(argv), paper=paper)
        return settings.head, config.precision

    assert chosen([], paper=True) == ("paper", "fp32")  # benchmark
    assert chosen([], paper=False) == ("pooled", "auto")  # finetune on the user's own data
    assert chosen(["--paper"], paper=False)[0] == "paper"
    # the project's options stay available
    assert chosen(["--head", "pooled", "--precision", "bf16"], paper=True) == ("pooled", "bf16")


def test_finetune_and_benchmark_read_the_shared_training_options_alike(tmp_path):
    """One definition of the training options: the same words give the same settings in
    both commands (``--seed`` is the split seed in both), and what is not given keeps
    TrainConfig's default."""
    from radiologynet.cli import build_parser
    from radiologynet.cli.options import RUN_SETTINGS, TRAINING_SETTINGS, run_configuration
    from radiologynet.protocol.runner import RunSettings
    from radiologynet.train import TrainConfig

    assert set(TRAINING_SETTINGS) - set(RUN_SETTINGS) <= set(TrainConfig.field_names())
    assert set(RUN_SETTINGS) <= {f.name for f in dataclasses.fields(RunSettings)}
    assert set(RUN_SETTINGS) <= set(TRAINING_SETTINGS)
    assert not set(RUN_SETTINGS) & set(TrainConfig.field_names())
    given = ["--seed", "3", "--workers", "2", "--checkpoint-interval", "30", "--max-epochs", "5"]
    given += ["--input-size", "64"]
    for command, paper in ((FINETUNE, False), (BENCHMARK, True)):
        argv = command + ["--data", str(tmp_path)]
        config, run = run_configuration(
            build_parser(command[0]).parse_args(argv + given), paper=paper
        )
        assert (run.split_seed, config.num_workers, config.checkpoint_interval_s) == (3, 2, 30)
        assert config.max_epochs == 5 and run.input_size == 64
        plain, plain_run = run_configuration(build_parser(command[0]).parse_args(argv), paper=paper)
        assert (plain.patience, plain.checkpoint_interval_s) == (
            TrainConfig.patience,
            TrainConfig.checkpoint_interval_s,
        )
        assert (plain_run.split_seed, plain_run.input_size) == (
            RunSettings.split_seed,
            RunSettings.input_size,
        )


def test_a_bad_setting_names_the_field_in_python_and_the_option_on_the_command_line():
    import pickle

    from radiologynet.cli.options import error_text
    from radiologynet.errors import InvalidSettingError
    from radiologynet.train import TrainConfig

    with pytest.raises(InvalidSettingError) as err:
        TrainConfig(num_workers=-1)
    assert str(err.value) == "num_workers must be an integer >= 0, got -1"
    assert error_text(err.value) == "--workers must be an integer >= 0, got -1"
    again = pickle.loads(pickle.dumps(err.value))  # crosses process boundaries intact
    assert (again.setting, str(again)) == ("num_workers", str(err.value))


def test_preprocess_names_its_decoding_threads_threads(tmp_path):
    """``--workers`` means DataLoader processes (finetune, benchmark); preprocess decodes
    with threads and says so."""
    from radiologynet.cli import build_parser

    src, out = str(tmp_path), str(tmp_path / "c")
    args = build_parser("preprocess").parse_args(
        ["preprocess", src, "--out", out, "--threads", "2"]
    )
    assert args.threads == 2
    with pytest.raises(SystemExit):
        build_parser("preprocess").parse_args(["preprocess", src, "--out", out, "--workers", "2"])


# --------------------------------------------------------------------------- generated
#
# One bad value at a time for every validated option of every command, generated from the
# commands' own parsers: a new option is covered as soon as it is added. Each case must be
# one line on stderr, exit 1, no traceback, and leave the folder exactly as it was.

#: Valid required arguments of each command ({dir}: an existing folder, {file}: an
#: existing file, {out}: a new folder, {outfile}: a new file).
#: Valid required arguments of each command: the CLI campaign's table
#: (benchmarks/fuzz_cli.py), which these tests run in-process.
BASE_ARGV = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks/fuzz_cli.py"))[
    "BASE_ARGV"
]


def _command_parser(name: str):
    import argparse

    from radiologynet.cli import build_parser

    parser = build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _bad_values(action, places) -> list[tuple[str, str]]:
    """(case name, bad value) for one validated option."""
    from radiologynet.cli.options import FloatRange, IntRange, PathOption

    kind = action.type
    if isinstance(kind, IntRange):
        return [
            ("below", str(kind.low - 1)),
            ("above", str(kind.high + 1)),
            ("huge", "99999999999999999999"),
            ("text", "abc"),
            ("float", "1.5"),
        ]
    if isinstance(kind, FloatRange):
        cases = [("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("text", "abc")]
        cases += [("below", str(kind.low - 1))] if kind.low > -1e300 else []
        cases += [("above", str(kind.high + 1))] if kind.high < 1e300 else []
        return cases
    assert isinstance(kind, PathOption), action
    special = [("fifo", places["fifo"])] + (
        [("device", places["device"])] if places["device"] else []
    )
    if kind.kind.startswith("out"):
        other = places["file"] if kind.kind == "out_dir" else places["dir"]
        return special + [
            ("other kind", other),
            ("under a file", places["file"] + "/sub"),
            ("long name", places["dir"] + "/" + "x" * 300),
            ("under /proc", "/proc/radiologynet-cli-test/out"),
        ]
    cases = special + [("missing", places["dir"] + "/missing")]
    if kind.kind == "dir":
        cases.append(("a file", places["file"]))
    if kind.kind == "file":
        cases.append(("a folder", places["dir"]))
    return cases


def _generated_cases():
    from radiologynet.cli.commands import COMMANDS
    from radiologynet.cli.options import FloatRange, IntRange, PathOption

    cases = []
    for name in COMMANDS:
        for action in _command_parser(name)._actions:
            if isinstance(action.type, (IntRange, FloatRange, PathOption)):
                label = action.option_strings[-1] if action.option_strings else action.dest
                cases.append(pytest.param(name, action.dest, id=f"{name} {label}"))
    return cases


@pytest.fixture
def places(tmp_path):
    import os
    import stat

    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.png").write_bytes(b"x")
    (tmp_path / "file.txt").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    device = tmp_path / "device"
    try:
        os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:  # creating a device node needs root; the FIFO stands in
        device = None
    return {
        "dir": str(tmp_path / "dir"),
        "file": str(tmp_path / "file.txt"),
        "fifo": str(tmp_path / "fifo"),
        "device": str(device) if device else None,
        "out": str(tmp_path / "new-out"),
        "outfile": str(tmp_path / "new-labels.csv"),
    }


def _snapshot(root):
    return sorted(
        (str(p.relative_to(root)), p.lstat().st_mode, p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in root.rglob("*")
    )


def _with_value(argv: list[str], action, value: str) -> list[str]:
    """``argv`` with ``action``'s value replaced (or added) by ``value``."""
    if not action.option_strings:  # a positional: the base argv's one in its place
        parser = _command_parser(argv[0])
        nth = [a.dest for a in parser._actions if not a.option_strings].index(action.dest)
        taken = [
            i
            for i, a in enumerate(argv)
            if i > 0 and not a.startswith("-") and not argv[i - 1].startswith("--")
        ]
        index = taken[nth]
        return argv[:index] + [value] + argv[index + 1 :]
    flag = action.option_strings[-1]
    if flag in argv:  # --flag=VALUE: a value such as -inf is not read as an option
        index = argv.index(flag)
        return argv[:index] + [f"{flag}={value}"] + argv[index + 2 :]
    return argv + [f"{flag}={value}"]


@pytest.mark.parametrize(("command", "dest"), _generated_cases())
def test_every_option_refuses_bad_values_in_one_line(
    command, dest, places, tmp_path, capsys, monkeypatch, no_gpu
):
    monkeypatch.chdir(tmp_path)
    action = next(a for a in _command_parser(command)._actions if a.dest == dest)
    base = [command] + [a.format(**places) for a in BASE_ARGV[command]]
    before = _snapshot(tmp_path)
    label = action.option_strings[-1] if action.option_strings else action.metavar or dest
    failures = []
    for case, value in _bad_values(action, places):
        argv = _with_value(base, action, value)
        code = _exit_code(argv)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        if code != 1 or len(lines) != 1 or "Traceback" in err or label not in err:
            failures.append(f"{case}: exit {code}, stderr {err!r}")
        if _snapshot(tmp_path) != before:
            failures.append(f"{case}: wrote {set(_snapshot(tmp_path)) - set(before)}")
    assert not failures, "\n".join(failures)


def test_every_command_has_base_arguments_and_no_unvalidated_path_or_number():
    from pathlib import Path

    from radiologynet.cli.commands import COMMANDS

    assert set(BASE_ARGV) == set(COMMANDS), "give a new command its BASE_ARGV"
    for name in COMMANDS:
        for action in _command_parser(name)._actions:
            assert action.type not in (int, float, Path), (name, action.dest)


def test_a_failed_command_leaves_no_child_process_running(tmp_path):
    """Before: a failed finetune could leave DataLoader workers holding the caller's pipes."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        f"""
        import multiprocessing, sys, time
        from radiologynet.cli import console_main

        if __name__ == "__main__":
            worker = multiprocessing.Process(target=time.sleep, args=(120,))
            worker.start()  # stands for a DataLoader worker the command started
            sys.argv = ["radiologynet", "compare", {str(tmp_path / "missing")!r}]
            code = console_main()
            print(worker.is_alive(), flush=True)
            sys.exit(code)
        """
    )
    script = tmp_path / "fail.py"
    script.write_text(code)
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])  # this tree's radiologynet
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip() == "False"
    assert len(proc.stderr.strip().splitlines()) == 1
