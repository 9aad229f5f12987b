"""``radiologynet demo --full``: archive -> pseudo-labels -> pretrain -> fine-tune -> report."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import pytest

import radiologynet.demo.full as demo_full
from radiologynet.cli import main


@dataclass(frozen=True)
class _TinySettings(demo_full.DemoSettings):
    archive_images: int = 42
    pretrain_epochs: int = 1
    downstream_per_class: int = 8
    finetune_epochs: int = 1
    seeds: int = 2


@pytest.mark.slow
def test_demo_full_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo_full, "DemoSettings", _TinySettings)  # same path, smaller
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["demo", "--full", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "5/5 statistics and report" in out and "test F1 (random)" in out
    labels_meta = json.loads((tmp_path / "labels.json").read_text())
    assert labels_meta["n_clusters"] == 7 and labels_meta["n_classes"] == 6
    weights = tmp_path / "weights" / "resnet18.demo-site"
    config = json.loads((weights / "config.json").read_text())
    assert config["num_classes"] == 6 and config["radiologynet"]["site"] == "demo-site"
    runs = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*/result.json")]
    assert sorted(r["init"] for r in runs) == ["demo_site", "demo_site", "random", "random"]
    assert all(r["status"] == "finished" and "f1" in r["test"] for r in runs)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "demo_site" in report and "random" in report
