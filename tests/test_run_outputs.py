"""What a run leaves (issue 19): per-image predictions and the clinical metrics computed
from them, the report's confusion matrix and ROC figure, the fine-tuned model card, runs
that fail cleanly, and the last training batch of one image."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, roc_auc_score
from torch import nn

import radiologynet
from radiologynet.errors import RadiologyNetError, ResultsFormatError, StaleRunError
from radiologynet.models import write_weights_folder
from radiologynet.models._folder import sha256_file
from radiologynet.protocol import get_task_spec
from radiologynet.protocol.runner import RunSettings, plan, run_one
from radiologynet.train import TrainConfig, fit
from radiologynet.train.checkpoint import CHECKPOINT_NAME
from radiologynet.train.predictions import (
    clinical_metrics,
    predictions_csv_text,
    read_predictions,
    roc_curves,
)
from tests.datasets_fakes import make_class_folder

TINY = TrainConfig(max_epochs=1, batch_size=8, progress=False, log_epochs=False)
SMALL = RunSettings(input_size=32)
CLASSES = ("ct", "mr", "xr")


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    return make_class_folder(tmp_path_factory.mktemp("data") / "wrist", CLASSES, per_class=8)


def _run(data, out, config=TINY, *, weights="random", callbacks=()):
    (spec,) = plan("folder", ["resnet18"], [weights], ["1e-3"], runs=1)
    result = run_one(spec, get_task_spec("folder"), data, out, config, SMALL, callbacks=callbacks)
    return out / spec.name, result


@pytest.fixture(scope="module")
def finished(three_classes, tmp_path_factory):
    return _run(three_classes, tmp_path_factory.mktemp("runs"))


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- per-image results -------------------------------------------------------------------


def test_run_writes_per_image_predictions_that_agree_with_its_metrics(finished):
    folder, result = finished
    split = _rows(folder / "split.csv")
    for name in ("val", "test"):
        rows = _rows(folder / f"{name}_predictions.csv")
        assert list(rows[0]) == ["path", "label", "prediction", *(f"score_{c}" for c in CLASSES)]
        expected = {r["path"]: CLASSES[int(r["target"])] for r in split if r["split"] == name}
        assert {r["path"]: r["label"] for r in rows} == expected  # relative to the data
        for row in rows:
            scores = [float(row[f"score_{c}"]) for c in CLASSES]
            assert sum(scores) == pytest.approx(1.0, abs=1e-5)
            assert row["prediction"] == CLASSES[int(np.argmax(scores))]
    rows = _rows(folder / "test_predictions.csv")
    labels = [CLASSES.index(r["label"]) for r in rows]
    predicted = [CLASSES.index(r["prediction"]) for r in rows]
    scores = np.array([[float(r[f"score_{c}"]) for c in CLASSES] for r in rows])
    test = result["test"]
    # the trainer's torchmetrics accuracy and the file agree
    assert test["accuracy"] == pytest.approx(np.mean(np.equal(labels, predicted)))
    assert test["confusion_matrix"] == confusion_matrix(labels, predicted).tolist()
    assert test["classes"] == list(CLASSES)
    assert test["auroc"] == pytest.approx(roc_auc_score(labels, scores, multi_class="ovr"), 1e-6)
    assert json.loads((folder / "result.json").read_text())["test"] == test


def test_binary_metrics_sensitivity_specificity_and_auroc_by_hand():
    logits = np.array([[2.0], [-1.0], [0.5], [-3.0]])
    text = predictions_csv_text(
        ["a.png", "b.png", "c.png", "d.png"], [1, 1, 0, 0], logits, "binary", ("none", "fracture")
    )
    assert text.splitlines()[0] == "path,label,prediction,score_none,score_fracture"
    assert text.splitlines()[1].startswith("a.png,fracture,fracture,0.119203,0.880797")
    table = read_predictions_text(text)
    metrics = clinical_metrics(table)
    # predicted positive where the logit > 0: a (TP), b (FN), c (FP), d (TN)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 1]]
    assert metrics["sensitivity"] == 0.5 and metrics["specificity"] == 0.5
    # positives score 0.88 and 0.27, negatives 0.62 and 0.05: 3 of 4 pairs ordered
    assert metrics["auroc"] == pytest.approx(0.75)
    assert list(roc_curves(table)) == ["fracture"]


def read_predictions_text(text):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.csv"
        path.write_text(text)
        return read_predictions(path)


def test_multiclass_auroc_is_none_when_a_class_has_no_test_image():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.5, 0.0]])
    table = read_predictions_text(
        predictions_csv_text(["a", "b", "c"], [0, 1, 0], logits, "multiclass", CLASSES)
    )
    metrics = clinical_metrics(table)
    assert metrics["auroc"] is None and metrics["auroc_per_class"]["xr"] is None
    assert metrics["auroc_per_class"]["ct"] == 1.0
    assert metrics["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert "sensitivity" not in metrics


def test_regression_predictions_are_values_without_scores(tmp_path):
    text = predictions_csv_text(
        ["a", "b"], [120.0, 64.5], np.array([[118.25], [70.0]]), "regression"
    )
    assert text.splitlines() == ["path,label,prediction", "a,120,118.25", "b,64.5,70"]
    path = tmp_path / "p.csv"
    path.write_text(text)
    assert clinical_metrics(read_predictions(path)) == {}
    path.write_text("file,truth\na,1\n")
    with pytest.raises(ResultsFormatError, match="path,label,prediction"):
        read_predictions(path)


def test_report_draws_the_confusion_matrix_and_roc_curve(finished, tmp_path):
    from radiologynet.analysis.report import build_report, load_results

    folder, result = finished
    runs = load_results(folder.parent)  # the confusion matrix is no column
    assert runs["test_auroc"].iloc[0] == pytest.approx(result["test"]["auroc"])
    report = build_report(folder.parent, tmp_path / "report")
    drawn = [p for p in report.figures if p.name.startswith("predictions-")]
    assert len(drawn) == 1 and drawn[0].stat().st_size > 5000
    assert drawn[0].name in report.markdown.read_text()


# --- the fine-tuned model card -----------------------------------------------------------


def test_fine_tuned_card_is_truthful_and_its_load_example_keeps_the_head(
    three_classes, tmp_path, monkeypatch
):
    import timm

    monkeypatch.setenv("RADIOLOGYNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    record = radiologynet.get_weights("resnet18.radiologynet")
    torch.manual_seed(0)
    parent = write_weights_folder(
        timm.create_model("resnet18", num_classes=record.num_classes).state_dict(),
        tmp_path / "bundle" / record.full_name,
        arch="resnet18",
        record=record,
    )
    monkeypatch.setenv("RADIOLOGYNET_WEIGHTS_DIR", str(tmp_path / "bundle"))
    folder, result = _run(three_classes, tmp_path / "runs", weights="radiologynet")
    card = (folder / "model" / "README.md").read_text()
    config = json.loads((folder / "model" / "config.json").read_text())
    assert "license: gpl-3.0" in card and config["pretrained_cfg"]["license"] == "gpl-3.0"
    assert "fine-tuned" in card and record.full_name in card
    assert sha256_file(parent / "model.safetensors") in card
    assert "| train | 18 | 6 | 6 | 6 |" in card  # images per split and class
    assert f"| accuracy | {result['val']['accuracy']:.4g} | {result['test']['accuracy']:.4g} |" in (
        card
    )
    for wrong in ("numerically identical", "Training data: Unknown", "Unknown:", "no downstream"):
        assert wrong not in card
    assert str(three_classes) not in card  # the machine's paths stay home
    example = 'radiologynet.create_model("resnet18", weights="PATH/TO/THIS/FOLDER")'
    assert example in card
    model = radiologynet.create_model("resnet18", weights=folder / "model")
    from safetensors.torch import load_file

    saved = load_file(str(folder / "model" / "model.safetensors"))
    assert torch.equal(model.fc.weight, saved["fc.weight"]) and model.fc.out_features == 3
    plain = timm.create_model(f"local-dir:{folder / 'model'}", pretrained=True)
    assert plain.num_classes == 3 and torch.equal(plain.fc.weight, saved["fc.weight"])


# --- runs that fail cleanly --------------------------------------------------------------


def _fail_at(epoch):
    def callback(event, info):
        if event == "epoch_start" and info["epoch"] == epoch:
            raise RuntimeError(f"boom at epoch {epoch}")

    return callback


def test_a_run_failing_before_its_first_epoch_is_recorded_and_rerun_afresh(three_classes, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        _run(three_classes, tmp_path, callbacks=[_fail_at(1)])
    (folder,) = tmp_path.iterdir()
    recorded = json.loads((folder / "result.json").read_text())
    assert recorded["status"] == "failed" and recorded["error"] == "RuntimeError: boom at epoch 1"
    # corrected with other settings: started afresh, not refused
    folder, result = _run(three_classes, tmp_path, TrainConfig(**{**vars(TINY), "patience": 3}))
    assert result["status"] == "finished" and "error" not in result
    assert result["config"]["patience"] == 3


def test_a_partly_trained_failed_run_resumes_and_refuses_other_settings(three_classes, tmp_path):
    config = TrainConfig(**{**vars(TINY), "max_epochs": 2, "checkpoint_interval_s": 0.0})
    with pytest.raises(RuntimeError, match="boom"):
        _run(three_classes, tmp_path, config, callbacks=[_fail_at(2)])
    (folder,) = tmp_path.iterdir()
    assert json.loads((folder / "result.json").read_text())["status"] == "failed"
    assert (folder / CHECKPOINT_NAME).is_file()
    with pytest.raises(StaleRunError, match="holds a run made with other settings"):
        _run(three_classes, tmp_path, TrainConfig(**{**vars(config), "max_epochs": 3}))
    started = []
    _, result = _run(
        three_classes,
        tmp_path,
        config,
        callbacks=[lambda e, i: started.append((e, i.get("epoch")))],
    )
    assert result["status"] == "finished" and result["epochs_run"] == 2
    assert [e for name, e in started if name == "epoch_start"] == [2]  # resumed


# --- the last training batch of one image ------------------------------------------------


class PooledBatchNorm(nn.Module):
    """BatchNorm after global pooling: a training batch of one image makes it raise."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(4)
        )
        self.fc = nn.Linear(4, 2)
        self.seen: list[int] = []  # the training batch sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(int(x.shape[0]))
        return self.fc(self.body(x))


