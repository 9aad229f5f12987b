"""The protocol runner with the paper's segmentation model names (``unet-<arch>``, ``unet``):
grid planning, skipped cells, preprocessing, and two tiny LUNA16 runs."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from functools import partial

import pytest
import torch

import radiologynet
from radiologynet.cli import main
from radiologynet.demo.synthetic_luna16 import make_synthetic_luna16
from radiologynet.errors import (
    CheckpointFormatError,
    InvalidArgumentError,
    UnknownModelError,
    WeightsNotReleasedError,
)
from radiologynet.models._vanilla_unet import VanillaUNet
from radiologynet.models._weights import IMAGENET_MEAN
from radiologynet.models.unet import load_unet, unet_from_model_name
from radiologynet.protocol import get_task_spec, resolve_model
from radiologynet.protocol.runner import RunSettings, model_preprocessing, parse_init, plan, run_one
from radiologynet.protocol.tasks.luna16 import build_data
from radiologynet.train import TrainConfig

PAPER_MODELS = "unet-resnet50,unet-vgg16,unet-efficientnet_b4,unet"


@pytest.fixture(scope="module")
def luna(tmp_path_factory):
    root = tmp_path_factory.mktemp("luna16")
    make_synthetic_luna16(root, num_series=6, shape_zyx=(10, 48, 48))
    return root


def test_plan_reads_unet_names_and_skips_what_the_vanilla_unet_cannot_take(caplog):
    with caplog.at_level(logging.WARNING, logger="radiologynet.protocol.runner"):
        runs = plan(
            "luna16", ["unet-ResNet50", "unet"], ["random", "imagenet", "radiologynet"], ["1e-4"], 1
        )
    assert [r.name for r in runs] == [
        "unet-resnet50-random-1e-4-run1",
        "unet-resnet50-imagenet-1e-4-run1",
        "unet-resnet50-radiologynet-1e-4-run1",
        "unet-random-1e-4-run1",
    ]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 2
    assert all(m.startswith("skipping unet with init") and "reconstruction" in m for m in skipped)
    assert "'imagenet'" in skipped[0] and "'radiologynet'" in skipped[1]
    # a tag wins over a same-named folder (the package folder in a checkout)
    assert parse_init("radiologynet") == ("radiologynet", "radiologynet")
    paper = plan("luna16", ["unet-vgg16-paper", "resnet18"], ["random"], ["1e-3"], 1)
    assert [r.model for r in paper] == ["unet-vgg16-paper", "resnet18"]


def test_bad_unet_names_and_inits_fail_at_planning(tmp_path):
    with pytest.raises(WeightsNotReleasedError, match="pretrain-reconstruction"):
        plan("luna16", ["unet"], ["radiologynet-recon"], ["1e-4"], 1)
    with pytest.raises(InvalidArgumentError, match="inception_v3"):
        plan("luna16", ["unet-inception_v3"], ["random"], ["1e-4"], 1)
    with pytest.raises(UnknownModelError):
        plan("luna16", ["unet-nosuchnet"], ["random"], ["1e-4"], 1)
    with pytest.raises(UnknownModelError):  # classification tasks take registry names only
        plan("btmr", ["unet-resnet50"], ["random"], ["1e-4"], 1)
    recon = tmp_path / "recon"  # a reconstruction weights folder is a valid vanilla init
    recon.mkdir()
    (run,) = plan("luna16", ["unet"], [f"recon={recon}"], ["1e-4"], 1)
    assert run.name == "unet-recon-1e-4-run1" and run.weights == str(recon)


def test_preprocessing_comes_from_the_encoder_weight_record():
    task = get_task_spec("luna16")
    encoder = resolve_model(task, "unet-resnet50")
    assert encoder.arch == "resnet50"
    assert model_preprocessing(encoder, "imagenet").mean == IMAGENET_MEAN
    assert model_preprocessing(encoder, "radiologynet").mean is None
    vanilla = resolve_model(task, "unet")
    assert vanilla.arch is None
    assert model_preprocessing(vanilla, None).mean is None
    assert model_preprocessing(vanilla, None).input_size == 64


def test_cli_dry_run_plans_the_papers_grid(luna, tmp_path, capsys):
    assert (
        main(
            [
                "benchmark",
                "--task",
                "luna16",
                "--data",
                str(luna),
                "--models",
                PAPER_MODELS,
                "--inits",
                "random,imagenet,radiologynet",
                "--lrs",
                "1e-3,1e-4,1e-5",
                "--runs",
                "5",
                "--out",
                str(tmp_path),
                "--dry-run",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    # 3 encoder U-Nets x 3 inits x 3 lrs x 5 runs + the vanilla U-Net, random only
    assert "150 runs" in out
    assert "unet-efficientnet_b4-radiologynet-1e-4-run5" in out
    assert "unet-random-1e-5-run1" in out and "unet-imagenet" not in out


def test_tiny_vanilla_and_encoder_unet_runs(luna, tmp_path, monkeypatch):
    monkeypatch.setenv("RADIOLOGYNET_CACHE", str(tmp_path / "cache"))
    tiny = replace(
        get_task_spec("luna16"),
        build_data=partial(
            build_data, crop_size=48, train_crop=32, val_crop=32, samples_per_epoch=32
        ),
    )
    runs = plan("luna16", ["unet", "unet-resnet18"], ["random"], ["1e-3"], 1)
    out = tmp_path / "out"
    config_ = TrainConfig(max_epochs=1, batch_size=16, progress=False)
    settings = RunSettings(cache_dir=str(tmp_path / "cache"), in_chans=1)
    for spec in runs:
        result = run_one(spec, tiny, luna, out, config_, settings)
        folder = out / spec.name
        assert json.loads((folder / "result.json").read_text()) == result
        assert result["status"] == "finished" and result["epochs_run"] == 1
        assert result["model"] == spec.model
        assert 0 <= result["val"]["crop_iou"] <= result["val"]["crop_dice"] <= 1
        config = json.loads((folder / "model" / "config.json").read_text())
        net = load_unet(folder / "model").eval()
        assert net(torch.rand(1, 1, 48, 48)).shape == (1, 1, 48, 48)
        if spec.model == "unet":
            # the format save_vanilla_unet writes (reconstruction pretraining's too)
            assert config["model_type"] == "vanilla_unet"
            assert config["radiologynet"]["model"] == spec.model
            assert isinstance(net.net, VanillaUNet)
            assert result["config"]["input_size"] == 64
            # a fine-tuned unet run is a valid init of a later unet run
            again = unet_from_model_name("unet", folder / "model", in_chans=1)
            for name, tensor in net.net.state_dict().items():
                assert torch.equal(again.net.state_dict()[name], tensor), name
            (later,) = plan("luna16", ["unet"], [f"tuned={folder / 'model'}"], ["1e-3"], 1)
            assert run_one(later, tiny, luna, out, config_, settings)["status"] == "finished"
        else:
            assert config["model"] == spec.model
            # a task folder names its encoder and decoder, and no timm "architecture"
            # (which timm and create_model would misread as the network to build)
            assert config["model_type"] == "task" and "architecture" not in config
            assert (config["encoder"], config["decoder"]) == ("resnet18", "smp")
            assert net.encoder is not None
            with pytest.raises(CheckpointFormatError, match="load_unet"):
                radiologynet.create_model("resnet18", weights=folder / "model")
    assert sorted(p.name for p in out.iterdir()) == [
        "unet-random-1e-3-run1",
        "unet-resnet18-random-1e-3-run1",
        "unet-tuned-1e-3-run1",
    ]
