"""Encoder U-Nets: encoder features equal the classification backbone's for the same
weights (both decoders), any input size works, both decoders train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from radiologynet.errors import (
    CheckpointFormatError,
    InvalidArgumentError,
    UnknownWeightsError,
    WeightsNotFoundError,
    WeightsNotReleasedError,
)
from radiologynet.models._registry import ARCHITECTURES, get_architecture
from radiologynet.models.unet import create_unet
from radiologynet.train.losses import DiceLoss, PaperDiceLoss

PAPER_ENCODERS = ("resnet50", "vgg16", "efficientnet_b4")


def fabricate_weights_folder(root: Path, arch_name: str, seed: int = 0) -> Path:
    """A weights folder (config.json + model.safetensors) of a 36-class classification
    model in timm layout, with random weights and randomised BatchNorm statistics."""
    arch = get_architecture(arch_name)
    torch.manual_seed(seed)
    model = timm.create_model(arch.timm_name, num_classes=36, **arch.model_args_dict)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("running_var"):
            value = torch.rand_like(value) + 0.5
        elif value.is_floating_point():
            value = torch.randn_like(value) * 0.05
        state[key] = value.contiguous()
    folder = root / f"{arch.name}.fake"
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(
        json.dumps(
            {"architecture": arch.timm_name, "num_classes": 36, "model_args": arch.model_args_dict}
        )
    )
    return folder


def reference_features(arch_name: str, folder: Path, in_chans: int) -> torch.nn.Module:
    """The classification backbone as timm's own ``features_only`` model, loaded by timm
    from the same file (independent of this library's key matching)."""
    arch = get_architecture(arch_name)
    model = timm.create_model(
        arch.timm_name,
        features_only=True,
        pretrained=True,
        in_chans=in_chans,
        pretrained_cfg_overlay={"file": str(folder / "model.safetensors"), "num_classes": 36},
        **arch.model_args_dict,
    )
    return model.eval()


@pytest.fixture(
    scope="module",
    params=[  # vgg16 (138M parameters) in the slow step
        pytest.param(n, marks=pytest.mark.slow) if n == "vgg16" else n for n in PAPER_ENCODERS
    ],
)
def weights_folder(request, tmp_path_factory):
    return request.param, fabricate_weights_folder(tmp_path_factory.mktemp("w"), request.param)


@pytest.fixture(scope="module", params=["smp", "paper"])
def built(weights_folder, request):
    """Each (encoder, decoder) U-Net built once, single channel, from the fake weights."""
    name, folder = weights_folder
    net = create_unet(name, weights=folder, in_chans=1, decoder=request.param)
    return name, folder, net


def test_encoder_features_equal_classification_backbone(built):
    name, folder, net = built
    reference = reference_features(name, folder, in_chans=1)
    x = torch.rand(1, 1, 64, 64)
    net.eval()
    with torch.no_grad():
        ours = net.encoder_features(x)
        theirs = reference(x)
        # the features really come from the loaded weights, not from the architecture
        assert not torch.allclose(
            theirs[-1],
            timm.create_model(
                get_architecture(name).timm_name,
                features_only=True,
                in_chans=1,
                **get_architecture(name).model_args_dict,
            ).eval()(x)[-1],
        )
    if net.decoder == "paper":  # the authors' encoder has other stages (ResNet: the same)
        if name == "vgg16":  # timm's sixth map is the last max pool, not one of their stages
            theirs = theirs[:-1]
        ours = [a for a in ours if any(a.shape == b.shape and torch.equal(a, b) for b in theirs)]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        assert torch.equal(a, b)


def test_encoder_tensors_are_the_classification_files_by_name(built):
    """The rule the former custom loader applied (every encoder tensor is the file's
    tensor of the same name, dots and underscores alike, first conv summed to one
    channel) holds for timm's and smp's loading, which replaced it."""
    from safetensors.torch import load_file

    name, folder, net = built
    arch = get_architecture(name)
    source = {
        k.replace(".", "_"): v for k, v in load_file(str(folder / "model.safetensors")).items()
    }
    first = f"{arch.first_conv}.weight".replace(".", "_")
    source[first] = source[first].sum(dim=1, keepdim=True)
    encoder = net.encoder.state_dict()
    assert encoder
    for key, tensor in encoder.items():
        assert torch.equal(tensor, source[key.replace(".", "_")]), key


def test_both_decoders_train_a_step_at_odd_size(built):
    _, _, net = built
    net.train()
    net.zero_grad()
    x = torch.rand(1, 1, 33, 47)
    target = (torch.rand(1, 1, 33, 47) > 0.7).float()
    logits = net(x)
    assert logits.shape == (1, 1, 33, 47)
    PaperDiceLoss()(logits, target).backward()
    # the paper decoder's blocks hold a transposed conv and a 1x1 conv, as the authors'
    # do, and run one of them: the other gets no gradient
    idle = {
        id(p)
        for block in (net.net.decoder if net.decoder == "paper" else ())
        for p in (block.project if block.scale > 1 else block.upsample).parameters()
    }
    grads = [p.grad for p in net.parameters() if p.requires_grad and id(p) not in idle]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None and not p.requires_grad for p in net.parameters() if id(p) in idle)
    assert any(p.grad.abs().sum() > 0 for p in net.encoder.parameters())
    net.zero_grad()