def _images(n):
    generator = torch.Generator().manual_seed(n)
    x = torch.rand(n, 1, 6, 6, generator=generator)
    return torch.utils.data.TensorDataset(x, torch.arange(n) % 2)


@pytest.mark.parametrize(("images", "batch"), [(321, 16), (321, 32), (17, 16), (3, 2)])
def test_a_last_training_batch_of_one_image_is_dropped(images, batch):
    torch.manual_seed(0)
    model = PooledBatchNorm()
    config = TrainConfig(
        kind="multiclass", max_epochs=2, batch_size=batch, progress=False, log_epochs=False
    )
    result = fit(model, _images(images), _images(8), config=config)
    assert result.epochs_run == 2 and result.status == "finished"
    per_epoch = len(model.seen) // 2
    assert sum(model.seen[:per_epoch]) == images - 1 and min(model.seen) >= 2


def test_a_single_training_image_is_a_clear_error_not_a_batchnorm_traceback():
    config = TrainConfig(kind="multiclass", max_epochs=1, batch_size=4, progress=False)
    with pytest.raises(RadiologyNetError, match="BatchNorm layers need at least 2.*--batch-size"):
        fit(PooledBatchNorm(), _images(1), _images(4), config=config)


def test_regression_scores_are_written_with_six_digits():
    text = predictions_csv_text(["a"], [1 / 3], np.array([[math.pi]]), "regression")
    assert text.splitlines()[1] == "a,0.333333,3.14159"


