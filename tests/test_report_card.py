"""A sweep's downstream results written into a real weights folder's card and config."""

from __future__ import annotations

import json

import pytest

import radiologynet
from radiologynet.analysis.report.modelcard_results import END, START, write_card_results
from radiologynet.cli import main
from radiologynet.demo.sweep import write_run
from radiologynet.errors import ResultsFormatError, WeightsNotFoundError
from radiologynet.models._folder import write_weights_folder

F1 = {
    "random": [0.60, 0.62, 0.64],
    "imagenet": [0.70, 0.71, 0.72],
    "radiologynet": [0.80, 0.82, 0.90],
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "covid19"
    for init, values in F1.items():
        for run, value in enumerate(values, start=1):
            write_run(
                root,
                task="covid19",
                model="resnet18",
                init=init,
                lr="1e-4",
                run=run,
                val={"f1": value},
                test={"f1": value, "accuracy": value + 0.01},
                best_epoch=run * 2,
            )
    write_run(
        root,
        task="covid19",
        model="mobilenet_v3_large",
        init="random",
        lr="1e-4",
        run=1,
        val={"f1": 0.1},
        test={"f1": 0.1},
        best_epoch=1,
    )
    return root


@pytest.fixture
def weights_dir(tmp_path):
    model = radiologynet.create_model("resnet18", weights=None, num_classes=36)
    record = radiologynet.get_weights("resnet18.radiologynet")
    return write_weights_folder(
        model.state_dict(), tmp_path / "resnet18.radiologynet", arch="resnet18", record=record
    )


def test_results_go_into_config_and_card(sweep, weights_dir):
    before = json.loads((weights_dir / "config.json").read_text())
    rows = write_card_results(sweep, weights_dir)
    config = json.loads((weights_dir / "config.json").read_text())
    written = config["radiologynet"]["downstream_results"]
    assert written == json.loads(json.dumps(rows))
    assert {r["model"] for r in written} == {"resnet18"}  # only this folder's architecture
    by_init = {r["init"]: r for r in written}
    assert by_init["radiologynet"]["metrics"]["f1"]["mean"] == pytest.approx(0.84)
    assert by_init["radiologynet"]["metrics"]["f1"]["best"] == pytest.approx(0.90)
    assert by_init["random"]["epochs"]["mean"] == pytest.approx(4.0)
    assert by_init["random"]["n_runs"] == 3 and by_init["random"]["fraction"] is None
    assert 0 < by_init["random"]["kruskal_p_across_inits"] < 0.05
    # everything else in config.json is untouched
    assert config["pretrained_cfg"] == before["pretrained_cfg"]
    assert config["radiologynet"]["sha256"] == before["radiologynet"]["sha256"]
    card = (weights_dir / "README.md").read_text()
    assert card.count(START) == 1 and card.index(START) < card.index("## How to load")
    assert "**0.840 ± 0.053**" in card
    assert card.startswith("---\nlibrary_name: timm")  # the Hub front matter survives


def test_updating_twice_replaces_the_section(sweep, weights_dir, capsys):
    write_card_results(sweep, weights_dir)
    first = (weights_dir / "README.md").read_text()
    assert main(["card-results", str(sweep), "--weights-dir", str(weights_dir)]) == 0
    assert "wrote 3 result rows (covid19)" in capsys.readouterr().out
    second = (weights_dir / "README.md").read_text()
    assert second == first and second.count(END) == 1
    radiologynet.create_model("resnet18", weights=weights_dir)  # still loads


def test_wrong_folder_or_architecture_is_reported(sweep, weights_dir, tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no config.json"):
        write_card_results(sweep, tmp_path)
    with pytest.raises(ResultsFormatError, match="no runs of vgg16"):
        write_card_results(sweep, weights_dir, arch="vgg16")
