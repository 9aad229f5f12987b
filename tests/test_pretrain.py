"""Pretraining on pseudo-labels writes a weights folder the zoo, timm and the U-Nets load."""

from __future__ import annotations

import csv
import json
import warnings
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
import timm
import torch

import radiologynet
import radiologynet.pretraining.pretrain as pretrain_module
from radiologynet.cli import main
from radiologynet.demo.synthetic_archive import write_synthetic_archive
from radiologynet.errors import (
    ArchiveError,
    InvalidArgumentError,
    StaleRunError,
    UnknownModelError,
)
from radiologynet.pretraining.pretrain import (
    Oversampled,
    PretrainConfig,
    Replicated,
    pretrain,
    pretrain_config,
    read_labels,
    replicate_to_largest,
    split_labelled,
    split_train_val,
)
from radiologynet.pretraining.pseudolabel import PseudoLabelConfig, pseudo_label
from radiologynet.train import TrainConfig


def tiny(max_epochs: int) -> TrainConfig:
    """The recipe at toy size: batch 16, quiet."""
    return pretrain_config("resnet18", batch_size=16, progress=False, max_epochs=max_epochs)


def small(model: str = "resnet18", **fields: Any) -> PretrainConfig:
    """What to pretrain, at toy size: 32 px inputs."""
    return PretrainConfig(**{"model": model, "input_size": 32, **fields})


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    archive = root / "dicom"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        write_synthetic_archive(archive, 42, include_mixed=True, seed=1)
        clustering = PseudoLabelConfig(n_clusters=7, image_size=32, progress=False)
        pseudo_label(archive, root / "labels.csv", clustering)
        pseudo_label(
            archive,
            root / "hidden.csv",
            replace(clustering, hide_paths=True),
            cache_dir=root / "labels.cache",
        )
    return archive, root / "labels.csv"


@pytest.fixture(scope="module")
def folder(labelled, tmp_path_factory):
    archive, labels = labelled
    out = tmp_path_factory.mktemp("weights") / "resnet18.synthetic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = pretrain(archive, labels, out, tiny(2), small(site="synthetic"))
    return out, result


def test_folder_loads_in_the_zoo_timm_and_unet(folder):
    out, result = folder
    model = radiologynet.create_model("resnet18", weights=out, num_classes=4)
    assert model.fc.out_features == 4
    assert model.pretrained_cfg["input_size"][-1] == 32
    plain = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert plain.num_classes == len(result.class_names) == 6
    from safetensors.torch import load_file

    saved = load_file(str(out / "model.safetensors"))
    assert torch.equal(plain.conv1.weight, saved["conv1.weight"])
    assert torch.equal(model.conv1.weight, saved["conv1.weight"])
    unet = radiologynet.create_unet("resnet18", out, num_classes=1)
    with torch.no_grad():
        assert unet(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_config_and_model_card(folder):
    out, result = folder
    config = json.loads((out / "config.json").read_text())
    assert config["label_names"] == result.class_names
    assert config["pretrained_cfg"]["mean"] == [0.0, 0.0, 0.0]
    meta = config["radiologynet"]
    assert meta["n_clusters"] == 7 and meta["n_classes"] == 6 and meta["site"] == "synthetic"
    assert meta["recipe"]["optimizer"] == "adamw" and meta["recipe"]["input_size"] == 32
    card = (out / "README.md").read_text()
    assert "7 clusters" in card and meta["date"] in card and "'synthetic' archive" in card
    assert "Unknown" not in card
    # the new weights' own record wrote the card: no paper results claimed for them
    assert "These are new weights" in card and "Results in the paper" not in card
    assert 'weights="PATH/TO/THIS/FOLDER"' in card


def test_the_card_states_the_recipe_that_was_used(labelled, tmp_path):
    """The card's recipe said "AdamW ... weight decay 1e-3" whatever the TrainConfig was;
    it now states the optimiser and weight decay that trained the weights."""
    archive, labels = labelled
    config = replace(tiny(1), optimizer="adam", weight_decay=0.05)
    out = tmp_path / "sgd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pretrain(archive, labels, out, config, small(site="s"))
    card = (out / "README.md").read_text()
    assert "adam (lr" in card and "weight decay 0.05" in card
    assert "AdamW" not in card and "weight decay 1e-3" not in card
    config_json = json.loads((out / "config.json").read_text())
    assert config_json["pretrained_cfg"]["license"] == "other"
    assert "pseudo-label classes of the s archive" in card


def test_finished_folder_is_not_silently_retrained(labelled, folder):
    archive, labels = labelled
    with pytest.raises(ArchiveError, match="already holds finished weights.*--no-resume"):
        pretrain(archive, labels, folder[0], tiny(1), small())


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (dict(oversampling="smote"), InvalidArgumentError, "oversampling='smote'"),
        (dict(val_fraction=0.6, test_fraction=0.5), InvalidArgumentError, "training share"),
        (dict(val_fraction=0.0), InvalidArgumentError, "val_fraction=0.0"),
        (dict(model="resnet5000"), UnknownModelError, "resnet5000"),
    ],
)
def test_pretrain_config_refuses_bad_values_before_any_file_is_read(bad, error, message):
    with pytest.raises(error, match=message):
        PretrainConfig(**bad)


