"""The vanilla U-Net: its size and topology, reconstruction pretraining into a weights
folder, loading it back, the unreleased records, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from radiologynet.cli import main
from radiologynet.errors import (
    ArchiveError,
    CheckpointFormatError,
    InvalidArgumentError,
    StaleRunError,
    WeightsNotReleasedError,
)
from radiologynet.models._vanilla_unet import RECON_RECORDS, VanillaUNet
from radiologynet.models.unet import create_unet
from radiologynet.pretraining import reconstruction as reconstruction_module
from radiologynet.pretraining.reconstruction import (
    RECONSTRUCTION_RECIPE,
    ReconstructionConfig,
    pretrain_reconstruction,
    reconstruction_config,
)


@pytest.mark.parametrize(("in_chans", "num_classes"), [(1, 1), (3, 1), (3, 3)])
def test_about_118k_parameters(in_chans, num_classes):
    params = sum(p.numel() for p in VanillaUNet(in_chans, num_classes).parameters())
    assert abs(params - 118_000) / 118_000 < 0.02


def test_topology_is_the_papers():
    net = VanillaUNet()
    assert len(net.down) == 3 and net.down[0][0].out_channels == 16
    assert [type(m).__name__ for m in net.down[0][:3]] == ["Conv2d", "ReLU", "BatchNorm2d"]
    assert net.down[0][0].padding == (1, 1)
    assert isinstance(net.pool, torch.nn.AvgPool2d)
    assert all(isinstance(u, torch.nn.ConvTranspose2d) for u in net.up)


def test_any_size_through_create_unet():
    net = create_unet(None, in_chans=1, num_classes=2).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 37, 29)).shape == (1, 2, 37, 29)


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        yy, xx = np.mgrid[:40, :50]
        disc = ((yy - 20 - i) ** 2 + (xx - 25) ** 2 < 100) * 180 + 40
        noisy = np.clip(disc + rng.normal(0, 5, disc.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / ("sub" if i % 2 else "") / f"img{i}.png")
    return folder


#: The images of the fast runs: 32 px, one channel.
SMALL = ReconstructionConfig(input_size=32, in_chans=1)


def tiny(**settings):
    """A fast reconstruction run on the CPU."""
    recipe = dict(max_epochs=6, batch_size=3, lr=1e-2)
    recipe.update(device="cpu", progress=False)
    return reconstruction_config(**{**recipe, **settings})


def test_reconstruction_pretraining_writes_a_loadable_weights_folder(image_folder, tmp_path):
    result = pretrain_reconstruction(image_folder, tmp_path / "recon", tiny(), SMALL)
    out = result.out_dir
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "vanilla_unet"
    assert config["radiologynet"]["images"] == result.n_images == 6
    history = config["radiologynet"]["loss_per_epoch"]
    assert len(history) == 6 and history[-1] < history[0]
    assert config["radiologynet"]["best_epoch"] == result.fit.best_epoch
    assert (out / "log.jsonl").is_file() and not (out / "checkpoint.pt").exists()
    assert (out / "README.md").read_text().startswith("---\nlicense:")
    state = load_file(str(out / "model.safetensors"))
    # fine-tuning for segmentation: same body, a new one-class head
    net = create_unet(None, weights=out, in_chans=1, num_classes=1)
    assert torch.equal(net.net.down[0][0].weight, state["down.0.0.weight"])
    assert torch.equal(net.net.up_blocks[-1][3].weight, state["up_blocks.1.3.weight"])
    assert net.net.head.out_channels == 1
    # three channels: the single-channel first filters are repeated
    net3 = create_unet(None, weights=out, in_chans=3, num_classes=1)
    assert net3.net.down[0][0].weight.shape[1] == 3


def test_cli_pretrain_reconstruction(image_folder, tmp_path, capsys):
    code = main(
        [
            "pretrain-reconstruction",
            "--data",
            str(image_folder),
            "--out",
            str(tmp_path / "w"),
            "--max-epochs",
            "1",
            "--input-size",
            "16",
            "--batch-size",
            "4",
            "--cache",
            str(tmp_path / "cache"),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert (tmp_path / "w" / "model.safetensors").is_file()
    assert any((tmp_path / "cache").iterdir())  # --cache reaches the decoded-image cache
    assert str(tmp_path / "w") in capsys.readouterr().out


def test_errors(tmp_path):
    assert {r.tag for r in RECON_RECORDS} == {"radiologynet-recon", "imagenet-recon"}
    assert not any(r.released for r in RECON_RECORDS)
    for record in RECON_RECORDS:
        with pytest.raises(WeightsNotReleasedError, match="pretrain-reconstruction"):
            create_unet(None, weights=record.tag)
        with pytest.raises(WeightsNotReleasedError, match=record.tag):
            create_unet(None, weights=record)
    from radiologynet.errors import UnknownWeightsError
    from radiologynet.models._weights import get_weights

    with pytest.raises(UnknownWeightsError, match="radiologynet-recon"):
        create_unet(None, weights="imagenet")

    with pytest.raises(InvalidArgumentError, match="create_unet\\('resnet50'"):
        create_unet(None, weights=get_weights("resnet50.radiologynet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchiveError, match="No images"):
        pretrain_reconstruction(tmp_path / "empty", tmp_path / "o", tiny(), SMALL)
    # settings are checked before any image is decoded (here: before finding none)
    for bad, message in (
        (dict(device="banana"), "--device 'banana'"),
        (dict(lr=float("nan")), "positive finite"),
        (dict(lr=0.0), "positive finite"),
    ):
        with pytest.raises(InvalidArgumentError, match=message):
            pretrain_reconstruction(tmp_path / "empty", tmp_path / "o", tiny(**bad), SMALL)
    assert (
        main(
            [
                "pretrain-reconstruction",
                "--data",
                str(tmp_path / "empty"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architecture": "resnet50"}))
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointFormatError, match="resnet50"):
        create_unet(None, weights=folder)


def test_vanilla_card_states_the_recorded_licence_not_the_codes(tmp_path):
    """The card said ``license: apache-2.0`` (the code's licence) and
    ``library_name: radiologynet`` whatever the weights were; it now states the licence
    recorded with the weights, ``other`` when none was, and names no library that cannot
    load them."""
    from radiologynet.models._vanilla_unet import save_vanilla_unet

    net = VanillaUNet(in_chans=1, num_classes=1, depth=2, first_width=4)
    plain = save_vanilla_unet(net, tmp_path / "plain")
    card = (plain / "README.md").read_text()
    assert "license: other" in card and "apache-2.0" not in card
    assert "library_name" not in card.split("---")[1]
    assert "create_unet(None, weights=PATH)" in card
    config = json.loads((plain / "config.json").read_text())
    assert config["radiologynet"]["sha256"] in card
    licensed = save_vanilla_unet(net, tmp_path / "cc", {"license": "cc-by-4.0", "task": "x"})
    assert "license: cc-by-4.0" in (licensed / "README.md").read_text()


def test_the_default_recipe_is_the_papers_loop_settings():
    config = reconstruction_config()
    assert (config.lr, config.epochs, config.batch_size) == (1e-3, 10, 32)
    assert (config.optimizer, config.weight_decay, config.precision) == ("adamw", 1e-3, "fp32")
    assert (ReconstructionConfig().input_size, ReconstructionConfig().in_chans) == (224, 3)
    assert not {"input_size", "in_chans"} & set(config.to_dict())
    assert reconstruction_config(lr=None, max_epochs=3).epochs == 3  # None keeps the recipe
    assert set(RECONSTRUCTION_RECIPE) <= set(config.to_dict())


def test_an_input_size_the_unet_cannot_take_is_refused_before_training(image_folder, tmp_path):
    with pytest.raises(InvalidArgumentError, match="input_size 30: .* multiples of 4"):
        pretrain_reconstruction(image_folder, tmp_path / "o", tiny(), replace(SMALL, input_size=30))
    assert not (tmp_path / "o").exists()


class Killed(Exception):
    """Stands for the process being killed."""


def test_reconstruction_resumes_after_a_kill(image_folder, tmp_path, monkeypatch):
    straight = pretrain_reconstruction(
        image_folder, tmp_path / "straight", tiny(max_epochs=3), SMALL
    )
    real_fit = reconstruction_module.fit

    def dying_fit(*args, **kwargs):
        def die(event, info):
            if event == "batch_end" and info["epoch"] == 2 and info["step"] == 0:
                raise Killed

        # the resume state after every step, not every 600 s
        kwargs["config"] = replace(kwargs["config"], checkpoint_interval_s=0)
        return real_fit(*args, **kwargs, callbacks=[die])

    monkeypatch.setattr(reconstruction_module, "fit", dying_fit)
    with pytest.raises(Killed):
        pretrain_reconstruction(image_folder, tmp_path / "w", tiny(max_epochs=3), SMALL)
    assert (tmp_path / "w" / "checkpoint.pt").is_file()
    assert not (tmp_path / "w" / "config.json").exists()
    monkeypatch.setattr(reconstruction_module, "fit", real_fit)
    # the resume refuses other images (fit's ``recorded``): another size or channel count
    for change, text in [
        ({"input_size": 48}, "input_size: 32 -> 48"),
        ({"in_chans": 3}, "in_chans: 1 -> 3"),
    ]:
        with pytest.raises(StaleRunError, match=text):
            pretrain_reconstruction(
                image_folder, tmp_path / "w", tiny(max_epochs=3), replace(SMALL, **change)
            )
    resumed = pretrain_reconstruction(image_folder, tmp_path / "w", tiny(max_epochs=3), SMALL)
    assert resumed.fit.epochs_run == 3
    for again, before in zip(resumed.fit.history, straight.fit.history, strict=True):
        assert again["train_loss"] == pytest.approx(before["train_loss"], rel=1e-5)
        assert again["val_loss"] == pytest.approx(before["val_loss"], rel=1e-5)
    written = load_file(str(tmp_path / "w" / "model.safetensors"))
    reference = load_file(str(tmp_path / "straight" / "model.safetensors"))
    for key, tensor in reference.items():
        torch.testing.assert_close(written[key], tensor, rtol=1e-4, atol=1e-5)
    # finished weights and no checkpoint: a rerun is refused instead of training again
    with pytest.raises(ArchiveError, match="already holds finished weights"):
        pretrain_reconstruction(image_folder, tmp_path / "w", tiny(max_epochs=3), SMALL)
    again = pretrain_reconstruction(
        image_folder, tmp_path / "w", tiny(max_epochs=1, resume=False), SMALL
    )
    assert again.fit.epochs_run == 1


def test_the_reconstruction_weights_are_ordinary_weight_records():
    """There were two record types (UNetWeightRecord beside WeightRecord); the vanilla
    U-Net's weights are WeightRecords of architecture ``unet``, kept out of the registry
    listing."""
    import radiologynet
    from radiologynet.models import WeightRecord

    for record in RECON_RECORDS:
        assert isinstance(record, WeightRecord) and record.name == f"unet.{record.tag}"
        assert record.status == "not released by the authors" and record.results
    assert not any(r.arch == "unet" for r in radiologynet.list_weights())
