"""Files the library writes to share are readable by colleagues: 0644 files and 0755 folders
under umask 022, whatever safetensors (0600) or mkstemp/mkdtemp (0600/0700) do."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from zoo_fakes import original_resnet18_checkpoint, tar_gz

import radiologynet
from radiologynet._atomic import (
    atomic_dir,
    atomic_path,
    atomic_write,
    atomic_write_text,
    make_shared_dir,
)
from radiologynet.models import _weights as weights
from radiologynet.train import TrainConfig


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_shared(root: Path) -> None:
    """``root`` is 0755 and everything below it is 0755 (folders) or 0644 (files)."""
    found = {root: _mode(root)} | {p: _mode(p) for p in root.rglob("*")}
    wrong = {
        str(p.relative_to(root.parent)): oct(m)
        for p, m in found.items()
        if m != (0o755 if p.is_dir() else 0o644)
    }
    assert not wrong, wrong
    assert any(p.is_file() for p in found), f"{root} holds no file: nothing was checked"


def test_safetensors_over_a_0644_file_stays_0644(tmp_path, umask_022):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    atomic_write(target, lambda tmp: save_file({"w": torch.ones(2)}, tmp))
    assert _mode(target) == 0o644
    # the library's fix is needed: safetensors alone leaves 0600 (if it ever stops, fine)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2)}, str(plain))
    assert _mode(plain) in (0o600, 0o644)


def test_atomic_path_dir_and_make_shared_dir(tmp_path, umask_022):
    with atomic_path(tmp_path / "a" / "images.npy") as tmp:
        os.chmod(tmp, 0o600)
        np.save(tmp.open("wb"), np.zeros(3))
    assert_shared(tmp_path / "a")
    with atomic_dir(tmp_path / "bundle" / "w") as staging:
        assert _mode(staging) == 0o700  # mkdtemp's: fixed on the way out
        (staging / "sub").mkdir(mode=0o700)
        (staging / "sub" / "f.bin").write_bytes(b"x")
        os.chmod(staging / "sub" / "f.bin", 0o600)
    assert_shared(tmp_path / "bundle")
    assert _mode(make_shared_dir(tmp_path / "x" / "y")) == 0o755
    assert [p.name for p in (tmp_path / "bundle").iterdir()] == ["w"]  # no temp left


def test_atomic_dir_replaces_a_whole_folder_and_keeps_it_on_failure(tmp_path):
    target = tmp_path / "w"
    with atomic_dir(target) as staging:
        (staging / "old.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "new.txt").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    with atomic_dir(target) as staging:
        (staging / "new.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_modes_follow_a_stricter_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "new" / "card.md", "hi")
    finally:
        os.umask(old)
    assert _mode(path) == 0o640 and _mode(path.parent) == 0o750


def test_convert_weights_folder_is_shared(tmp_path, umask_022):
    from radiologynet.models._folder import write_weights_folder

    model = radiologynet.create_model("resnet18", weights=None, num_classes=2)
    out = write_weights_folder(model.state_dict(), tmp_path / "weights", arch="resnet18")
    assert_shared(out)


@pytest.fixture
def served_resnet18(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIOLOGYNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RADIOLOGYNET_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(
        huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("network used")
    )
    pth = tmp_path / "src" / "ResNet18.pth"
    pth.parent.mkdir()
    original_resnet18_checkpoint(pth)
    archive = tar_gz(pth, tmp_path / "src" / "ResNet18.tar.gz")
    saved = dict(weights._RECORDS)
    radiologynet.register_weights(
        dataclasses.replace(
            radiologynet.get_weights("resnet18.radiologynet"), source_url=archive.as_uri()
        )
    )
    yield tmp_path / "cache"
    weights._RECORDS.clear()
    weights._RECORDS.update(saved)


def test_cache_entries_and_download_bundles_are_shared(tmp_path, umask_022, served_resnet18):
    from radiologynet.cli import main

    bundle = tmp_path / "bundle"
    assert main(["download", "resnet18.radiologynet", "--to", str(bundle)]) == 0
    assert_shared(bundle)
    entries = [p for p in served_resnet18.rglob("model.safetensors")]
    assert entries, "the conversion left nothing in the cache"
    for entry in entries:
        assert_shared(entry.parent)


def test_decoded_image_cache_is_shared(tmp_path, umask_022):
    from radiologynet.data.cache import build_cache

    sources = []
    for k in range(3):
        sources.append(tmp_path / "src" / f"{k}.png")
        sources[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((20, 30), 40 * k, np.uint8)).save(sources[-1])
    sources.append(tmp_path / "src" / "broken.png")
    sources[-1].write_bytes(b"not a png")  # the shrink-to-readable path writes a second temp
    with pytest.warns(UserWarning, match="unreadable"):
        cache = build_cache(sources, tmp_path / "cache", 16, skip_unreadable=True, progress=False)
    assert len(cache) == 3
    assert_shared(tmp_path / "cache")


def test_run_folder_is_shared(tmp_path, umask_022):
    from radiologynet.protocol import runner

    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 1), ("test", 1)):
        for name, level in (("bright", 200), ("dark", 40)):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                pixels = np.clip(rng.normal(level, 20, (16, 16)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{k}.png")
    out = tmp_path / "results"
    runner.run(
        "folder",
        tmp_path / "data",
        models=["resnet18"],
        inits=["random"],
        lrs=["1e-3"],
        runs=1,
        out=out,
        config=TrainConfig(max_epochs=1, patience=1, batch_size=2, progress=False),
        settings=runner.RunSettings(input_size=32),
    )
    models = list(out.rglob("model.safetensors"))
    assert models, "the run wrote no model folder"
    assert_shared(out)


def test_bundle_of_a_bare_hub_file_gets_config_and_card(tmp_path, umask_022, monkeypatch):
    """A Hub weight that is only a model.safetensors (timm's ImageNet files) becomes a full
    weights folder in the bundle, written by convert.write_weights_folder."""
    import timm

    from radiologynet.cli import main

    snapshot = tmp_path / "hf" / "snapshot"
    snapshot.mkdir(parents=True)
    state = timm.create_model("resnet18", num_classes=1000).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    os.chmod(snapshot / "model.safetensors", 0o600)  # as some caches leave it
    monkeypatch.setenv("RADIOLOGYNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RADIOLOGYNET_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(
        huggingface_hub, "hf_hub_download", lambda repo, filename, **k: str(snapshot / filename)
    )
    bundle = tmp_path / "bundle"
    assert main(["download", "resnet18.imagenet", "--to", str(bundle)]) == 0
    folder = bundle / radiologynet.get_weights("resnet18.imagenet").full_name
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert_shared(bundle)
    model = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
