"""Bad command-line values: each gives a non-zero exit and exactly one line on stderr,
before any training or decoding starts (run in-process through ``radiologynet.cli.main``)."""

from __future__ import annotations

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
    ("benchmark runs 0", BENCHMARK + ["--runs", "0"], "runs must be >= 1"),
]


@pytest.fixture
def no_gpu(monkeypatch):
    """Every case sees a machine without CUDA (the answer must not depend on the host)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
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

    monkeypatch.setattr(runner, "atomic_write_json", read_only)
    line = _one_line_error(
        capsys, FINETUNE + ["--data", str(tmp_path), "--out", str(tmp_path / "out")]
    )
    assert "result.json" in line and "read-only" in line


def test_paper_defaults_and_explicit_options():
    import argparse

    from radiologynet.cli.commands.finetune import add_training_options, run_configuration

    parser = argparse.ArgumentParser()
    add_training_options(parser)
    parser.add_argument("--seed", type=int, default=0)

    def chosen(argv: list[str], paper: bool) -> tuple[str, str]:
        config, settings = run_configuration(parser.parse_args(argv), paper=paper)
        return settings.head, config.precision

    assert chosen([], paper=True) == ("paper", "fp32")  # benchmark
    assert chosen([], paper=False) == ("pooled", "auto")  # finetune on the user's own data
    assert chosen(["--paper"], paper=False)[0] == "paper"
    explicit = chosen(["--head", "pooled", "--precision", "bf16"], paper=True)
    # the project's options stay available
    assert explicit == ("pooled", "bf16")
