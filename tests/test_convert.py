"""The converter: exactness against the authors' wrappers for all ten architectures,
the weights-folder format, and every kind of bad input."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
import torchvision.models as tvm
from original_wrappers import (
    build_wrapper,
    make_archive,
    read_layout,
    save_original,
    state_layout,
)
from timm.models import PretrainedCfg

import radiologynet
from radiologynet.cli import main
from radiologynet.errors import CheckpointFormatError, WeightsNotFoundError
from radiologynet.models._convert import (
    convert_checkpoint,
    detect_architecture,
    load_original_checkpoint,
    to_timm_state_dict,
)
from radiologynet.models._folder import read_weights_folder, sha256_file, write_weights_folder
from radiologynet.models._registry import ARCHITECTURES, get_architecture
from radiologynet.models._weights import get_weights

TOLERANCE = 1e-5


def _input(arch, channels: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(1, channels, arch.input_size, arch.input_size, generator=generator)


#: the architectures whose exactness check costs most (vgg16: a 528 MB checkpoint) run in the
#: slow step; every other architecture is checked in the quick one
_SLOW_ARCHITECTURES = {"vgg16"}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(name, marks=pytest.mark.slow) if name in _SLOW_ARCHITECTURES else name
        for name in ARCHITECTURES
    ],
)
def converted(request, tmp_path_factory):
    """Per architecture, built once: the wrapper, its original checkpoint, the converted
    folder and the wrapper's output on a fixed input."""
    arch = ARCHITECTURES[request.param]
    root = tmp_path_factory.mktemp(arch.name)
    wrapper = build_wrapper(arch)
    pth = save_original(wrapper, root / f"{arch.original_name}.pth", arch)
    out = convert_checkpoint(pth, root / "converted")
    with torch.no_grad():
        expected = wrapper(_input(arch))
    state = wrapper.state_dict()
    yield {"arch": arch, "state": state, "pth": pth, "out": out, "expected": expected}


def test_fabricated_checkpoint_has_the_original_layout(converted, shared_dir):
    arch = converted["arch"]
    reference = read_layout(arch, shared_dir)
    if reference is None:
        pytest.skip("../shared/reference/original-checkpoints is not beside the repository")
    state, _ = load_original_checkpoint(converted["pth"])
    assert state_layout(state) == reference


def test_timm_local_dir_reproduces_the_original(converted):
    arch = converted["arch"]
    model = timm.create_model(f"local-dir:{converted['out']}", pretrained=True).eval()
    with torch.no_grad():
        got = model(_input(arch))
    assert got.shape == (1, 36)
    assert (got - converted["expected"]).abs().max().item() <= TOLERANCE


def test_create_model_reproduces_the_original(converted):
    arch = converted["arch"]
    model = radiologynet.create_model(arch.name, weights=converted["out"]).eval()
    with torch.no_grad():
        got = model(_input(arch))
    assert (got - converted["expected"]).abs().max().item() <= TOLERANCE
    assert tuple(model.pretrained_cfg["mean"]) == (0.0, 0.0, 0.0)


def test_architecture_is_detected_from_keys_alone(converted):
    assert detect_architecture(converted["state"]) is converted["arch"]


def test_config_describes_the_weights(converted):
    arch = converted["arch"]
    config, weights = read_weights_folder(converted["out"])
    assert config["architecture"] == arch.timm_name
    assert config["num_classes"] == 36 and len(config["label_names"]) == 36
    assert config["model_args"] == arch.model_args_dict
    cfg = config["pretrained_cfg"]
    assert set(cfg) <= {f for f in PretrainedCfg.__dataclass_fields__}
    assert cfg["input_size"] == [3, arch.input_size, arch.input_size]
    assert (cfg["mean"], cfg["std"]) == ([0.0] * 3, [1.0] * 3)
    assert (cfg["crop_mode"], cfg["crop_pct"], cfg["interpolation"]) == ("border", 1.0, "bilinear")
    assert (cfg["first_conv"], cfg["classifier"]) == (arch.first_conv, arch.classifier)
    meta = config["radiologynet"]
    assert meta["sha256"] == sha256_file(weights)
    assert meta["weights"] == f"{arch.name}.radiologynet@v1"
    record = get_weights(f"{arch.name}.radiologynet")
    assert len(meta["results"]) == len(record.results)
    files = sorted(p.name for p in converted["out"].iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]  # no temp files left


