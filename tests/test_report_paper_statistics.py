"""The paper's statistics on results folders: the paper's family of three initialisations,
other initialisations apart, modality t-tests per learning rate, epochs to convergence,
too few runs, diverged runs and the paper's swapped precision/recall."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from radiologynet.analysis.report import figures, tables
from radiologynet.analysis.report.render import build_report
from radiologynet.analysis.report.results import load_results
from radiologynet.cli import main
from radiologynet.demo.sweep import write_run

# two fully separated groups of five per pair: exact two-sided MWU p = 2/252
LEVELS = {"random": 0.60, "imagenet": 0.70, "radiologynet": 0.80, "radiologynet-cr": 0.90}


def _sweep(root, inits=LEVELS, runs=5, lrs=("1e-4",), task="covid19", model="resnet18"):
    for lr in lrs:
        for init in inits:
            for run in range(1, runs + 1):
                value = LEVELS[init] + 0.01 * run + (0.001 if lr == "1e-3" else 0.0)
                write_run(
                    root,
                    task=task,
                    model=model,
                    init=init,
                    lr=lr,
                    run=run,
                    val={"f1": value, "precision": value, "recall": value},
                    test={"f1": value, "precision": value, "recall": value},
                    best_epoch=int(100 * LEVELS[init]) + run,
                )
    return root


def test_other_inits_never_change_the_papers_family(tmp_path):
    runs = load_results(_sweep(tmp_path))
    found = tables.comparisons(runs, "f1")
    families = {key["family"]: comparison for key, comparison in found}
    paper = families[tables.PAPER_FAMILY]
    assert paper.kruskal.groups == ("random", "imagenet", "radiologynet")
    for test in paper.pairwise:
        assert test.n_comparisons == 3
        assert test.p_corrected == pytest.approx(3 * 2 / 252)  # 0.0238, as the paper
        assert round(test.p_corrected, 4) == 0.0238
    everything = families[tables.ALL_FAMILY]
    assert "radiologynet-cr" in everything.kruskal.groups
    first = everything.pairwise[0]
    assert first.n_comparisons == 6 and round(first.p_corrected, 4) == 0.0476
    # without the extra init the paper's family is the same
    only = load_results(_sweep(tmp_path / "three", inits=list(LEVELS)[:3]))
    ((key, alone),) = tables.comparisons(only, "f1")
    assert key["family"] == tables.PAPER_FAMILY
    assert [t.p_corrected for t in alone.pairwise] == [t.p_corrected for t in paper.pairwise]


def test_modality_t_tests_run_per_learning_rate(tmp_path):
    runs = load_results(_sweep(tmp_path, lrs=("1e-3", "1e-4")))
    found = tables.modality_tests(runs, "f1")
    assert sorted(key["lr"] for key, _ in found) == ["1e-3", "1e-4"]
    assert all(r.groups == ("radiologynet", "radiologynet-cr") for _, r in found)


def test_epochs_to_convergence_are_tested_too(tmp_path, capsys):
    root = _sweep(tmp_path)
    runs = load_results(root)
    ((key, comparison), _) = tables.comparisons(runs, "best_epoch")
    assert comparison.metric == "best_epoch" and comparison.kruskal.significant
    assert main(["compare", str(root), "--metric", "best_epoch"]) == 0
    out = capsys.readouterr().out
    assert "(best_epoch)" in out and "kruskal" in out


def test_too_few_runs_say_so_instead_of_failing(tmp_path):
    root = _sweep(tmp_path, inits=list(LEVELS)[:3], runs=1)
    report = build_report(root, tmp_path / "report")
    statistics = pd.read_csv(report.csv["stats"])
    levene = statistics[(statistics["test"] == "levene") & (statistics["metric"] == "f1")]
    assert levene["decision"].tolist() == ["not enough runs"]
    assert "not enough runs" in report.markdown.read_text()
    # one run per setting: no test is run, none claims "fail to reject"
    assert set(statistics["decision"]) == {"not enough runs"}
    assert statistics["p"].isna().all()
    # two runs per setting are enough to run them
    for init in list(LEVELS)[:3]:
        write_run(
            root,
            task="covid19",
            model="resnet18",
            init=init,
            lr="1e-4",
            run=2,
            val={"f1": LEVELS[init]},
            test={"f1": LEVELS[init]},
            best_epoch=3,
        )
    ((_, comparison),) = tables.comparisons(load_results(root), "f1")
    assert comparison.kruskal.decision in ("reject H0", "fail to reject H0")
    # a modality variant with a single run: its t-test is listed as not run
    write_run(
        root,
        task="covid19",
        model="resnet18",
        init="radiologynet-cr",
        lr="1e-4",
        run=1,
        val={"f1": 0.9},
        test={"f1": 0.9},
        best_epoch=3,
    )
    ((key, result),) = tables.modality_tests(load_results(root), "f1")
    assert result.decision == "not enough runs" and math.isnan(result.p)
    assert not result.significant


def test_brackets_only_where_kruskal_wallis_rejects(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "_brackets", lambda *args: drawn.append(args))
    separated = load_results(_sweep(tmp_path / "a", inits=list(LEVELS)[:3]))
    figures.final_boxplots(separated, tmp_path / "fig-a", metric="f1")
    assert len(drawn) == 1
    drawn.clear()
    # identical groups: Kruskal-Wallis finds nothing, no bracket even if drawn by chance
    root = tmp_path / "b"
    for init in list(LEVELS)[:3]:
        for run in range(1, 6):
            write_run(
                root,
                task="covid19",
                model="resnet18",
                init=init,
                lr="1e-4",
                run=run,
                val={"f1": 0.5 + 0.01 * run},
                test={"f1": 0.5 + 0.01 * run},
                best_epoch=run,
            )
    figures.final_boxplots(load_results(root), tmp_path / "fig-b", metric="f1")
    assert drawn == []


def test_diverged_runs_are_shown_as_such(tmp_path):
    root = _sweep(tmp_path, inits=list(LEVELS)[:3])
    write_run(
        root,
        task="covid19",
        model="resnet18",
        init="imagenet",
        lr="1e-2",
        run=1,
        val={"f1": float("nan")},
        test={},
        best_epoch=1,
        status="diverged",
    )
    report = build_report(root, tmp_path / "report")
    markdown = report.markdown.read_text()
    assert "## Diverged runs" in markdown and "1 run(s) diverged" in markdown
    diverged = pd.read_csv(report.csv["diverged"], dtype={"lr": str})
    assert diverged[["init", "lr"]].values.tolist() == [["imagenet", "1e-2"]]
    assert "Diverged runs" in report.html.read_text()


def test_paper_precision_and_recall_are_flagged_as_swapped(tmp_path):
    root = _sweep(tmp_path, inits=list(LEVELS)[:3])
    report = build_report(root, tmp_path / "report", paper=True)
    markdown = report.markdown.read_text()
    assert "classification_report(pred, true)" in markdown
    assert "Paper F1" in markdown
    # a paper precision column, where one is shown, says it is swapped
    table = tables.add_paper_results(tables.results_table(load_results(root), "f1"))
    table["paper_precision_mean"], table["paper_precision_std"] = 0.9, 0.01
    shown = tables.display_table(table)
    assert "Paper Precision (swapped, see note)" in shown.columns
    plain = build_report(root, tmp_path / "plain").markdown.read_text()
    assert "classification_report" not in plain


def test_paper_numbers_match_the_papers_task_names(tmp_path):
    # the paper's CSV says "pba" and "luna"; result folders say "boneage" and "luna16"
    for init in ("random", "radiologynet"):
        write_run(
            tmp_path,
            task="luna16",
            model="unet-resnet50",
            init=init,
            lr="1e-4",
            run=1,
            val={"crop_dice": 0.6, "crop_iou": 0.5},
            test=None,
            best_epoch=3,
        )
    table = tables.add_paper_results(tables.results_table(load_results(tmp_path)))
    assert table["paper_crop_iou_mean"].notna().all()
    assert table["paper_crop_dice_mean"].notna().all()