def test_modality_restriction(labelled):
    archive, labels = labelled
    images, names, _ = read_labels(labels, archive, modality="mr")
    assert len(names) == 2 and len(images) == 12
    assert Counter(im.target for im in images) == {0: 6, 1: 6}
    with pytest.raises(ArchiveError, match="No kept image of modality 'PT'.*MR"):
        read_labels(labels, archive, modality="PT")
    with pytest.raises(ArchiveError, match="Only 1 pseudo-label class"):
        read_labels(labels, archive, modality="DX")


def test_hidden_paths_are_matched_by_salted_hash(labelled):
    archive, labels = labelled
    hidden = labels.with_name("hidden.csv")
    by_path, _, _ = read_labels(labels, archive)
    by_hash, _, _ = read_labels(hidden, archive)
    assert sorted(str(i.path) for i in by_hash) == sorted(str(i.path) for i in by_path)


def test_bad_labels_files(labelled, tmp_path):
    archive, labels = labelled
    with pytest.raises(ArchiveError, match="does not exist.*pseudo-label"):
        read_labels(tmp_path / "none.csv", archive)
    broken = tmp_path / "broken.csv"
    broken.write_text("path,cluster\na.dcm,1\n")
    with pytest.raises(ArchiveError, match="lacks columns"):
        read_labels(broken, archive)
    with pytest.raises(ArchiveError, match="not under .*--data"):
        read_labels(labels, tmp_path)


def test_oversampling_balances_classes():
    targets = [0] * 90 + [1] * 10
    view = Oversampled(list(zip(range(100), targets, strict=True)), targets, seed=0)
    seen = Counter()
    for epoch in range(1, 6):
        view.set_epoch(epoch)
        seen.update(view[i][1] for i in range(len(view)))
    assert 0.4 < seen[1] / sum(seen.values()) < 0.6
    view.set_epoch(3)
    first = list(view.order)
    view.set_epoch(4)
    assert view.order != first
    view.set_epoch(3)
    assert view.order == first


def test_split_is_stratified():
    targets = [0] * 10 + [1] * 10 + [2]
    train, val = split_train_val(targets, 0.2, seed=0)
    assert set(train).isdisjoint(val) and len(train) + len(val) == 21
    assert Counter(targets[i] for i in val) == {0: 2, 1: 2}
    assert 20 in train  # a single-image class trains only


