"""torch.hub: one entry point per registry architecture, forwarding weights and kwargs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import timm
import torch
from original_wrappers import build_wrapper, save_original

import radiologynet
from radiologynet.models._convert import convert_checkpoint

REPO_DIR = Path(__file__).resolve().parents[1]


def _hubconf():
    spec = importlib.util.spec_from_file_location("hubconf_under_test", REPO_DIR / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entry_points_are_the_registry():
    module = _hubconf()
    # torch.hub.list's own rule: public callables of hubconf.
    entry_points = [
        f for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_")
    ]
    assert sorted(entry_points) == sorted(radiologynet.list_models())
    assert module.dependencies == ["torch", "timm", "huggingface_hub", "safetensors"]
    assert "InceptionV3" in module.inception_v3.__doc__


def test_torch_hub_load_random_init_forwards_kwargs():
    model = torch.hub.load(
        str(REPO_DIR), "resnet18", source="local", weights=None, num_classes=3, in_chans=1
    )
    assert isinstance(model, timm.models.ResNet)
    assert model.conv1.in_channels == 1 and model.fc.out_features == 3
    assert model.radiologynet_weights is None


def test_torch_hub_load_with_a_weights_folder(tmp_path):
    arch = radiologynet.get_architecture("mobilenet_v3_small")
    wrapper = build_wrapper(arch)
    out = convert_checkpoint(
        save_original(wrapper, tmp_path / "MobileNetV3Small.pth", arch), tmp_path / "out"
    )
    model = torch.hub.load(
        str(REPO_DIR), "mobilenet_v3_small", source="local", weights=str(out)
    ).eval()
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(x) - wrapper(x)).abs().max().item() <= 1e-5


def test_unknown_entry_point_is_refused():
    with pytest.raises(RuntimeError, match="Cannot find callable"):
        torch.hub.load(str(REPO_DIR), "resnet51", source="local")