def test_the_task_card_of_a_fine_tuned_regressor_states_the_same_facts():
    from radiologynet.models._card import render_task_card

    fine_tuned = {
        "run": "hands-resnet18-radiologynet-1e-3-run1",
        "parent": {
            "weights": "resnet18.radiologynet@v1",
            "sha256": "ab" * 32,
            "license": "gpl-3.0",
            "license_note": "The authors' terms.",
        },
        "task": "boneage",
        "kind": "regression",
        "data": "hands",
        "class_names": [],
        "images": {"train": 30, "val": 5, "test": 5},
        "counts": {},
        "config": {"lr": 0.001, "batch_size": 8},
        "best_epoch": 3,
        "epochs_run": 5,
        "val": {"loss": 9.0, "mae": 2.5},
        "test": {"loss": 10.0, "mae": 2.75},
    }
    card = render_task_card(
        {
            "model_type": "task",
            "task_model": "BoneAgeRegressor",
            "kind": "regression",
            "encoder": "resnet18",
            "radiologynet": {"fine_tuned": fine_tuned, "license": "gpl-3.0"},
        }
    )
    assert "license: gpl-3.0" in card and "## Fine-tuning" in card
    assert "resnet18.radiologynet@v1" in card and "ab" * 32 in card
    assert "- train: 30 images" in card and "| mae | 2.5 | 2.75 |" in card
    assert "Licence: not recorded" not in card