def test_authors_oversampling_replicates_every_class_to_the_largest():
    targets = [0] * 9 + [1] * 4 + [2]
    order = replicate_to_largest(targets, seed=0)
    assert Counter(targets[i] for i in order) == {0: 9, 1: 9, 2: 9}
    ones = Counter(i for i in order if targets[i] == 1)
    assert sorted(ones.values()) == [2, 2, 2, 3]  # whole copies, then a draw of the rest
    assert Counter(i for i in order if targets[i] == 0) == Counter(range(9))  # untouched
    view = Replicated(list(zip(range(14), targets, strict=True)), targets, seed=0)
    assert len(view) == 27 and view[len(view) - 1] == (13, 2)
    assert replicate_to_largest(targets, seed=0) == order  # reproducible


def test_authors_split_is_75_12_12_per_class():
    targets = [0] * 80 + [1] * 16 + [2] * 2
    train, val, test = split_labelled(targets, seed=0)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert len(train) + len(val) + len(test) == len(targets)
    assert Counter(targets[i] for i in val) == {0: 10, 1: 2}
    assert Counter(targets[i] for i in test) == {0: 10, 1: 2}
    assert Counter(targets[i] for i in train) == {0: 60, 1: 12, 2: 2}
    with pytest.raises(InvalidArgumentError, match="training share"):
        split_labelled(targets, 0.5, 0.5)


def test_pretraining_records_the_recipe_and_a_test_split(folder):
    out, result = folder
    config = json.loads((out / "config.json").read_text())
    recipe = config["radiologynet"]["recipe"]
    assert recipe["oversampling"] == "every class replicated up to the largest class"
    assert result.n_test > 0 and config["radiologynet"]["n_test"] == result.n_test
    assert recipe["test"]  # evaluated on the held-out test split


class Killed(Exception):
    """Stands for the process being killed."""


def test_pretrain_resumes_after_a_kill(labelled, folder, tmp_path, monkeypatch):
    archive, labels = labelled
    straight = folder[1]  # the same settings, never interrupted
    real_fit = pretrain_module.fit

    def dying_fit(*args, **kwargs):
        def die(event, info):
            if event == "epoch_end" and info["epoch"] == 1:
                raise Killed

        kwargs["callbacks"] = [*kwargs["callbacks"], die]
        # write the resume state after every step, not every 600 s
        kwargs["config"] = replace(kwargs["config"], checkpoint_interval_s=0)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "fit", dying_fit)
    with pytest.raises(Killed):
        pretrain(archive, labels, tmp_path / "w", tiny(2), small())
    assert (tmp_path / "w" / "checkpoint.pt").is_file()
    monkeypatch.setattr(pretrain_module, "fit", real_fit)
    # the resume refuses another input size, channel count or split (fit's ``recorded``)
    for change, text in [
        ({"input_size": 48}, "input_size: 32 -> 48"),
        ({"in_chans": 1}, "in_chans: 3 -> 1"),
        ({"split_seed": 1}, "split_seed: 0 -> 1"),
        ({"val_fraction": 0.25}, "val_fraction: 0.125 -> 0.25"),
    ]:
        with pytest.raises(StaleRunError, match=text):
            pretrain(archive, labels, tmp_path / "w", tiny(2), small(**change))
    resumed = pretrain(archive, labels, tmp_path / "w", tiny(2), small())
    assert resumed.fit.epochs_run == 2
    for epoch in (0, 1):
        assert resumed.fit.history[epoch]["train_loss"] == pytest.approx(
            straight.fit.history[epoch]["train_loss"], rel=1e-5
        )
        assert resumed.fit.history[epoch]["val_loss"] == pytest.approx(
            straight.fit.history[epoch]["val_loss"], rel=1e-5
        )


