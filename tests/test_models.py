"""create_model: one build path over timm, heads, channels, names and bad input."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import save_file

import radiologynet
from radiologynet.errors import (
    UnknownModelError,
    UnknownWeightsError,
    WeightsNotFoundError,
    WeightsNotReleasedError,
)


@pytest.fixture(scope="module")
def resnet18_folder(tmp_path_factory):
    """A timm-layout weights folder with a 36-class head and random weights."""
    torch.manual_seed(0)
    source = timm.create_model("resnet18", num_classes=36).eval()
    folder = tmp_path_factory.mktemp("weights") / "resnet18.mine"
    folder.mkdir()
    save_file(
        {k: v.contiguous() for k, v in source.state_dict().items()},
        str(folder / "model.safetensors"),
    )
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architecture": "resnet18",
                "num_classes": 36,
                "pretrained_cfg": {
                    "input_size": [3, 224, 224],
                    "mean": [0, 0, 0],
                    "std": [1, 1, 1],
                    "crop_mode": "border",
                    "crop_pct": 1.0,
                    "interpolation": "bilinear",
                    "num_classes": 36,
                    "first_conv": "conv1",
                    "classifier": "fc",
                },
            }
        )
    )
    return folder, source


def test_random_init_is_a_plain_timm_model_with_radiologynet_preprocessing():
    model = radiologynet.create_model("mobilenet_v3_small", num_classes=3)
    assert isinstance(model, timm.models.MobileNetV3)
    assert model.num_classes == 3
    assert model.radiologynet_weights is None
    assert model.radiologynet_arch.name == "mobilenet_v3_small"
    assert model.pretrained_cfg["mean"] == (0.0, 0.0, 0.0)
    assert model.pretrained_cfg["crop_mode"] == "border"
    bn = model.bn1
    assert bn.eps == pytest.approx(1e-3), "MobileNetV3 must use the torchvision BatchNorm eps"


def test_folder_weights_load_exactly(resnet18_folder):
    folder, source = resnet18_folder
    model = radiologynet.create_model("resnet18", weights=folder).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
    assert model.num_classes == 36


def test_new_head_and_grayscale_input(resnet18_folder):
    folder, source = resnet18_folder
    model = radiologynet.create_model("resnet18", weights=folder, num_classes=4, in_chans=1)
    assert model.fc.out_features == 4
    assert model.conv1.weight.shape[1] == 1
    torch.testing.assert_close(model.conv1.weight[:, 0], source.conv1.weight.sum(1))
    assert torch.equal(model.layer4[0].conv1.weight, source.layer4[0].conv1.weight)


def test_timm_keyword_arguments_pass_through(resnet18_folder):
    folder, source = resnet18_folder
    model = radiologynet.create_model(
        "resnet18", weights=folder, features_only=True, out_indices=(1, 2)
    )
    feats = model(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 128]
    model = radiologynet.create_model("resnet18", drop_rate=0.3)
    assert model.drop_rate == 0.3


def test_safetensors_file_needs_no_config(tmp_path, resnet18_folder):
    folder, source = resnet18_folder
    (tmp_path / "w.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    model = radiologynet.create_model("resnet18", weights=tmp_path / "w.safetensors")
    assert torch.equal(model.fc.weight, source.fc.weight)


def test_weights_for_another_architecture_are_refused(resnet18_folder):
    folder, _ = resnet18_folder
    with pytest.raises(UnknownWeightsError, match="for resnet18, not resnet34"):
        radiologynet.create_model("resnet34", weights=folder)


def test_name_and_weights_must_agree():
    with pytest.raises(UnknownWeightsError, match="pass one or the other"):
        radiologynet.create_model("resnet50.radiologynet", weights="imagenet")
    with pytest.raises(UnknownWeightsError, match="pass one or the other"):
        radiologynet.create_model("resnet50.radiologynet", weights="random")


@pytest.mark.parametrize(
    "weights",
    [
        "radiologynet-ct",
        "radiologynet-ct@v1",
        "resnet50.radiologynet-ct",
        "ResNet50.radiologynet-ct@v1",
        radiologynet.get_weights("resnet50.radiologynet-ct"),
    ],
)
def test_name_and_weights_naming_the_same_record_agree(weights):
    """The name's weight and ``weights=`` are compared as records, not as text: each of
    these is resnet50.radiologynet-ct@v1, so the (offline) build gets as far as finding
    that weight unreleased instead of refusing the pair."""
    with pytest.raises(WeightsNotReleasedError, match="never released"):
        radiologynet.create_model("resnet50.radiologynet-ct", weights=weights)


def test_bad_names_and_tags():
    with pytest.raises(UnknownModelError):
        radiologynet.create_model("alexnet")
    with pytest.raises(UnknownWeightsError, match="Valid tags"):
        radiologynet.create_model("vgg16", weights="radiologynet-ct")
    with pytest.raises(WeightsNotReleasedError, match="never released"):
        radiologynet.create_model("resnet50.radiologynet-ct")
    with pytest.raises(WeightsNotFoundError, match="No such file or folder: ./no/such/folder"):
        radiologynet.create_model("resnet50", weights="./no/such/folder")


def test_random_tags_mean_random_init():
    model = radiologynet.create_model("resnet18", weights="random", num_classes=2)
    assert model.radiologynet_weights is None and model.num_classes == 2
