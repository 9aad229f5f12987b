"""The zoo's command line: list, info, download -> an offline bundle that loads."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import tomllib
import torch
from zoo_fakes import original_resnet18_checkpoint, tar_gz

import radiologynet
from radiologynet import paper
from radiologynet.cli import main
from radiologynet.models import _weights as weights

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def served_resnet18(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIOLOGYNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RADIOLOGYNET_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(
        huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("network used")
    )
    pth = tmp_path / "ResNet18.pth"
    state = original_resnet18_checkpoint(pth)
    archive = tar_gz(pth, tmp_path / "ResNet18.tar.gz")
    saved = dict(weights._RECORDS)
    radiologynet.register_weights(
        dataclasses.replace(
            radiologynet.get_weights("resnet18.radiologynet"), source_url=archive.as_uri()
        )
    )
    yield state
    weights._RECORDS.clear()
    weights._RECORDS.update(saved)


def test_list_shows_every_architecture(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for arch in radiologynet.list_models():
        assert arch in out
    assert "radiologynet-mr" in out


def test_info_shows_preprocessing_and_results(capsys):
    assert main(["info", "resnet50.radiologynet"]) == 0
    out = capsys.readouterr().out
    assert "224x224" in out and "none (intensities scaled to [0, 1] only)" in out
    assert "ResNet50.tar.gz" in out and "btmr" in out


def test_list_info_and_docs_give_one_status(capsys):
    """``list``, ``info`` and docs/models.md print WeightRecord.status: for ImageNet
    weights timm carries, timm's copy (which the resolver tries first)."""
    record = radiologynet.get_weights("resnet50.imagenet")
    assert record.status.startswith("timm's copy (timm/resnet50.tv2_in1k)")
    assert main(["list", "resnet50"]) == 0
    assert f"[{record.status}]" in capsys.readouterr().out
    assert main(["info", "resnet50.imagenet"]) == 0
    assert f"status:        {record.status}\n" in capsys.readouterr().out
    docs = (Path(__file__).resolve().parents[1] / "docs/models.md").read_text()
    assert f"| `resnet50.imagenet@v1` | {record.status} |" in docs
    unreleased = radiologynet.get_weights("resnet50.radiologynet-ct")
    assert unreleased.status == "not released by the authors"
    assert radiologynet.get_weights("resnet50.radiologynet").status == (
        "converted from its source on first use"
    )
    pinned = weights.with_pin(record, "0123456789abcdef", "0" * 64)
    assert pinned.status == "on the Hub, pinned 0123456789"


def test_info_describes_a_centre_crop_without_letterbox():
    from radiologynet.cli.commands.info import describe

    record = radiologynet.get_weights("resnet18.radiologynet")
    text = describe(record)
    assert "224x224, letterbox (bilinear, centred zero padding)" in text
    cropped = dataclasses.replace(
        record,
        preprocessing=dataclasses.replace(
            record.preprocessing, letterbox=False, crop_pct=0.875, grayscale_to_rgb=False
        ),
    )
    text = describe(cropped)
    assert "letterbox" not in text and "grayscale repeated" not in text
    assert "224x224, shorter side resized to 224 / 0.875 px (bilinear), centre crop" in text


def test_paper_results_carry_their_units_everywhere(capsys):
    """Bone-age MAE/RMSE are in months (the RSNA labels), F1 in percent; the model card,
    ``info`` and docs/models.md print PaperResult.formatted()."""
    results = paper.paper_results()
    assert {r.metric for r in results} <= set(paper.PAPER_METRIC_UNITS)
    mae = next(
        r
        for r in results
        if (r.task, r.model, r.init, r.metric) == ("pba", "efficientnet_b3", "radiologynet", "mae")
    )
    assert mae.formatted() == "8.23 ± 0.2 months"
    f1 = next(r for r in results if r.metric == "f1" and r.std is not None)
    assert f1.formatted() == f"{f1.value:g} ± {f1.std:g}%"
    dice = next(r for r in results if r.metric == "dice")
    assert dice.formatted() == f"{dice.value:g} ± {dice.std:g}"
    record = radiologynet.get_weights("efficientnet_b3.radiologynet")
    assert main(["info", record.name]) == 0
    assert "mae    8.23 ± 0.2 months" in capsys.readouterr().out
    from radiologynet.models._card import render_model_card

    card = render_model_card(
        {"architecture": record.arch, "num_classes": 36, "pretrained_cfg": record.pretrained_cfg()},
        record=record,
    )
    assert "8.23 ± 0.2 months (lr 1e-3)" in card and "years" not in card
    docs = (Path(__file__).resolve().parents[1] / "docs/models.md").read_text()
    assert "| pba | efficientnet_b3 | radiologynet | 1e-3 | mae | 8.23 ± 0.2 months |" in docs


def test_unknown_weight_is_a_clean_cli_error(capsys):
    assert main(["info", "vgg16.radiologynet-ct"]) == 1
    err = capsys.readouterr().err
    assert "Valid tags for vgg16" in err and "Traceback" not in err


def test_download_builds_a_bundle_that_loads_offline(tmp_path, monkeypatch, served_resnet18):
    bundle = tmp_path / "bundle"
    assert main(["download", "resnet18.radiologynet", "--to", str(bundle)]) == 0
    folder = bundle / "resnet18.radiologynet@v1"
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "resnet18" and config["num_classes"] == 36
    assert (folder / "README.md").is_file()
    # a fresh machine: empty cache, offline, only the bundle
    monkeypatch.setenv("RADIOLOGYNET_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RADIOLOGYNET_WEIGHTS_DIR", str(bundle))
    model = radiologynet.create_model("resnet18.radiologynet", num_classes=2)
    assert torch.equal(model.layer1[0].conv1.weight, served_resnet18["model.layer1.0.conv1.weight"])
    assert not (tmp_path / "empty-cache" / "weights").exists()


def test_console_script_freezes_the_collector_only_after_main(monkeypatch, capsys):
    import gc

    from radiologynet import cli

    frozen_during_main = []
    monkeypatch.setattr(cli, "main", lambda: frozen_during_main.append(gc.get_freeze_count()) or 3)
    before = gc.get_freeze_count()
    try:
        assert cli.console_main() == 3
        assert frozen_during_main == [before]
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
    script = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert script == {"radiologynet": "radiologynet.cli:console_main"}
    assert "console_main()" in (REPO / "radiologynet" / "__main__.py").read_text()


@pytest.mark.slow  # a fresh interpreter importing torch and timm
def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "radiologynet", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert "mobilenetv3_small_100" in out