def test_model_card_front_matter_and_results(tmp_path):
    arch = ARCHITECTURES["inception_v3"]
    state = {
        k: v for k, v in timm.create_model("inception_v3", num_classes=36).state_dict().items()
    }
    out = write_weights_folder(
        state,
        tmp_path / "card",
        arch=arch,
        record=get_weights("inception_v3.radiologynet"),
        card_extra={"sections": {"Fine-tuning": "Trained on PBA."}},
    )
    card = (out / "README.md").read_text()
    head = card.split("---")[1]
    assert "library_name: timm" in head and "license: gpl-3.0" in head
    assert "- radiologynet" in head
    for section in (
        "## Intended use",
        "## Preprocessing",
        "## Training data and its limits",
        "## Results in the paper",
        "## How to load",
        "## Fine-tuning",
    ):
        assert section in card
    # Table 3, PBA, InceptionV3, RadiologyNET: MAE 9.31 +- 0.3 (lr 1e-2).
    assert "9.31 ± 0.3 months (lr 1e-2)" in card
    assert "hf-hub:radiologynet/inception_v3.radiologynet" in card


# --------------------------------------------------------------------------- variants


def test_archive_gives_the_same_weights_as_the_pth(tmp_path):
    arch = ARCHITECTURES["mobilenet_v3_small"]
    pth = save_original(build_wrapper(arch), tmp_path / "MobileNetV3Small.pth", arch)
    archive = make_archive(pth, tmp_path / "MobileNetV3Small.tar.gz")
    from_pth, name = load_original_checkpoint(pth)
    from_archive, name_archive = load_original_checkpoint(archive)
    assert name == name_archive == "mobileNetV3Small"
    assert from_pth.keys() == from_archive.keys()
    assert all(torch.equal(from_pth[k], from_archive[k]) for k in from_pth)
    a = convert_checkpoint(pth, tmp_path / "a")
    b = convert_checkpoint(archive, tmp_path / "b")
    assert sha256_file(a / "model.safetensors") == sha256_file(b / "model.safetensors")


def test_bare_state_dict_with_module_prefix(tmp_path):
    arch = ARCHITECTURES["mobilenet_v3_small"]
    wrapper = build_wrapper(arch)
    pth = save_original(wrapper, tmp_path / "bare.pth", arch, prefix="module.", bare=True)
    state, name = load_original_checkpoint(pth)
    assert name is None and not any(k.startswith("module.") for k in state)
    out = convert_checkpoint(pth, tmp_path / "out")
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = _input(arch)
    with torch.no_grad():
        assert (model(x) - wrapper(x)).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "efficientnet_b3", "resnet18"])
def test_plain_torchvision_state_dict(name):
    arch = ARCHITECTURES[name]
    reference = getattr(tvm, arch.torchvision_name)(weights=None).eval()
    assert detect_architecture(reference.state_dict()) is arch
    converted = to_timm_state_dict(reference.state_dict(), arch)
    model = timm.create_model(arch.timm_name, num_classes=1000, **arch.model_args_dict)
    model.load_state_dict(converted, strict=True)
    x = _input(arch)
    with torch.no_grad():
        assert (model.eval()(x) - reference(x)).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("name", ["efficientnet_b4", "mobilenet_v3_small", "vgg16"])
def test_timm_state_dict_passes_through(name):
    arch = ARCHITECTURES[name]
    with torch.device("meta"):
        state = timm.create_model(
            arch.timm_name, num_classes=7, **arch.model_args_dict
        ).state_dict()
    assert detect_architecture(state) is arch
    assert to_timm_state_dict(state, arch).keys() == state.keys()


