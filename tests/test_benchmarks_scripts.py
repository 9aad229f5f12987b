"""The scripts in ``benchmarks/`` run to completion and report what they claim to."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_benchmark_share_is_training_over_process_wall():
    demo = _load("demo")
    timings = {
        "total_s": 50.0,
        "training_s": 40.0,
        "training_share": 0.8,
        "phases": {"import": 3.0, "pretraining": 10.0, "fine-tuning": 30.0},
    }
    result = demo.summarise(timings, wall_s=60.0, cpu_s=45.0)
    assert result["process_startup_s"] == pytest.approx(10.0)
    assert result["training_share_of_wall"] == pytest.approx(40.0 / 60.0, abs=1e-4)
    assert result["cpu_over_wall"] == pytest.approx(0.75)
    assert result["targets"]["wall_met"] is True and result["targets"]["share_met"] is False
    fast = demo.summarise(timings, wall_s=52.0, cpu_s=52.0)
    assert fast["targets"]["share_met"] is True
    slow = demo.summarise(timings, wall_s=120.0, cpu_s=60.0)
    assert slow["targets"]["wall_met"] is False
    median = demo.median_run([slow, result, fast])
    assert median["wall_s"] == 60.0 and [r["wall_s"] for r in median["repeats"]] == [
        120.0,
        60.0,
        52.0,
    ]
    assert demo.median_run([fast]) == fast


def test_preprocess_benchmark_measures_every_path_and_the_ceiling(capsys):
    argv = ["--images", "6", "--batch", "4", "--size", "32", "--epochs", "1"]
    _load("preprocess").main([*argv, "--repeats", "2", "--min-seconds", "0"])
    printed = capsys.readouterr().out
    assert "median of 2 interleaved repeats" in printed
    rows = [line for line in printed.splitlines() if line.rstrip().endswith("%)")]
    assert [row.split("  ")[1] for row in rows] == [
        "decode every epoch, PIL + torchvision",
        "radiologynet from files",
        "radiologynet from cache (item DataLoader + BatchTransform)",
        "radiologynet from cache (trainer: batch_loader + BatchTransform)",
        "radiologynet from cache (cache.batch + BatchTransform)",
        "ceiling: BatchTransform alone on a batch in memory",
    ]
    assert " 1.0x " in rows[0] and rows[-1].split()[-4] == "1.00"  # each against its baseline


@pytest.mark.slow
def test_gpu_suite_runs_to_completion_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "gpu.py"),
            "--tiny",
            "--device",
            "cpu",
            "--json",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["tiny"] is True and result["device"] == "cpu"
    assert set(result["models"]) == {"resnet50", "mobilenet_v3_small"}
    for rates in result["models"].values():
        assert rates["ceiling_img_s"] > 0 and rates["trainer_img_s"] > 0
        assert rates["textbook_img_s"] > 0
        assert rates["trainer_of_ceiling"] == pytest.approx(
            rates["trainer_img_s"] / rates["ceiling_img_s"], rel=0.05
        )
        assert rates["trainer_over_textbook"] == pytest.approx(
            rates["trainer_img_s"] / rates["textbook_img_s"], rel=0.05
        )
    protocol = result["protocol"]
    assert len(protocol["sampled_runs"]) == len(result["sizes"]["protocol_lrs"])
    for run in protocol["sampled_runs"]:
        assert 1 <= run["epochs_run"] <= result["sizes"]["protocol_max_epochs"]
    expected = sum(15 * run["wall_s"] for run in protocol["sampled_runs"])
    assert protocol["estimated_wall_s"] == pytest.approx(expected, rel=1e-6, abs=0.006)
    # the generated task is the folder layout the protocol runner read
    work = tmp_path / "work" / "task"
    assert len(list((work / "train").glob("*/*.jpg"))) == result["sizes"]["train"]
    assert (tmp_path / "work" / "results").is_dir()


def test_augment_draw_benchmark_times_both_draws_of_both_augmentations(capsys):
    bench = _load("augment_draw")
    results = bench.measure(batch=4, size=16, repeats=2, device="cpu")
    assert set(results) == {"default", "boneage"}
    assert all(set(t) == {"image", "batch"} and min(t.values()) > 0 for t in results.values())
    bench.main(["--batch", "2", "--size", "16", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 x 1 x 16 x 16 on cpu") and len(lines) == 3
    assert all("batch/image" in line for line in lines[1:])


def test_cli_fuzz_campaign_counts_outcomes_and_finds_no_bug_in_compare(tmp_path, monkeypatch):
    fuzz = _load("fuzz_cli")
    places = fuzz._sandbox(tmp_path)
    assert set(fuzz.PATHS) <= set(fuzz.BASE_ARGV)
    cases = fuzz.cases(["compare"], places)
    assert {option for _, option, _ in cases} == {"results", "--alpha", "--csv"}
    monkeypatch.chdir(tmp_path)
    outcomes = {fuzz.run_case(argv, tmp_path, timeout=60)[0] for _, _, argv in cases}
    assert outcomes == {"refused"}
    outcome, _ = fuzz.run_case(["list"], tmp_path, timeout=60)  # a valid command: taken
    assert outcome == "accepted"


@pytest.mark.slow
def test_probe_benchmark_reports_its_time_against_one_fit(tmp_path, capsys):
    out = tmp_path / "probe.json"
    _load("probe").main(["--images", "300", "--dim", "16", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["initialisations"] == 3 and result["methods"] == ["logreg", "knn", "fewshot"]
    assert result["ratio_to_one_fit"] == pytest.approx(
        result["probe_s"] / result["baseline_fit_s"], rel=0.05
    )
    assert "the probe costs" in capsys.readouterr().out
