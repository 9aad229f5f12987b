"""Paper mode runs as the authors' scripts ran (issue 22): torchvision's initialisation,
one augmentation draw per batch, the shared sample order, no bone-age head dropout, the
ImageNet InceptionV3 input in [-1, 1], and ``protocol.run()`` resolving the same
configuration as ``radiologynet benchmark``.

The expected values are written from the authors' code as read (torchvision builders, a
fresh ``nn.Linear`` head, ``random.seed(1221); random.shuffle(list)`` before every epoch,
torchvision's ``transform_input``), not from the code under test."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
import torch
import torchvision

from radiologynet.models import create_model
from radiologynet.models._convert import to_timm_state_dict
from radiologynet.models._registry import get_architecture
from radiologynet.train.config import TrainConfig
from radiologynet.transforms.augment import AUGMENTATIONS, LunaAugmentation, augment_batch

# --------------------------------------------------------------------------- initialisation


def _last_bn_gammas(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat(
        [block.bn2.weight.detach() for layer in (model.layer1, model.layer4) for block in layer]
    )


def test_resnet_blocks_end_in_gamma_one_with_torchvision_init_and_zero_with_timm():
    torch.manual_seed(0)
    authors = create_model("resnet18", None, num_classes=3, init_scheme="torchvision")
    assert torch.all(_last_bn_gammas(authors) == 1.0)
    timm_init = create_model("resnet18", None, num_classes=3, init_scheme="timm")
    assert torch.all(_last_bn_gammas(timm_init) == 0.0)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_random_network_is_torchvisions_for_a_seed(arch):
    spec = get_architecture(arch)
    torch.manual_seed(7)
    network = torchvision.models.get_model(spec.torchvision_name, weights=None)
    expected = to_timm_state_dict(network.state_dict(), spec)
    torch.manual_seed(7)
    model = create_model(arch, None, num_classes=4, init_scheme="torchvision")
    got = model.state_dict()
    body = [k for k in expected if not k.startswith(f"{spec.classifier}.")]
    assert body and all(torch.equal(got[k], expected[k]) for k in body)


def _mobilenet_head_bound() -> float:
    # the authors' new head: nn.Linear(1024, n), PyTorch's default init, +-1/sqrt(1024)
    return 1.0 / math.sqrt(1024)


def test_mobilenet_new_head_starts_as_a_fresh_linear(tmp_path):
    torch.manual_seed(0)
    random_init = create_model("mobilenet_v3_small", None, num_classes=1, init_scheme="torchvision")
    head = random_init.get_classifier()
    assert 0.5 * _mobilenet_head_bound() < head.weight.abs().max() <= _mobilenet_head_bound()
    assert head.bias.abs().max() <= _mobilenet_head_bound()
    timm_head = create_model("mobilenet_v3_small", None, num_classes=1).get_classifier()
    assert timm_head.weight.abs().max() > 10 * _mobilenet_head_bound()  # timm's +-1

    from radiologynet.models._folder import write_weights_folder

    pretrained = create_model("mobilenet_v3_small", None, num_classes=36)
    folder = write_weights_folder(
        pretrained.state_dict(), tmp_path / "w", arch="mobilenet_v3_small"
    )
    tuned = create_model("mobilenet_v3_small", folder, num_classes=4, init_scheme="torchvision")
    assert tuned.get_classifier().weight.abs().max() <= _mobilenet_head_bound()
    assert torch.equal(tuned.conv_stem.weight, pretrained.conv_stem.weight)  # weights kept
    same_head = create_model("mobilenet_v3_small", folder, init_scheme="torchvision")
    assert torch.equal(same_head.classifier.weight, pretrained.classifier.weight)


def test_init_scheme_is_checked():
    from radiologynet.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="torchvision, timm"):
        create_model("resnet18", None, init_scheme="keras")


def test_imagenet_inception_record_gives_the_input_torchvision_gave_it():
    """torchvision's inception_v3(weights=...) forces transform_input=True: an ImageNet
    mean/std-normalised input becomes (x - 0.5) / 0.5 inside the network."""
    from radiologynet.models import get_weights
    from radiologynet.transforms import BatchTransform

    torch.manual_seed(0)
    network = torchvision.models.inception_v3(
        weights=None, aux_logits=False, init_weights=True, transform_input=True
    ).eval()
    x = torch.rand(2, 1, 80, 80)
    rgb = x.expand(-1, 3, -1, -1)
    imagenet = torchvision.transforms.functional.normalize(
        rgb, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    )
    with torch.no_grad():
        authors = network(imagenet)
        network.transform_input = False
        record = get_weights("inception_v3.imagenet").preprocessing
        ours = BatchTransform(replace(record, input_size=80))(x)
        assert torch.allclose(ours, (rgb - 0.5) / 0.5)
        # random BatchNorm statistics make the logits huge: compare relative to them
        assert (network(ours) - authors).abs().max() <= 1e-5 * authors.abs().max()


# --------------------------------------------------------------------------- augmentation


def test_batch_draw_gives_every_image_of_a_batch_the_same_augmentation():
    image = torch.rand(1, 1, 24, 24)
    batch = image.expand(6, -1, -1, -1).clone()
    per_batch = replace(AUGMENTATIONS["default"], draw="batch")
    out = augment_batch(batch, per_batch, torch.Generator().manual_seed(3))
    assert all(torch.equal(out[0], out[i]) for i in range(1, 6))
    per_image = augment_batch(batch, AUGMENTATIONS["default"], torch.Generator().manual_seed(3))
    assert not all(torch.equal(per_image[0], per_image[i]) for i in range(1, 6))
    again = augment_batch(batch, per_batch, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)  # seeded from the trainer's generator


def test_batch_draw_samples_the_nearest_pixel_and_moves_the_mask_alike():
    geometric = replace(AUGMENTATIONS["boneage"], draw="batch")
    x = torch.randint(0, 5, (4, 1, 20, 20)).float() / 4  # five grey levels
    for seed in range(5):
        out, mask = augment_batch(x, geometric, torch.Generator().manual_seed(seed), mask=x > 0.5)
        assert set(out.unique().tolist()) <= {0.0, 0.25, 0.5, 0.75, 1.0}  # no blending
        assert torch.equal(mask, out > 0.5)


def test_batch_draw_is_the_authors_torchvision_transforms_pixel_for_pixel():
    """The authors' Transform*_BRAIN/_COVID19/_GRAZPEDWRI (flip 0.5, RandomRotation(15),
    ColorJitter([0.8, 1.2], [0.8, 1.3], 0.5, 0.5)) and TransformGray_RSNA (flip,
    RandomRotation(20), RandomAffine(0, (0.2, 0.2), scale=(0.8, 1.2))) on the batch
    tensor, seeded alike: the same pixels."""
    from torchvision import transforms as T

    from radiologynet.transforms.augment import torchvision_batch_transforms

    authors = {
        "default": T.Compose(
            [
                T.RandomHorizontalFlip(0.5),
                T.RandomRotation(degrees=15),
                T.ColorJitter(brightness=[0.8, 1.2], contrast=[0.8, 1.3], saturation=0.5, hue=0.5),
            ]
        ),
        "boneage": T.Compose(
            [
                T.RandomHorizontalFlip(0.5),
                T.RandomRotation(degrees=20),
                T.RandomAffine(0, (0.2, 0.2), scale=(0.8, 1.2)),
            ]
        ),
    }
    x = torch.rand(4, 1, 40, 40)
    for name, reference in authors.items():
        geometric, photometric = torchvision_batch_transforms(AUGMENTATIONS[name])
        for seed in range(12):
            torch.manual_seed(seed)
            ours = geometric(x)
            ours = photometric(ours) if photometric is not None else ours
            torch.manual_seed(seed)
            assert torch.equal(ours, reference(x)), (name, seed)


def test_luna_batch_draw_is_one_matrix_without_shift_as_the_authors_built_it():
    authors = LunaAugmentation(draw="batch", offset=0.03)  # their config's value: unused
    theta = authors.matrices(5, torch.Generator().manual_seed(1))
    assert torch.equal(theta, theta[:1].expand(5, -1, -1))
    assert torch.all(theta[..., 2] == 0)  # the offset sat in a row affine_grid never reads
    linear = theta[0, :, :2].double()
    assert abs(float(linear[0] @ linear[1])) < 1e-6  # D @ R: its rows are orthogonal
    per_sample = LunaAugmentation(offset=0.03).matrices(5, torch.Generator().manual_seed(1))
    assert not torch.equal(per_sample[0], per_sample[1])
    assert torch.any(per_sample[..., 2] != 0)


# --------------------------------------------------------------------------- sample order


def test_shared_order_is_the_authors_reseeded_in_place_shuffle():
    from radiologynet.train.loop import shared_order

    items = list(range(23))
    for epoch in range(1, 4):
        random.seed(1221)
        random.shuffle(items)  # the authors' shuffle_samples, once per epoch, in place
        assert shared_order(23, epoch).tolist() == items
    with pytest.raises(Exception, match="sample_order"):
        TrainConfig(sample_order="random")


# --------------------------------------------------------------------------- bone age


def test_bone_age_has_no_head_dropout_and_keeps_stochastic_depth():
    from radiologynet.train.heads import task_regularisation

    assert task_regularisation("inception_v3", "regression") == {}
    assert task_regularisation("efficientnet_b3", "regression") == {"drop_path_rate": 0.2}
    assert task_regularisation("inception_v3", "multiclass") == {"drop_rate": 0.5}
    assert task_regularisation("mobilenet_v3_small", "binary") == {"drop_rate": 0.2}


# --------------------------------------------------------------------------- run() == benchmark


def test_protocol_run_and_benchmark_resolve_the_same_configuration(tmp_path, monkeypatch):
    from radiologynet import protocol
    from radiologynet.cli import main
    from radiologynet.protocol import runner

    seen: list[tuple[str, TrainConfig, object]] = []

    def fake_run_one(spec, task, data, out, config=None, settings=None, **kwargs):
        config, settings = runner._with_paper_defaults(config, settings)
        seen.append((spec.name, runner.run_config(spec, task, config, settings), settings))
        return {"status": "finished"}

    monkeypatch.setattr(runner, "run_one", fake_run_one)
    # every task that has default models (a plugged toy task without any cannot run)
    tasks = [t for t in protocol.list_tasks() if protocol.get_task_spec(t).models]
    assert {"btmr", "covid19", "boneage", "grazpedwri", "luna16", "folder"} <= set(tasks)
    for task in tasks:
        seen.clear()
        protocol.run(task, tmp_path, out=tmp_path / "api", runs=1)
        from_api = list(seen)
        seen.clear()
        code = main(
            [
                "benchmark",
                "--task",
                task,
                "--data",
                str(tmp_path),
                "--runs",
                "1",
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        assert code == 0 and from_api and seen == from_api, task
        config, settings = from_api[0][1], from_api[0][2]
        assert (settings.head, settings.init_scheme, settings.augment_draw) == (
            "paper",
            "torchvision",
            "batch",
        )
        assert (config.precision, config.sample_order) == ("fp32", "shared")


def test_finetune_keeps_the_librarys_defaults_and_paper_asks_for_the_authors():
    import argparse

    from radiologynet.cli.commands import finetune
    from radiologynet.cli.options import run_configuration
    from radiologynet.errors import InvalidArgumentError

    parser = argparse.ArgumentParser()
    finetune.register(parser)
    base = ["--task", "btmr", "--data", ".", "--model", "resnet18"]
    config, settings = run_configuration(parser.parse_args(base), paper=False)
    assert (settings.init_scheme, settings.augment_draw, config.sample_order) == (
        "timm",
        "image",
        "per_run",
    )
    config, settings = run_configuration(parser.parse_args([*base, "--paper"]), paper=False)
    assert (settings.init_scheme, settings.augment_draw, config.sample_order) == (
        "torchvision",
        "batch",
        "shared",
    )
    mixed = parser.parse_args([*base, "--paper", "--augment-draw", "image"])
    with pytest.raises(InvalidArgumentError, match="--augment-draw"):
        run_configuration(mixed, paper=False)


class _LoggedDataset(torch.utils.data.Dataset):
    """Ten two-feature samples that remember the order they were read in."""

    def __init__(self) -> None:
        self.read: list[int] = []

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int):
        self.read.append(int(index))
        return torch.full((2,), float(index)), index % 2


@pytest.mark.parametrize("order", ["shared", "per_run"])
def test_fit_reads_the_training_set_in_the_configured_order(order):
    from radiologynet.train import fit
    from radiologynet.train.loop import shared_order

    seen = []
    for seed in (0, 1):
        train = _LoggedDataset()
        config = TrainConfig(
            max_epochs=1,
            batch_size=5,
            seed=seed,
            num_classes=2,
            sample_order=order,
            progress=False,
            device="cpu",
        )
        fit(torch.nn.Linear(2, 2), train, _LoggedDataset(), config=config)
        seen.append(train.read)
    if order == "shared":
        assert seen[0] == seen[1] == shared_order(10, 1).tolist()
    else:
        assert seen[0] != seen[1]
