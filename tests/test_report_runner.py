"""The report, statistics and Grad-CAM on results folders written by the real protocol
runner (tiny data, tiny model, two epochs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from radiologynet.protocol import runner
from radiologynet.train import TrainConfig

pytestmark = pytest.mark.slow


def _tiny_folder_dataset(root):
    """ROOT/{train,val,test}/{bright,dark}/ with 32 px PNGs (the 'folder' task layout)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        for name, level in (("bright", 200), ("dark", 40)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                pixels = np.clip(rng.normal(level, 20, (32, 32)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    import radiologynet
    from radiologynet.models._folder import write_weights_folder

    base = tmp_path_factory.mktemp("sweep")
    data = _tiny_folder_dataset(base / "data")
    # a stand-in "pretrained" init: a weights folder given to the runner as name=PATH
    model = radiologynet.create_model("resnet18", weights=None, num_classes=36)
    weights = write_weights_folder(model.state_dict(), base / "pretrained", arch="resnet18")
    out = base / "results"
    runner.run(
        "folder",
        data,
        models=["resnet18"],
        inits=["random", f"mine={weights}"],
        lrs=["1e-3"],
        runs=2,
        out=out,
        config=TrainConfig(max_epochs=2, patience=2, batch_size=4, progress=False),
        settings=runner.RunSettings(input_size=32),
    )
    return out


def test_report_reads_the_runners_folders(swept, tmp_path):
    from radiologynet.analysis.report import tables
    from radiologynet.analysis.report.render import build_report
    from radiologynet.analysis.report.results import load_logs, load_results

    runs = load_results(swept)
    assert sorted(runs["init"].unique()) == ["mine", "random"]
    assert len(runs) == 4 and (runs["task"] == "folder").all()
    assert runs["test_f1"].between(0, 1).all() and runs["best_epoch"].between(1, 2).all()
    logs = load_logs(runs)
    assert len(logs) == int(runs["epochs_run"].sum())
    table = tables.results_table(runs).set_index("init")
    for init, group in runs.groupby("init"):
        assert table.loc[init, "f1_mean"] == pytest.approx(group["test_f1"].mean())
    stats = tables.stats_table(runs)
    pair = stats[stats["test"] == "mannwhitneyu"].iloc[0]
    assert pair["n"] == "2, 2"
    report = build_report(swept, tmp_path / "report")
    results_section = report.markdown.read_text().split("## Statistical tests")[0]
    assert results_section.count("| folder | resnet18 |") == 2
    assert all(p.stat().st_size > 0 for p in report.figures)


def test_gradcam_loads_a_runners_model_folder(swept, tmp_path):
    from radiologynet.cli import main

    run_dir = next(p for p in sorted(swept.iterdir()) if "-mine-" in p.name)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((40, 30), 180, np.uint8)).save(images / "x.png")
    assert (
        main(
            [
                "gradcam",
                "--model",
                str(run_dir),
                "--images",
                str(images),
                "--out",
                str(tmp_path / "cams"),
            ]
        )
        == 0
    )
    index = json.loads((tmp_path / "cams" / "index.json").read_text())
    assert index["model"] == "mine"
    assert index["images"][0]["input_size"] == 32  # the size the run was trained at
