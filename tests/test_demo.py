"""``radiologynet demo``: generated data, the runner's results, the printed table."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from radiologynet.cli import main
from radiologynet.demo import (
    DEMO_CLASSES,
    make_demo_dataset,
    results_table,
    run_demo,
    synthetic_radiograph,
)


def test_synthetic_radiographs_are_seeded_and_differ_by_class():
    a = synthetic_radiograph("fracture", np.random.default_rng(0))
    b = synthetic_radiograph("fracture", np.random.default_rng(0))
    assert a.dtype == np.uint8 and a.shape == (64, 64)
    assert np.array_equal(a, b)
    # same seed, same body: the finding is the only difference between the classes
    normal = synthetic_radiograph("normal", np.random.default_rng(5)).astype(int)
    lesion = synthetic_radiograph("lesion", np.random.default_rng(5)).astype(int)
    assert (lesion - normal).max() > 60


def test_demo_dataset_layout(tmp_path):
    root = make_demo_dataset(tmp_path, train=2, val=1, test=1)
    for split, count in (("train", 2), ("val", 1), ("test", 1)):
        for label in DEMO_CLASSES:
            assert len(list((root / split / label).glob("*.png"))) == count


@pytest.mark.slow
def test_run_demo_end_to_end(tmp_path, capsys):
    results = run_demo(tmp_path, input_size=32, runs=1, max_epochs=1, pretrain_epochs=1,
                       per_class=(4, 2, 2), pretext_per_class=(4, 2))
    printed = capsys.readouterr().out
    assert [r["init"] for r in results] == ["random", "pretext"]
    assert all(r["status"] == "finished" for r in results)
    pretext = results[1]
    assert pretext["weights"].endswith("model")  # a weights folder the demo made itself
    assert "test accuracy" in printed and "pretext" in printed and "random" in printed
    assert "cannot be fetched" in printed or "need a download" in printed
    for name in ("resnet18-random-1e-3-run1", "resnet18-pretext-1e-3-run1"):
        result = json.loads((tmp_path / "results" / name / "result.json").read_text())
        assert result["task"] == "folder" and set(result["test"]) >= {"accuracy", "f1"}


def test_results_table_means():
    rows = [{"init": "random", "best_epoch": 2, "test": {"accuracy": 0.5, "f1": 0.4}},
            {"init": "random", "best_epoch": 4, "test": {"accuracy": 0.7, "f1": 0.6}}]
    table = results_table(rows)
    assert "0.600 ± 0.141" in table and "0.500 ± 0.141" in table and "3.0 ± 1.4" in table


def test_demo_full_missing_module(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "radiologynet.demo_full", None)
    assert main(["demo", "--full", "--out", str(tmp_path)]) == 1
    assert "radiologynet.demo_full" in capsys.readouterr().out


def test_demo_full_calls_run_full_demo(monkeypatch, tmp_path):
    import types

    called = {}
    fake = types.ModuleType("radiologynet.demo_full")
    fake.run_full_demo = lambda out: called.setdefault("out", out)
    monkeypatch.setitem(sys.modules, "radiologynet.demo_full", fake)
    assert main(["demo", "--full", "--out", str(tmp_path)]) == 0
    assert called["out"] == str(tmp_path)
