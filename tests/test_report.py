"""Reports from synthetic results folders with known metric values (run-results format)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from radiologynet.analysis import stats
from radiologynet.analysis.report import figures, tables
from radiologynet.analysis.report.render import build_report
from radiologynet.analysis.report.results import (
    PRIMARY_METRICS,
    full_data,
    load_logs,
    load_results,
    primary_metric,
)
from radiologynet.cli import main
from radiologynet.demo.sweep import write_run
from radiologynet.errors import ResultsFormatError
from radiologynet.paper import paper_results

TASK, MODEL = "covid19", "resnet18"
# val F1 of runs 1..5 at lr 1e-4; test F1 is val - 0.01; best_epoch is EPOCH_STEP * run
VAL_1E4 = {"random": 0.60, "imagenet": 0.70, "radiologynet": 0.80}
EPOCH_STEP = {"random": 10, "imagenet": 5, "radiologynet": 4}
ENERGY = {"random": 0.3, "imagenet": 0.2, "radiologynet": 0.1}  # kWh per run


def _log(val_f1: float, epochs: int = 6) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "val_loss": 1.0 / e,
            "val_f1": val_f1 * e / epochs,
            "lr": 1e-4,
            "time_s": 1.0,
        }
        for e in range(1, epochs + 1)
    ]


def write_sweep(root):
    """Three inits x two lrs x five runs of one task, plus fractions and oddities."""
    for init, base in VAL_1E4.items():
        written_init = "baseline" if init == "random" else init  # the paper's spelling
        for run in range(1, 6):
            val = base + 0.01 * (run - 1)
            write_run(
                root,
                task=TASK,
                model=MODEL,
                init=written_init,
                lr="1e-4",
                run=run,
                val={"f1": val, "loss": 1 - val},
                test={"f1": val - 0.01, "accuracy": val, "loss": 1.0},
                best_epoch=EPOCH_STEP[init] * run,
                log=_log(val),
                emissions={
                    "energy_kwh": ENERGY[init],
                    "co2_kg": ENERGY[init] / 2,
                    "duration_s": 60.0,
                },
            )
            # lr 1e-3: RadiologyNET is best on validation but poor on test (so the table
            # must pick by validation); random is poor on validation, great on test.
            lr3_val = {"random": 0.5, "imagenet": 0.5, "radiologynet": 0.9}[init]
            lr3_test = {"random": 0.99, "imagenet": 0.4, "radiologynet": 0.5 + 0.001 * run}
            write_run(
                root,
                task=TASK,
                model=MODEL,
                init=init,
                lr="1e-3",
                run=run,
                val={"f1": lr3_val, "loss": 0.5},
                test={"f1": lr3_test[init], "accuracy": 0.5, "loss": 1.0},
                best_epoch=3,
                log=_log(lr3_val),
                emissions=None,
            )
            for fraction in (0.05, 0.5):
                write_run(
                    root,
                    task=TASK,
                    model=MODEL,
                    init=init,
                    lr="1e-4",
                    run=run,
                    val={"f1": base * fraction},
                    test={"f1": base * fraction},
                    best_epoch=9,
                    fraction=fraction,
                    log=_log(base * fraction, 10),
                )
    write_run(
        root,
        task=TASK,
        model=MODEL,
        init="imagenet",
        lr="1e-2",
        run=1,
        val={"f1": 1.0},
        test={"f1": 1.0},
        best_epoch=1,
        status="running",
    )
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("results") / TASK)


@pytest.fixture(scope="module")
def runs(sweep):
    return load_results(sweep)


def _write_btmr_f1s(folder, values: dict[str, list[float]]) -> None:
    """One btmr/resnet50 run at lr 1e-4 per F1 value of each init (val = test = F1)."""
    for init, f1s in values.items():
        for run, f1 in enumerate(f1s, start=1):
            write_run(
                folder,
                task="btmr",
                model="resnet50",
                init=init,
                lr="1e-4",
                run=run,
                val={"f1": f1},
                test={"f1": f1},
                best_epoch=run,
            )


def test_load_results_reads_every_finished_run(runs, sweep):
    assert len(runs) == 3 * 2 * 5 + 3 * 2 * 5  # full data + fractions; "running" dropped
    assert set(runs["init"]) == {"random", "imagenet", "radiologynet"}  # baseline -> random
    assert runs["fraction"].isna().sum() == 30
    assert set(runs["lr"]) == {"1e-4", "1e-3"}
    assert primary_metric(runs) == "f1"
    everything = load_results(sweep, include_unfinished=True)
    assert len(everything) == len(runs) + 1
    logs = load_logs(runs)
    assert len(logs) == 30 * 6 + 30 * 10
    assert {"epoch", "val_f1", "epoch_lr", "init", "run"} <= set(logs.columns)


def test_results_table_picks_lr_by_validation_and_summarises_runs(runs):
    table = tables.results_table(runs).set_index("init")
    assert table.attrs["split"] == "test" and table.attrs["selection_metric"] == "f1"
    full = table[full_data(table)]
    assert full.loc["random", "lr"] == "1e-4"  # not 1e-3, despite its test F1 of 0.99
    assert full.loc["radiologynet", "lr"] == "1e-3"  # best on validation, poor on test
    expected_std = np.std([0.0, 0.01, 0.02, 0.03, 0.04], ddof=1)
    for init in ("random", "imagenet"):
        assert full.loc[init, "f1_mean"] == pytest.approx(VAL_1E4[init] + 0.02 - 0.01)
        assert full.loc[init, "f1_std"] == pytest.approx(expected_std)
        assert full.loc[init, "epochs_mean"] == pytest.approx(3 * EPOCH_STEP[init])
        assert full.loc[init, "best_run"] == 5
        assert full.loc[init, "best_f1"] == pytest.approx(VAL_1E4[init] + 0.04 - 0.01)
        assert full.loc[init, "n_runs"] == 5
    assert full.loc["radiologynet", "f1_mean"] == pytest.approx(0.503)
    assert full.loc["radiologynet", "epochs_mean"] == 3
    small = table[table["fraction"] == 0.05]
    assert small.loc["radiologynet", "f1_mean"] == pytest.approx(0.8 * 0.05)


def test_markdown_html_and_csv_bold_the_best_initialisation(runs, tmp_path):
    table = tables.results_table(runs)
    markdown = tables.to_markdown(table)
    full_rows = [line for line in markdown.splitlines() if "| full |" in line]
    assert len(full_rows) == 3
    assert "**0.710 ± 0.016**" in markdown  # ImageNet has the best test F1 on full data
    assert "0.610 ± 0.016" in markdown and "**0.610" not in markdown
    assert "**12.0 ± 3.2**" not in markdown  # the fewest epochs is RadiologyNET's 3
    assert "**3.0 ± 0.0**" in markdown
    page = tables.to_html(table)
    assert "<b>0.710 ± 0.016</b>" in page and page.startswith("<table")
    table.to_csv(tmp_path / "t.csv", index=False)
    again = pd.read_csv(tmp_path / "t.csv")
    assert again["f1_mean"].tolist() == pytest.approx(table["f1_mean"].tolist())


def test_paper_numbers_sit_beside_ours(runs):
    table = tables.add_paper_results(tables.results_table(runs))
    published = {
        r.init: r
        for r in paper_results()
        if (r.task, r.model, r.metric, r.statistic) == (TASK, MODEL, "f1", "mean")
    }
    row = table[(table["init"] == "random") & full_data(table)].iloc[0]
    assert row["paper_f1_mean"] == pytest.approx(published["baseline"].value / 100)
    assert row["paper_lr"] == published["baseline"].lr
    limited = table[table["fraction"] < 1.0]
    assert limited["paper_f1_mean"].isna().all()  # the paper has no such rows
    assert "Paper F1" in tables.to_markdown(table)


def test_statistics_reproduce_the_papers_p_values(runs):
    result = tables.stats_table(runs, "f1")
    full = result[full_data(result)].set_index(["test", "groups"])
    pair = full.loc[("mannwhitneyu", "random vs imagenet")]
    assert pair["p"] == pytest.approx(0.0079, abs=5e-5)
    assert pair["p_corrected"] == pytest.approx(0.024, abs=5e-4)
    assert pair["significant"]
    kruskal = full.loc[("kruskal", "random vs imagenet vs radiologynet")]
    assert kruskal["n"] == "5, 5, 5"
    assert set(result["fraction"].dropna()) == {0.05, 0.5} and full_data(result).any()


def test_compare_by_lr_keeps_each_init_apart(runs):
    by_lr = tables.comparisons(runs[runs["fraction"].isna()], "f1", by="lr")
    assert sorted(k["init"] for k, _ in by_lr) == ["imagenet", "radiologynet", "random"]
    assert all(
        c.pairwise[0].groups == ("1e-4", "1e-3") or c.pairwise[0].groups == ("1e-3", "1e-4")
        for _, c in by_lr
    )


def test_emissions_are_summed_per_init(runs):
    sums = tables.emissions_table(runs).set_index("init")
    for init, energy in ENERGY.items():
        assert sums.loc[init, "energy_kwh"] == pytest.approx(5 * energy)
        assert sums.loc[init, "co2_kg"] == pytest.approx(5 * energy / 2)
        assert sums.loc[init, "n_runs"] == 5


def test_figures_are_written_and_not_empty(runs, tmp_path):
    logs = load_logs(runs)
    written = (
        figures.validation_curves(runs, logs, tmp_path, first_epochs=4)
        + figures.resource_limited(runs, logs, tmp_path)
        + figures.final_boxplots(runs, tmp_path)
    )
    names = sorted(p.name for p in written)
    assert names == [
        f"boxplot-{TASK}-{MODEL}-f1.png",
        f"curves-{TASK}-{MODEL}-f1.png",
        f"fractions-{TASK}-{MODEL}-f1.png",
    ]
    for png in written:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        svg = png.with_suffix(".svg").read_text()
        assert "<svg" in svg
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_report_renders_markdown_html_csv_and_figures(sweep, tmp_path):
    report = build_report(sweep, tmp_path / "report", paper=True)
    markdown = report.markdown.read_text()
    assert "## Results" in markdown and "**0.710 ± 0.016**" in markdown
    assert "Paper F1" in markdown and "## Energy and emissions" in markdown
    for figure in report.figures:
        assert f"]({figure.relative_to(report.out_dir).as_posix()})" in markdown
    page = report.html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<img src='figures/" in page
    table = pd.read_csv(report.csv["table"])
    assert len(table) == 9 and "paper_f1_mean" in table
    statistics = pd.read_csv(report.csv["stats"])
    pairs = statistics[statistics["test"] == "mannwhitneyu"]
    assert (pairs["metric"] == "f1").sum() == 9  # 3 pairs x 3 data fractions
    assert (pairs["metric"] == "best_epoch").sum() == 9  # epochs to convergence too


def test_cli_report_and_compare(sweep, tmp_path, capsys):
    assert main(["report", str(sweep), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").is_file()
    assert (
        main(
            [
                "compare",
                str(sweep),
                "--metric",
                "f1",
                "--by",
                "init",
                "--csv",
                str(tmp_path / "tests.csv"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "random vs imagenet" in printed and "p_corr=0.02381" in printed
    written = pd.read_csv(tmp_path / "tests.csv")
    assert len(written) == 3 * 5


def test_missing_or_malformed_results_raise_clear_errors(tmp_path):
    with pytest.raises(ResultsFormatError, match="does not exist"):
        load_results(tmp_path / "nowhere")
    with pytest.raises(ResultsFormatError, match="No result.json"):
        load_results(tmp_path)
    broken = tmp_path / "resnet18-random-1e-4-run1"
    broken.mkdir()
    (broken / "result.json").write_text("{not json")
    with pytest.raises(ResultsFormatError, match="result.json"):
        load_results(tmp_path)
    (broken / "result.json").write_text(json.dumps({"model": "resnet18"}))
    with pytest.raises(ResultsFormatError, match="needs the keys"):
        load_results(tmp_path)
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1


def test_unknown_metric_is_named(runs):
    with pytest.raises(ResultsFormatError, match="dice"):
        tables.best_lr(runs, "dice")
    assert not math.isnan(tables.best_lr(runs)["val_f1"].iloc[0])


def test_regression_sweeps_pick_the_lowest_mae(tmp_path):
    for init, (mae_lr3, mae_lr4) in {"random": (9.0, 12.0), "imagenet": (8.0, 7.0)}.items():
        for run in (1, 2, 3):
            for lr, mae in (("1e-3", mae_lr3), ("1e-4", mae_lr4)):
                write_run(
                    tmp_path,
                    task="boneage",
                    model="inception_v3",
                    init=init,
                    lr=lr,
                    run=run,
                    val={"mae": mae + run, "rmse": 2 * mae},
                    test={"mae": mae + run, "rmse": 2 * mae},
                    best_epoch=run,
                )
    runs = load_results(tmp_path)
    assert primary_metric(runs) == "mae"
    table = tables.results_table(runs).set_index("init")
    assert table.loc["random", "lr"] == "1e-3" and table.loc["imagenet", "lr"] == "1e-4"
    assert table.loc["imagenet", "mae_mean"] == pytest.approx(9.0)
    assert table.loc["random", "best_run"] == 1  # lowest validation MAE
    markdown = tables.to_markdown(tables.results_table(runs))
    assert "**9.000 ± 1.000**" in markdown and "**11.000" not in markdown
    assert "| MAE | RMSE |" in markdown


def test_logs_without_the_metric_fall_back_to_validation_loss(tmp_path):
    results = tmp_path / "results"
    for init, f1 in (("random", 0.5), ("imagenet", 0.7)):
        for run in (1, 2):
            write_run(
                results,
                task="btmr",
                model="resnet50",
                init=init,
                lr="1e-4",
                run=run,
                val={"f1": f1},
                test={"f1": f1 + 0.01 * run},
                best_epoch=2,
                log=[{"epoch": e, "train_loss": 1.0, "val_loss": 1.0 / e} for e in (1, 2, 3)],
            )
    report = build_report(results, tmp_path / "report")
    assert sorted(p.name for p in report.figures) == [
        "boxplot-btmr-resnet50-f1.png",
        "curves-btmr-resnet50-loss.png",
    ]


def test_wrongly_typed_values_name_the_file(tmp_path):
    folder = write_run(
        tmp_path,
        task="btmr",
        model="resnet50",
        init="random",
        lr="1e-4",
        run=1,
        val={"f1": 0.5},
        test={"f1": 0.5},
        best_epoch=1,
    )
    data = json.loads((folder / "result.json").read_text())
    (folder / "result.json").write_text(json.dumps({**data, "lr": "fast"}))
    with pytest.raises(ResultsFormatError, match="resnet50-random-1e-4-run1.*wrong type"):
        load_results(tmp_path)


def test_single_modality_inits_get_students_t_test(tmp_path):
    from scipy import stats as scipy_stats

    values = {
        "radiologynet": [0.80, 0.82, 0.85, 0.83, 0.81],
        "radiologynet-mr": [0.70, 0.75, 0.90, 0.60, 0.72],
    }
    _write_btmr_f1s(tmp_path, values)
    result = tables.stats_table(load_results(tmp_path), "f1")
    (row,) = result[result["test"] == "ttest"].to_dict("records")
    assert row["groups"] == "radiologynet vs radiologynet-mr" and row["method"] == "student"
    assert row["p"] == pytest.approx(scipy_stats.ttest_ind(*values.values()).pvalue)


def test_paper_best_runs_of_table_3_are_kept(tmp_path):
    for init in ("random", "radiologynet"):
        write_run(
            tmp_path,
            task="pba",
            model="inception_v3",
            init=init,
            lr="1e-3",
            run=1,
            val={"mae": 9.0},
            test={"mae": 9.0, "rmse": 12.0},
            best_epoch=5,
        )
    table = tables.add_paper_results(tables.results_table(load_results(tmp_path)))
    best = {
        r.init: r.value
        for r in paper_results()
        if (r.task, r.model, r.statistic, r.metric) == ("pba", "inception_v3", "best", "mae")
    }
    row = table.set_index("init").loc["random"]
    assert row["paper_best_mae"] == pytest.approx(best["baseline"])
    assert row["paper_mae_mean"] != row["paper_best_mae"]


def _metric_disagreement_sweep(root):
    """Validation F1 is best at lr 1e-4, validation accuracy at 1e-3. At 1e-3 the two
    inits' test accuracies are fully separated and their best epochs equal; at 1e-4 the
    accuracies interleave and the best epochs are separated."""
    for init, shift in (("random", 0.0), ("imagenet", 0.1)):
        for run in (1, 2, 3, 4, 5):
            for lr, val, test_accuracy, epoch in (
                (
                    "1e-4",
                    {"f1": 0.8, "accuracy": 0.6},
                    0.5 + 0.01 * run + shift / 20,
                    run + 100 * shift,
                ),
                ("1e-3", {"f1": 0.5, "accuracy": 0.9}, 0.7 + 0.01 * run + shift, 2 + run),
            ):
                write_run(
                    root,
                    task=TASK,
                    model=MODEL,
                    init=init,
                    lr=lr,
                    run=run,
                    val=val,
                    test={"f1": 0.5, "accuracy": test_accuracy},
                    best_epoch=epoch,
                )
    return load_results(root)


def test_metric_picks_the_lr_of_table_tests_and_figures_alike(tmp_path, monkeypatch):
    runs = _metric_disagreement_sweep(tmp_path / "results")
    table = tables.results_table(runs, "accuracy")
    assert set(table["lr"]) == {"1e-3"}
    ((key, comparison),) = tables.comparisons(runs, "accuracy")
    (pair,) = comparison.pairwise
    at_1e3 = runs[runs["lr"] == "1e-3"]
    expected = stats.mann_whitney(
        at_1e3.loc[at_1e3["init"] == "random", "test_accuracy"],
        at_1e3.loc[at_1e3["init"] == "imagenet", "test_accuracy"],
    )
    assert pair.p == pytest.approx(expected.p) and pair.significant  # the 1e-3 runs
    # epochs to convergence are tested on the runs the table shows
    ((_, epochs),) = tables.comparisons(runs, "best_epoch", select_by="accuracy")
    assert epochs.kruskal.p == pytest.approx(1.0)  # 3..7 both: the 1e-3 runs
    # the box plots draw the same runs and brackets
    drawn = []
    monkeypatch.setattr(
        figures, "_brackets", lambda ax, positions, tests, top, span: drawn.extend(tests)
    )
    figures.final_boxplots(runs, tmp_path / "figures", metric="accuracy")
    assert tuple(drawn) == comparison.pairwise


def test_box_plots_take_the_tables_column_rule(tmp_path):
    runs = _metric_disagreement_sweep(tmp_path / "results")
    only_val = runs.assign(val_dice=0.5)  # validation only, while test metrics exist
    with pytest.raises(ResultsFormatError, match="No run recorded test 'dice'"):
        tables.comparisons(only_val, "dice")
    with pytest.raises(ResultsFormatError, match="No run recorded test 'dice'"):
        figures.final_boxplots(only_val, tmp_path, metric="dice")


def test_compare_prints_and_writes_the_reports_statistics(tmp_path, capsys):
    values = {
        "random": [0.50, 0.52, 0.55],
        "radiologynet": [0.80, 0.82, 0.85],
        "radiologynet-mr": [0.70, 0.75, 0.90],
    }
    _write_btmr_f1s(tmp_path / "results", values)
    csv = tmp_path / "tests.csv"
    assert main(["compare", str(tmp_path / "results"), "--csv", str(csv)]) == 0
    written = pd.read_csv(csv)
    expected = tables.stats_table(load_results(tmp_path / "results"))
    pd.testing.assert_frame_equal(written, pd.read_csv(io.StringIO(expected.to_csv(index=False))))
    (ttest,) = written[written["test"] == "ttest"].to_dict("records")
    assert ttest["metric"] == "f1" and ttest["family"] == "modality"
    printed = capsys.readouterr().out
    assert "task=btmr, model=resnet50, lr=1e-4, family=modality (f1)" in printed
    assert "radiologynet vs radiologynet-mr" in printed


def test_compare_and_report_state_the_default_metric_alike(capsys):
    helps = []
    for command in ("compare", "report"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps.append(" ".join(capsys.readouterr().out.split()))
    for text in helps:
        assert f"first of {', '.join(PRIMARY_METRICS)} that the runs recorded" in text


def test_a_fraction_of_one_is_not_the_full_training_set(tmp_path):
    """``--fractions 1`` runs (folder ``-frac1``: all the data, the resource-limited
    experiment's 10 epochs) keep their own rows, tests and panel."""
    for init, full_f1 in (("random", 0.70), ("imagenet", 0.80)):
        for run in (1, 2, 3):
            for fraction, f1 in ((None, full_f1 + 0.01 * run), (1.0, 0.3 + 0.01 * run)):
                write_run(
                    tmp_path / "results",
                    task=TASK,
                    model=MODEL,
                    init=init,
                    lr="1e-4",
                    run=run,
                    val={"f1": f1},
                    test={"f1": f1},
                    best_epoch=run,
                    fraction=fraction,
                    log=_log(f1, 4),
                )
    runs = load_results(tmp_path / "results")
    assert full_data(runs).sum() == 6 and set(runs["fraction"].dropna()) == {1.0}
    table = tables.results_table(runs)
    assert len(table) == 4 and set(table["n_runs"]) == {3}
    full = table[full_data(table)].set_index("init")
    assert full.loc["imagenet", "f1_mean"] == pytest.approx(0.82)
    assert "| full | imagenet |" in tables.to_markdown(table)
    assert "| 100% | imagenet |" in tables.to_markdown(table)
    found = tables.comparisons(runs)
    assert len(found) == 2 and all(c.kruskal.n == (3, 3) for _, c in found)
    logs = load_logs(runs)
    (panel,) = figures.resource_limited(runs, logs, tmp_path / "figures")
    assert panel.name == f"fractions-{TASK}-{MODEL}-f1.png"


def test_a_fraction_outside_zero_one_names_the_file(tmp_path):
    folder = write_run(
        tmp_path,
        task=TASK,
        model=MODEL,
        init="random",
        lr="1e-4",
        run=1,
        val={"f1": 0.5},
        test={"f1": 0.5},
        best_epoch=1,
        fraction=1.5,
    )
    with pytest.raises(ResultsFormatError, match=r"'fraction' 1.5.*\(0, 1\]") as caught:
        load_results(tmp_path)
    assert str(folder / "result.json") in str(caught.value)