def test_grayscale_and_new_head_through_plain_timm(tmp_path):
    arch = ARCHITECTURES["resnet18"]
    wrapper = build_wrapper(arch)
    out = convert_checkpoint(
        save_original(wrapper, tmp_path / "ResNet18.pth", arch), tmp_path / "out"
    )
    model = timm.create_model(f"local-dir:{out}", pretrained=True, in_chans=1, num_classes=4).eval()
    assert model(_input(arch, channels=1)).shape == (1, 4)
    summed = wrapper.model.conv1.weight.sum(dim=1, keepdim=True)
    assert torch.allclose(model.conv1.weight, summed, atol=1e-6)
    assert torch.equal(model.layer4[1].conv2.weight, wrapper.model.layer4[1].conv2.weight)


def test_folder_without_record_uses_radiologynet_preprocessing(tmp_path):
    arch = get_architecture("efficientnet_b3")
    with torch.device("meta"):
        shapes = timm.create_model("efficientnet_b3", num_classes=3).state_dict()
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()}
    out = write_weights_folder(state, tmp_path / "mine", arch=arch, label_names=["a", "b", "c"])
    config, _ = read_weights_folder(out)
    assert config["num_classes"] == 3 and config["label_names"] == ["a", "b", "c"]
    assert config["pretrained_cfg"]["input_size"] == [3, 300, 300]
    assert "weights" not in config["radiologynet"]
    with pytest.raises(CheckpointFormatError, match="num_classes=5"):
        write_weights_folder(state, tmp_path / "bad", arch=arch, num_classes=5)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(CheckpointFormatError, match="a-file exists and is not a folder"):
        write_weights_folder(state, tmp_path / "a-file", arch=arch)


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small_pth(tmp_path_factory) -> Path:
    arch = ARCHITECTURES["mobilenet_v3_small"]
    root = tmp_path_factory.mktemp("small")
    return save_original(build_wrapper(arch), root / "MobileNetV3Small.pth", arch)