def test_cli_pretrain(labelled, tmp_path, capsys):
    archive, labels = labelled
    code = main(
        [
            "pretrain",
            "--data",
            str(archive),
            "--labels",
            str(labels),
            "--model",
            "mobilenet_v3_small",
            "--modality",
            "MR",
            "--input-size",
            "32",
            "--max-epochs",
            "1",
            "--batch-size",
            "4",
            "--out",
            str(tmp_path / "mr"),
            "--site",
            "test",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "2 classes" in capsys.readouterr().out
    config = json.loads((tmp_path / "mr" / "config.json").read_text())
    assert config["architecture"] == "mobilenetv3_small_100"
    assert config["radiologynet"]["modality"] == "MR"
    assert config["radiologynet"]["tag"] == "test-mr"
    model = radiologynet.create_model("mobilenet_v3_small", weights=tmp_path / "mr", num_classes=3)
    assert model.classifier.out_features == 3
    with open(labels, newline="") as fh:
        assert any(r["modality"] == "MR" for r in csv.DictReader(fh))
    code = main(
        [
            "pretrain",
            "--data",
            str(archive),
            "--labels",
            str(labels),
            "--modality",
            "XA",
            "--out",
            str(tmp_path / "xa"),
        ]
    )
    assert code == 1 and "No kept image of modality 'XA'" in capsys.readouterr().err


def test_pretrain_config_is_the_authors_recipe_per_architecture():
    config = pretrain_config("inception_v3")
    arch = radiologynet.get_architecture("inception_v3")
    assert config.lr == arch.pretrain_lr
    assert "input_size" not in config.to_dict()  # PretrainConfig's: None, the arch's
    assert (config.max_epochs, config.patience, config.batch_size) == (100, 10, 32)
    assert config.optimizer == "adamw"
    # a value overrides the recipe, None keeps it
    tuned = pretrain_config("inception_v3", lr=3e-4, batch_size=None)
    assert (tuned.lr, tuned.batch_size) == (3e-4, 32)
    with pytest.raises(TypeError, match="epochs"):
        pretrain_config("resnet18", epochs=3)


class _Built(Exception):
    """Stops pretrain() once it has built its model, transform and split."""


def test_pretrain_builds_what_its_config_records(labelled, tmp_path, monkeypatch):
    """in_chans reaches the model and the batch transform; the split follows split_seed
    (as the protocol runner's); the authors' torchvision dropout is kept."""
    archive, labels = labelled
    seen = {}
    real_split = pretrain_module.split_labelled

    def split(targets, val_fraction, test_fraction, seed):
        seen["split_seed"] = seed
        return real_split(targets, val_fraction, test_fraction, seed)

    def fit(net, *args, batch_transform, **kwargs):
        seen["net"], seen["transform"] = net, batch_transform
        raise _Built

    monkeypatch.setattr(pretrain_module, "split_labelled", split)
    monkeypatch.setattr(pretrain_module, "fit", fit)
    config = replace(tiny(1), seed=3)
    one_channel = small(in_chans=1, split_seed=7)
    with pytest.raises(_Built):
        pretrain(archive, labels, tmp_path / "w", config, one_channel)
    assert seen["net"].conv1.in_channels == 1
    assert seen["transform"].transform.in_chans == 1
    assert seen["split_seed"] == 7
    with pytest.raises(_Built):  # None: the architecture's input size
        pretrain(archive, labels, tmp_path / "w", config, PretrainConfig(model="resnet18"))
    assert seen["transform"].transform.size == radiologynet.get_architecture("resnet18").input_size
    with pytest.raises(_Built):
        pretrain(archive, labels, tmp_path / "m", config, small("mobilenet_v3_small"))
    assert seen["net"].drop_rate == 0.2  # torchvision's Dropout(0.2) in the authors' head


def test_one_channel_pretraining_writes_zoo_weights_that_load_either_way(labelled, tmp_path):
    """The zoo's weights folders are 3-channel: a 1-channel model is written so that
    create_model gives it back with in_chans=1 and computes the same with 3."""
    archive, labels = labelled
    pretrain(archive, labels, tmp_path / "w", tiny(1), small(in_chans=1))
    one = radiologynet.create_model("resnet18", weights=str(tmp_path / "w"), in_chans=1).eval()
    three = radiologynet.create_model("resnet18", weights=str(tmp_path / "w")).eval()
    assert one.conv1.in_channels == 1 and three.conv1.in_channels == 3
    gray = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(one(gray), three(gray.expand(-1, 3, -1, -1)))
