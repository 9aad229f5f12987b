"""Models that know their classes: every weights folder the library writes records its
label names, task kind and preprocessing, and both radiologynet.create_model and plain
timm expose the names in ``pretrained_cfg``."""

from __future__ import annotations

import json

import numpy as np
import timm
import torch
from inference_fakes import ARCH, png, tiny_timm_model, weights_folder

import radiologynet
from radiologynet.analysis import explain
from radiologynet.inference import load
from radiologynet.models._preprocessing import Preprocessing
from radiologynet.protocol.outputs import write_model_folder
from radiologynet.protocol.spec import TaskData


def test_label_names_round_trip_through_plain_timm_and_create_model(tmp_path):
    folder = weights_folder(tmp_path / "w", label_names=("ct", "mr", "xr"))
    config = json.loads((folder / "config.json").read_text())
    assert config["label_names"] == ["ct", "mr", "xr"]
    assert config["radiologynet"]["task_kind"] == "multiclass"
    assert config["radiologynet"]["preprocessing"]["input_size"] == 32
    plain = timm.create_model(f"local-dir:{folder}", pretrained=True)
    ours = radiologynet.create_model(weights=folder)
    assert list(plain.pretrained_cfg["label_names"]) == ["ct", "mr", "xr"]
    assert list(ours.pretrained_cfg["label_names"]) == ["ct", "mr", "xr"]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain.eval()(x), ours.eval()(x))
    # a new head forgets the old head's names
    other = radiologynet.create_model(weights=folder, num_classes=5)
    assert "label_names" not in other.pretrained_cfg


def test_a_fine_tuned_binary_run_records_both_classes_and_its_kind(tmp_path):
    model = tiny_timm_model(ARCH, num_classes=1)
    write_model_folder(
        model,
        tmp_path / "model",
        ARCH,
        "binary",
        TaskData([], [], None, 2, ("normal", "covid")),
        Preprocessing(input_size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        32,
        zoo_model=True,
    )
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["label_names"] == ["normal", "covid"]
    assert config["radiologynet"]["task_kind"] == "binary"
    assert config["radiologynet"]["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    loaded = load(tmp_path / "model")
    assert loaded.task_kind == "binary"
    assert loaded.label_names == ("normal", "covid")
    assert loaded.preprocessing.input_size == 32
    assert loaded.preprocessing.mean == (0.5, 0.5, 0.5)


def test_gradcam_index_names_the_explained_class(tmp_path):
    folder = weights_folder(tmp_path / "w", label_names=("ct", "mr", "xr"))
    model, _ = explain.load_model(folder)
    image = png(tmp_path / "img" / "a.png", shape=(40, 40))
    index = explain.explain_images(model, [image], tmp_path / "cams", targets=[2])
    entry = json.loads(index.read_text())["images"][0]
    assert entry["target"] == 2 and entry["target_name"] == "xr"
    assert np.isfinite(entry["score"])