def test_truncated_archive(small_pth, tmp_path):
    archive = make_archive(small_pth, tmp_path / "MobileNetV3Small.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match="MobileNetV3Small.tar.gz.*Re-download"):
        load_original_checkpoint(archive)


def test_corrupt_archive_and_checkpoint(tmp_path):
    junk = bytes(range(256)) * 64
    (tmp_path / "ResNet18.tar.gz").write_bytes(junk)
    with pytest.raises(CheckpointFormatError, match="ResNet18.tar.gz"):
        load_original_checkpoint(tmp_path / "ResNet18.tar.gz")
    (tmp_path / "ResNet18.pth").write_bytes(junk)
    with pytest.raises(CheckpointFormatError, match="ResNet18.pth"):
        load_original_checkpoint(tmp_path / "ResNet18.pth")


def _archive_with(tmp_path: Path, info: tarfile.TarInfo, data: bytes = b"x") -> Path:
    path = tmp_path / "ResNet18.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        if info.isreg():
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        else:
            tar.addfile(info)
    return path


@pytest.mark.parametrize(
    "member", ["/tmp/ResNet18.pth", "../ResNet18.pth", "models/../../ResNet18.pth"]
)
def test_unsafe_member_path_refused(tmp_path, member):
    archive = _archive_with(tmp_path, tarfile.TarInfo(member))
    with pytest.raises(CheckpointFormatError, match="Refusing archive"):
        load_original_checkpoint(archive)
    assert not (tmp_path.parent / "ResNet18.pth").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_link_and_device_members_refused(tmp_path, kind):
    info = tarfile.TarInfo("ResNet18.pth")
    info.type = kind
    info.linkname = "/etc/passwd"
    with pytest.raises(CheckpointFormatError, match="'ResNet18.pth' has a (link|device)"):
        load_original_checkpoint(_archive_with(tmp_path, info))


class NotATensor:
    """A class torch.load(weights_only=True) must refuse to build."""

    def __init__(self) -> None:
        self.payload = "would run arbitrary code on unpickling"


def test_non_tensor_objects_refused(tmp_path):
    path = tmp_path / "ResNet18.pth"
    torch.save({"model_state": {"fc.weight": torch.zeros(2, 2)}, "extra": NotATensor()}, path)
    with pytest.raises(CheckpointFormatError, match="weights_only"):
        load_original_checkpoint(path)
    torch.save({"model_state": {"fc.weight": "not a tensor"}}, path)
    with pytest.raises(CheckpointFormatError, match="not tensors"):
        load_original_checkpoint(path)


def test_keys_matching_no_architecture(tmp_path):
    state = {"encoder.stem.weight": torch.zeros(8, 3, 3, 3), "head.weight": torch.zeros(2, 8)}
    with pytest.raises(CheckpointFormatError, match="match no known architecture.*ResNet50"):
        detect_architecture(state)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointFormatError, match="match no known architecture"):
        convert_checkpoint(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_model_name_contradicting_the_keys(small_pth):
    state, _ = load_original_checkpoint(small_pth)
    with pytest.raises(CheckpointFormatError, match="model_name='ResNet50'.*resnet50"):
        detect_architecture(state, "ResNet50")
    with pytest.raises(CheckpointFormatError, match="does not fit resnet50"):
        to_timm_state_dict(state, ARCHITECTURES["resnet50"])


def test_missing_files(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nothere.pth"):
        load_original_checkpoint(tmp_path / "nothere.pth")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "config.json").write_text(json.dumps({"architecture": "resnet18"}))
    with pytest.raises(WeightsNotFoundError, match="folder has no model.safetensors"):
        read_weights_folder(tmp_path / "folder")
    safetensors.torch.save_file({"x": torch.zeros(1)}, tmp_path / "folder/model.safetensors")
    (tmp_path / "folder" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointFormatError, match="config.json is not valid JSON"):
        read_weights_folder(tmp_path / "folder")


# --------------------------------------------------------------------------- CLI


def test_cli_convert(small_pth, tmp_path, capsys):
    assert main(["convert", str(small_pth), "--out", str(tmp_path / "out")]) == 0
    config, _ = read_weights_folder(tmp_path / "out")
    assert config["architecture"] == "mobilenetv3_small_100"
    assert str(tmp_path / "out") in capsys.readouterr().out
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"junk")
    assert main(["convert", str(bad), "--out", str(tmp_path / "x")]) == 1
    assert "bad.pth" in capsys.readouterr().err


def test_cli_convert_unreleased_tag(small_pth, tmp_path, capsys):
    assert (
        main(["convert", str(small_pth), "--out", str(tmp_path / "mr"), "--tag", "radiologynet-mr"])
        == 0
    )
    config, _ = read_weights_folder(tmp_path / "mr")
    assert config["radiologynet"]["tag"] == "radiologynet-mr"
    assert main(["convert", str(small_pth), "--out", str(tmp_path / "x"), "--tag", "nonsense"]) == 1
    assert "Valid tags" in capsys.readouterr().err