def test_loss_decreases_on_a_tiny_problem():
    torch.manual_seed(0)
    net = create_unet("mobilenet_v3_small", in_chans=1, decoder="paper")
    x = torch.rand(2, 1, 33, 40)
    target = torch.zeros(2, 1, 33, 40)
    target[:, :, 10:20, 12:25] = 1
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        optimiser.zero_grad()
        loss = DiceLoss()(net(x), target)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "name", [a for a in ARCHITECTURES if a not in (*PAPER_ENCODERS, "inception_v3")]
)
def test_every_other_registry_backbone_builds_at_odd_sizes(name):
    net = create_unet(name, in_chans=1, num_classes=2).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 37, 53)).shape == (1, 2, 37, 53)


def test_paper_decoder_vgg16_last_block_keeps_the_size():
    """(The authors' topology and sizes: test_segmentation_paper_unet.py.)"""
    with torch.device("meta"):
        net = create_unet("vgg16", decoder="paper")
    blocks = net.net.decoder
    assert len(blocks) == 6  # one per skip: five VGG stages plus the input
    assert blocks[-1].scale == 1  # input and stride-1 skip: same size, the 1x1 conv runs


def test_single_channel_sums_rgb_filters(tmp_path):
    folder = fabricate_weights_folder(tmp_path, "resnet18")
    net = create_unet("resnet18", weights=folder, in_chans=1)
    from safetensors.torch import load_file

    rgb = load_file(str(folder / "model.safetensors"))["conv1.weight"]
    assert torch.allclose(net.encoder.conv1.weight, rgb.sum(1, keepdim=True))


def test_bad_inputs_raise_library_errors(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="No such file or folder"):
        create_unet("resnet18", weights=tmp_path / "nothing")
    folder = fabricate_weights_folder(tmp_path, "resnet18")
    with pytest.raises(UnknownWeightsError, match="are for resnet18, not resnet50"):
        create_unet("resnet50", weights=folder)
    (folder / "config.json").unlink()  # no config naming it: the tensors tell
    with pytest.raises(CheckpointFormatError, match=r"different architecture \(resnet18\)"):
        create_unet("resnet50", weights=folder)
    with pytest.raises(UnknownWeightsError):
        create_unet("resnet18", weights="no-such-tag")
    with pytest.raises(WeightsNotReleasedError):
        create_unet("resnet50", weights="radiologynet-mr")
    with pytest.raises(InvalidArgumentError, match="decoder"):
        create_unet("resnet18", decoder="fpn")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="inception_v3"):
        create_unet("inception_v3")


@pytest.mark.parametrize(
    ("encoder", "decoder", "in_chans"),
    [
        ("mobilenet_v3_small", "smp", 1),
        ("resnet18", "paper", 3),
        ("vgg16", "smp", 1),
        (None, "smp", 1),
    ],
)
def test_runner_model_folder_loads_back(tmp_path, encoder, decoder, in_chans):
    """The runner's segmentation model folder (a ``model_type: "task"`` folder naming the
    encoder and decoder, or a vanilla U-Net folder) loads back into the same network
    (the real runner is exercised in test_luna16's 2-epoch run)."""
    from radiologynet.models._card import render_task_card
    from radiologynet.models._folder import task_config, write_folder
    from radiologynet.models._vanilla_unet import save_vanilla_unet
    from radiologynet.models.unet import load_unet

    torch.manual_seed(0)
    net = create_unet(encoder, in_chans=in_chans, decoder=decoder).eval()
    if encoder is None:
        save_vanilla_unet(net.net, tmp_path / "model", {"task": "segmentation"})
    else:
        config = task_config(
            "UNet", kind="segmentation", pretrained_cfg={}, encoder=encoder, decoder=decoder
        )
        write_folder(tmp_path / "model", net.state_dict(), config, render_task_card)
    loaded = load_unet(tmp_path / "model").eval()
    assert loaded.decoder == (decoder if encoder else "vanilla")
    x = torch.rand(1, in_chans, 40, 36)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


@pytest.mark.parametrize("decoder", ["smp", "paper"])
def test_smp_own_local_dir_path_gives_the_same_encoder(tmp_path, decoder):
    """smp's own door, ``smp.Unet("tu-local-dir:<zoo folder>", encoder_weights=True)``,
    loads a zoo weights folder into the same encoder tensors (and features) as
    create_unet: timm loads both, from the same file, with the same first-conv rule."""
    import segmentation_models_pytorch as smp

    from radiologynet.models._folder import write_weights_folder
    from radiologynet.models._weights import get_weights

    fake = fabricate_weights_folder(tmp_path, "resnet18")
    from safetensors.torch import load_file

    folder = write_weights_folder(
        load_file(str(fake / "model.safetensors")),
        tmp_path / "zoo",
        arch="resnet18",
        record=get_weights("resnet18.radiologynet"),
    )
    theirs = smp.Unet(
        f"tu-local-dir:{folder}", encoder_weights=True, in_channels=1, classes=1
    ).encoder.model.eval()
    ours = create_unet("resnet18", weights=folder, in_chans=1, decoder=decoder)
    mine = ours.encoder.eval()
    a, b = theirs.state_dict(), mine.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        for f, g in zip(theirs(x), ours.eval().encoder_features(x), strict=True):
            assert torch.equal(f, g)


def test_random_init_spellings_are_the_same_everywhere():
    """create_unet(None, " random ") looked for a folder called " random ": the U-Net
    builder had its own copy of the random-init test without the strip."""
    net = create_unet(None, weights=" Random ", in_chans=1)
    assert net.decoder == "vanilla"
