"""``radiologynet demo``: generated data, the runner's results, the printed table."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from radiologynet.cli import main
from radiologynet.demo.full import _print_summary
from radiologynet.demo.quick import (
    DEMO_CLASSES,
    PHASES,
    TIMINGS_NAME,
    DemoTimings,
    _EpochPrinter,
    init_summary_table,
    make_demo_dataset,
    run_demo,
    summarise_runs,
    synthetic_radiograph,
)
from radiologynet.errors import ResultsFormatError


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
    results = run_demo(
        tmp_path,
        input_size=32,
        runs=1,
        max_epochs=1,
        pretrain_epochs=1,
        per_class=(4, 2, 2),
        pretext_per_class=(4, 2),
    )
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
    # one line per epoch in both phases, then where the time went
    epoch_lines = [line for line in printed.splitlines() if "epoch 1/1" in line]
    assert len(epoch_lines) == 3  # pretraining + random + pretext
    assert "val accuracy" in epoch_lines[0] and "val f1" in epoch_lines[1]
    assert "Where the" in printed and all(phase in printed for phase in PHASES)
    timings = json.loads((tmp_path / TIMINGS_NAME).read_text())
    assert set(timings["phases"]) == set(PHASES)
    assert timings["phases"]["pretraining"] > 0 and timings["phases"]["fine-tuning"] > 0
    assert timings["phases"]["evaluation"] > 0 and timings["phases"]["writing"] > 0
    # the frozen-feature probe of the pretext backbone against a random one, after the table
    assert timings["phases"]["probe"] > 0
    assert printed.index("test accuracy") < printed.index("Do the pretext features help")
    assert "pretext vs random (logreg):" in printed
    probe = tmp_path / "probe"
    assert {"pretext.parquet", "random.parquet", "probe.csv", "probe.png", "summary.txt"} <= {
        p.name for p in probe.iterdir()
    }
    assert sum(timings["phases"].values()) == pytest.approx(timings["total_s"], abs=0.05)
    assert timings["training_s"] == pytest.approx(
        timings["phases"]["pretraining"] + timings["phases"]["fine-tuning"], abs=0.01
    )


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--runs", "0"], "--runs"),
        (["--max-epochs", "0"], "--max-epochs"),
        (["--input-size", "16"], "--input-size"),
        (["--model", "no_such_net"], "no_such_net"),
    ],
)
def test_demo_rejects_bad_arguments_before_any_work(tmp_path, capsys, argv, named):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *argv]) == 1
    captured = capsys.readouterr()
    error = (captured.err + captured.out).strip().splitlines()
    assert len(error) == 1 and named in error[0]
    assert not out.exists()  # nothing generated, nothing trained


def test_demo_timings_account_for_the_wall_time():
    timings = DemoTimings()
    timings.started -= 10.0  # as if the demo had run for 10 s
    timings.add("import", 1.0)
    timings.add("pretraining", 2.0)
    timings.add("fine-tuning", 5.0)
    timings.add("evaluation", -1.0)  # negative clock differences count as nothing
    data = timings.as_dict()
    assert data["total_s"] == pytest.approx(10.0, abs=0.5)
    assert data["training_s"] == pytest.approx(7.0)
    assert data["training_share"] == pytest.approx(7.0 / data["total_s"], abs=1e-3)
    assert data["phases"]["evaluation"] == 0.0
    assert data["phases"]["other"] == pytest.approx(data["total_s"] - 8.0, abs=1e-3)
    table = timings.table(data)
    assert all(phase in table for phase in PHASES) and "70 % of the wall time" in table


def test_epoch_printer_prints_each_epoch_and_books_the_trainers_timings():
    timings, lines = DemoTimings(), []
    printer = _EpochPrinter(
        "random run 1/2", "fine-tuning", 6, timings, lambda text, **_: lines.append(text), "f1"
    )
    record = {"train_loss": 0.5, "val_f1": 0.25, "time_s": 3.0}
    printer("batch_end", {"epoch": 1, "step": 0})
    printer("epoch_end", {"epoch": 1, "record": record, "val_s": 0.5, "checkpoint_s": 0.25})
    printer("fit_end", {"test_s": 0.75, "checkpoint_s": 0.5})
    assert lines == [
        "    random run 1/2  epoch 1/6  train loss 0.500  val f1 0.250  (3.0 s training)"
    ]
    assert timings.seconds["fine-tuning"] == 3.0
    assert timings.seconds["evaluation"] == 1.25 and timings.seconds["writing"] == 0.75
    assert printer.booked == 5.0 and printer.fit_ended is not None


def _run(init, run, status="finished", **test):
    best = {"finished": 2 * run, "diverged": None}[status]
    return {"init": init, "run": run, "status": status, "best_epoch": best, "test": test}


def test_results_table_means():
    rows = [
        _run("random", 1, accuracy=0.5, f1=0.4),
        _run("random", 2, accuracy=0.7, f1=0.6),
    ]
    table = init_summary_table(rows)
    assert "0.600 ± 0.141" in table and "0.500 ± 0.141" in table and "3.0 ± 1.4" in table


def test_both_demos_list_diverged_runs_and_average_the_finished(tmp_path, capsys):
    """One rule (summarise_runs): a diverged run (test {}) is listed, not averaged; the
    table used to raise KeyError and the full demo's summary to count it as NaN."""
    rows = [
        _run("random", 1, accuracy=0.5, f1=0.4),
        _run("random", 2, "diverged"),
        _run("random", 3, accuracy=0.7, f1=0.6),
    ]
    (summary,) = summarise_runs(rows, ("f1",))
    assert summary.runs == 3 and summary.scores["f1"] == [0.4, 0.6]
    assert summary.not_averaged == ["run 2 (diverged)"]
    table = init_summary_table(rows)
    assert "0.500 ± 0.141" in table and "run 2 (diverged)" in table
    for row in rows:
        folder = tmp_path / f"random-run{row['run']}"
        folder.mkdir()
        (folder / "result.json").write_text(json.dumps(row))
    _print_summary(tmp_path)
    assert capsys.readouterr().out.strip() == (
        "test F1 (random): mean 0.500 over 2 finished runs (0.400, 0.600); "
        "not averaged: run 2 (diverged)"
    )
    with pytest.raises(ResultsFormatError, match="run 1 of init 'random'"):
        summarise_runs([_run("random", 1, accuracy=0.5)], ("f1",))


def test_a_broken_demo_full_import_is_not_swallowed(monkeypatch, tmp_path):
    """No fallback: a broken import of the full demo surfaces as the ImportError it is."""
    monkeypatch.setitem(sys.modules, "radiologynet.demo.full", None)
    with pytest.raises(ImportError, match="radiologynet.demo.full"):
        main(["demo", "--full", "--out", str(tmp_path)])


def test_demo_full_calls_run_full_demo(monkeypatch, tmp_path):
    import types

    called = {}
    fake = types.ModuleType("radiologynet.demo.full")
    fake.run_full_demo = lambda out: called.setdefault("out", out)
    monkeypatch.setitem(sys.modules, "radiologynet.demo.full", fake)
    assert main(["demo", "--full", "--out", str(tmp_path)]) == 0
    assert called["out"] == str(tmp_path)