def test_cli_publish_dry_run_touches_no_network(small_pth, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("--dry-run must not create an HfApi")

    monkeypatch.setattr(huggingface_hub, "HfApi", refuse)
    out = convert_checkpoint(small_pth, tmp_path / "out")
    assert main(["publish", str(out), "--repo-id", "me/mnv3", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "would upload 3 files" in printed
    for name in ("config.json", "model.safetensors", "README.md"):
        assert name in printed
    assert sha256_file(out / "model.safetensors") in printed


def test_cli_publish_uploads_with_huggingface_hub(small_pth, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

        def create_branch(self, repo_id, **kwargs):
            calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return huggingface_hub.CommitInfo(
                commit_url="https://huggingface.co/me/mnv3/commit/abc123",
                commit_message="m",
                commit_description="",
                oid="abc123",
            )

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = convert_checkpoint(small_pth, tmp_path / "out")
    (out / ".cache-junk").write_text("not uploaded")
    assert main(["publish", str(out), "--repo-id", "me/mnv3", "--private", "--revision", "v1"]) == 0
    names = [name for name, _ in calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    assert calls[0][1]["exist_ok"] is True and calls[0][1]["private"] is True
    upload = calls[2][1]
    assert upload["repo_id"] == "me/mnv3" and upload["revision"] == "v1"
    assert Path(upload["folder_path"]) == out
    assert sorted(upload["allow_patterns"]) == ["README.md", "config.json", "model.safetensors"]
    assert "hub_revision='abc123'" in capsys.readouterr().out


def test_cli_publish_refuses_a_folder_timm_cannot_load(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["publish", str(tmp_path / "empty"), "--repo-id", "me/x", "--dry-run"]) == 1
    assert "has no config.json" in capsys.readouterr().err


def test_a_folder_is_not_called_missing(tmp_path, capsys):
    """Before: `convert <folder>` said the folder "does not exist"."""
    (tmp_path / "folder").mkdir()
    with pytest.raises(CheckpointFormatError, match="is a folder") as err:
        load_original_checkpoint(tmp_path / "folder")
    assert "does not exist" not in str(err.value)
    assert main(["convert", str(tmp_path / "folder"), "--out", str(tmp_path / "o")]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_archive_bomb_is_refused_before_extraction(tmp_path):
    """Before: a 398 KB archive unpacked to 400 MB on disk before it was rejected."""
    payload = bytes(40 << 20)  # 40 MiB of zeros: compresses ~1000x
    archive = tmp_path / "ResNet18.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("ResNet18.pth")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(CheckpointFormatError, match="would unpack to 41943040 bytes"):
        load_original_checkpoint(archive)
    assert [p.name for p in tmp_path.iterdir()] == ["ResNet18.tar.gz"], "nothing extracted"


def test_torchvision_imagenet_head_is_refused_under_the_radiologynet_tag(tmp_path, capsys):
    torch.manual_seed(0)
    pth = tmp_path / "mobilenet_v3_small-047dcff4.pth"
    torch.save(tvm.mobilenet_v3_small().state_dict(), pth)
    assert main(["convert", str(pth), "--out", str(tmp_path / "x"), "--tag", "radiologynet"]) == 1
    assert "use tag 'imagenet'" in capsys.readouterr().err
    config, _ = read_weights_folder(convert_checkpoint(pth, tmp_path / "auto"))
    assert config["radiologynet"]["tag"] == "imagenet"
    assert config["pretrained_cfg"]["mean"] == [0.485, 0.456, 0.406]


def test_grayscale_filters_compute_the_same_on_grayscale_input():
    from radiologynet.models._folder import grayscale_filters

    weight = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    gray = torch.rand(2, 1, 8, 8)
    reference = torch.nn.functional.conv2d(gray.expand(-1, 3, -1, -1), weight)
    for channels in (1, 2, 3, 5):
        spread = grayscale_filters(weight, channels)
        assert spread.shape == (4, channels, 3, 3)
        out = torch.nn.functional.conv2d(gray.expand(-1, channels, -1, -1), spread)
        torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    # 1 -> 3 -> timm's in_chans=1 (the filters summed) gives the 1-channel filter back
    one = grayscale_filters(weight, 1)
    torch.testing.assert_close(grayscale_filters(one, 3).sum(1, keepdim=True), one)


def test_a_one_channel_model_writes_a_folder_that_loads_with_any_in_chans(tmp_path):
    one = timm.create_model("resnet18", num_classes=2, in_chans=1)
    folder = write_weights_folder(one.state_dict(), tmp_path / "w", arch="resnet18")
    three = radiologynet.create_model("resnet18", weights=str(folder), num_classes=2)
    back = radiologynet.create_model("resnet18", weights=str(folder), num_classes=2, in_chans=1)
    torch.testing.assert_close(back.conv1.weight, one.conv1.weight)
    gray = torch.rand(2, 1, 32, 32)
    one.eval(), three.eval()
    torch.testing.assert_close(three(gray.expand(-1, 3, -1, -1)), one(gray), rtol=1e-4, atol=1e-5)
