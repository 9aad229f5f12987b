"""One integrity rule whatever the spelling of a hash, archives read by content, hostile
config.json values and pickles refused with the library's error (issue 23, 3 and 4)."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest
import torch
from zoo_fakes import original_resnet18_checkpoint

import radiologynet
from radiologynet.errors import CheckpointFormatError, ChecksumError
from radiologynet.models import _folder
from radiologynet.models._convert import load_original_checkpoint
from radiologynet.models._folder import parse_sha256, sha256_file, write_weights_folder

REPO_DIR = Path(__file__).resolve().parents[1]
HASH = "0123456789abcdef" * 4


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIOLOGYNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RADIOLOGYNET_WEIGHTS_DIR", raising=False)


@pytest.mark.parametrize(
    "text",
    [
        HASH,
        HASH.upper(),
        f"{HASH}  model.safetensors\n",
        f"{HASH.upper()} *model.safetensors",
        f"\\{HASH}  odd\\nname",
        f"SHA256 (model.safetensors) = {HASH}",
    ],
)
def test_every_spelling_of_a_hash_reads_the_same(text):
    assert parse_sha256(text) == HASH


@pytest.mark.parametrize("text", ["", HASH[:-1], "x" + HASH, HASH + "0", "md5 " + HASH])
def test_what_is_no_hash_reads_as_none(text):
    assert parse_sha256(text) is None


@pytest.fixture(scope="module")
def state():
    import timm

    torch.manual_seed(0)
    return timm.create_model("resnet18", num_classes=2).state_dict()


@pytest.fixture
def folder(tmp_path, state):
    return write_weights_folder(state, tmp_path / "w", arch="resnet18")


def _edit_config(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def _sha(folder: Path, value: str):
    return _edit_config(folder, lambda c: c["radiologynet"].__setitem__("sha256", value))


def test_wrong_config_hash_in_upper_case_is_refused(folder):
    """Before: an upper-case sha256 in config.json was not recognised, so not checked."""
    _sha(folder, "F" * 64)
    with pytest.raises(ChecksumError, match="per config.json"):
        radiologynet.create_model("resnet18", weights=folder)


def test_right_config_hash_in_upper_case_loads(folder):
    _sha(folder, sha256_file(folder / "model.safetensors").upper())
    assert radiologynet.create_model("resnet18", weights=folder).num_classes == 2


@pytest.mark.parametrize("value", ["not-a-hash", "F" * 63])
def test_config_hash_that_is_no_hash_is_refused(folder, value):
    """Before: a sha256 that was not 64 lower-case digits was skipped: no check at all."""
    _sha(folder, value)
    with pytest.raises(ChecksumError, match="radiologynet.sha256"):
        radiologynet.create_model("resnet18", weights=folder)


@pytest.mark.parametrize(
    "line", ["{h}  model.safetensors", "{H}  model.safetensors", "{H} *model.safetensors", "{H}"]
)
def test_sidecar_in_any_form_is_accepted_when_right_and_refused_when_wrong(folder, line):
    digest = sha256_file(folder / "model.safetensors")
    sidecar = folder / "model.safetensors.sha256"
    sidecar.write_text(line.format(h=digest, H=digest.upper()) + "\n")
    assert radiologynet.create_model("resnet18", weights=folder).num_classes == 2
    wrong = "ab" * 32
    sidecar.write_text(line.format(h=wrong, H=wrong.upper()) + "\n")
    with pytest.raises(ChecksumError, match="model.safetensors.sha256"):
        radiologynet.create_model("resnet18", weights=folder)


def test_a_right_sidecar_does_not_excuse_a_wrong_config_hash(folder):
    digest = sha256_file(folder / "model.safetensors")
    (folder / "model.safetensors.sha256").write_text(f"{digest}  model.safetensors\n")
    _sha(folder, "e" * 64)
    with pytest.raises(ChecksumError, match="per config.json"):
        radiologynet.create_model("resnet18", weights=folder)


# --------------------------------------------------------------------------- archives


def test_archive_with_a_decoy_first_member_finds_the_checkpoint(tmp_path):
    """Before: the first .pth member was read, the decoy, and the archive refused."""
    real = tmp_path / "real" / "weights.pth"
    real.parent.mkdir()
    expected = original_resnet18_checkpoint(real)
    decoy = tmp_path / "notes.pth"
    decoy.write_bytes(b"not a checkpoint at all")
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    archive = tmp_path / "Release.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(decoy, arcname="notes.pth")
        tar.add(listing, arcname="list.pth")
        tar.add(real, arcname="checkpoints/weights.pth")
    loaded, name = load_original_checkpoint(archive)
    assert name == "ResNet18"
    assert set(loaded) == {k.removeprefix("module.") for k in expected}
    assert not list(tmp_path.glob(".radiologynet-extract-*"))


def test_archive_without_any_checkpoint_inside_names_every_failure(tmp_path):
    for name in ("a.pth", "b.pth"):
        (tmp_path / name).write_bytes(b"junk")
    archive = tmp_path / "Release.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("a.pth", "b.pth"):
            tar.add(tmp_path / name, arcname=name)
    with pytest.raises(CheckpointFormatError, match="none of its 2 checkpoint members"):
        load_original_checkpoint(archive)


# --------------------------------------------------------------------------- pickles


class Payload:
    def __reduce__(self):
        return (print, ("pickle code ran",))


@pytest.fixture
def pickle_file(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model_state": {"fc.weight": Payload()}}, path)
    return path


def _hubconf():
    spec = importlib.util.spec_from_file_location("hubconf_i23", REPO_DIR / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry_points():
    from radiologynet.models import load_unet
    from radiologynet.models._vanilla_unet import load_vanilla_unet

    return {
        "create_model": lambda p: radiologynet.create_model("resnet18", weights=p),
        "hubconf": lambda p: _hubconf().resnet18(weights=p),
        "create_unet": lambda p: radiologynet.create_unet("resnet18", weights=p),
        "create_unet(None)": lambda p: radiologynet.create_unet(None, weights=p),
        "load_unet": load_unet,
        "load_vanilla_unet": load_vanilla_unet,
    }


@pytest.mark.parametrize("entry", list(_entry_points()))
def test_every_path_entry_point_refuses_a_pickle_in_the_library_wording(pickle_file, entry, capsys):
    """Before: torch's raw UnpicklingError text (advising weights_only=False), or a
    safetensors / missing-config error for the U-Net loaders."""
    with pytest.raises(CheckpointFormatError) as err:
        _entry_points()[entry](pickle_file)
    message = str(err.value)
    assert message.startswith(f"Checkpoint {pickle_file} ")
    assert "pickle can run code" in message and "\n" not in message
    assert "weights_only` set to `False`" not in message and "likely succeed" not in message
    assert "pickle code ran" not in capsys.readouterr().out


def test_cli_and_python_give_the_same_pickle_wording(pickle_file, tmp_path, capsys):
    from radiologynet.cli import main

    with pytest.raises(CheckpointFormatError) as err:
        radiologynet.create_model("resnet18", weights=pickle_file)
    assert main(["convert", str(pickle_file), "--out", str(tmp_path / "o")]) == 1
    assert str(err.value) in capsys.readouterr().err


# --------------------------------------------------------------------------- config.json


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_classes", 10**12),
        ("num_classes", 1.5),
        ("num_classes", -5),
        ("num_classes", 0),
        ("num_classes", True),
        ("num_classes", "2"),
        ("model_args", "drop_rate=0.5"),
        ("model_args", 7),
        ("architecture", 18),
        ("label_names", "a,b"),
        ("num_features", -1),
        ("radiologynet", []),
        ("pretrained_cfg", "x"),
        ("pretrained_cfg.input_size", [3, 100000, 100000]),
        ("pretrained_cfg.input_size", [3, 224]),
        ("pretrained_cfg.input_size", [3, 224.5, 224]),
        ("pretrained_cfg.mean", [float("nan"), 0, 0]),
        ("pretrained_cfg.std", [0, 1, 1]),
        ("pretrained_cfg.crop_pct", -1),
        ("pretrained_cfg.num_classes", 10**9),
    ],
)
def test_hostile_config_values_are_refused_naming_file_and_field(folder, field, value):
    """Before: a 2 PB allocation, a silent 1.5, raw ValueError / TypeError / load errors."""

    def edit(config):
        parent, _, key = field.rpartition(".")
        (config[parent] if parent else config)[key] = value

    _edit_config(folder, edit)
    with pytest.raises(CheckpointFormatError) as err:
        radiologynet.create_model("resnet18", weights=folder)
    assert str(folder / "config.json") in str(err.value)
    assert field.split(".")[-1] in str(err.value)


def test_vanilla_unet_model_args_are_bounded(tmp_path):
    from radiologynet.models._vanilla_unet import (
        VanillaUNet,
        load_vanilla_unet,
        save_vanilla_unet,
    )

    folder = save_vanilla_unet(VanillaUNet(in_chans=1, depth=2, first_width=4), tmp_path / "v")
    _edit_config(folder, lambda c: c["model_args"].__setitem__("first_width", 10**7))
    with pytest.raises(CheckpointFormatError, match=r"model_args.first_width"):
        load_vanilla_unet(folder)


def test_oversized_config_is_refused_unread(folder, monkeypatch):
    monkeypatch.setattr(_folder, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(CheckpointFormatError, match="bytes, more than the 100-byte limit"):
        radiologynet.create_model("resnet18", weights=folder)


def test_a_corrupted_cached_conversion_is_verified_and_converted_again(tmp_path):
    """Before: the cached conversion of a local checkpoint was reused unchecked."""
    from radiologynet.models._hub import cache_dir

    pth = tmp_path / "ResNet18.pth"
    state = original_resnet18_checkpoint(pth)
    radiologynet.create_model("resnet18", weights=pth)
    (cached,) = (cache_dir() / "converted").glob("ResNet18.pth-*/model.safetensors")
    data = bytearray(cached.read_bytes())
    data[-64:] = bytes(64)  # the last tensor's bytes, header intact: same size
    cached.write_bytes(bytes(data))
    model = radiologynet.create_model("resnet18", weights=pth)
    loaded = model.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key.removeprefix("model.")], value), key
