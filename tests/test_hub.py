"""Weight resolution: offline bundles, a pinned Hub cache, the converted-source cache.

Nothing here touches the network: every network entry point is replaced by one that
fails the test, and sources are served from ``file://`` URLs.
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import pytest
import torch
import torchvision
from safetensors.torch import load_file
from zoo_fakes import original_resnet18_checkpoint, tar_gz

import radiologynet
from radiologynet import hub, weights
from radiologynet.errors import ChecksumError, WeightsNotFoundError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache and Hub cache; the network forbidden; records restored afterwards."""
    monkeypatch.setenv("RADIOLOGYNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RADIOLOGYNET_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))

    def no_network(*args, **kwargs):
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    saved = dict(weights._RECORDS)
    yield
    weights._RECORDS.clear()
    weights._RECORDS.update(saved)


@pytest.fixture
def source_record(tmp_path):
    """resnet18.radiologynet served from a local archive in the original format."""
    pth = tmp_path / "src" / "ResNet18.pth"
    pth.parent.mkdir()
    state = original_resnet18_checkpoint(pth)
    archive = tar_gz(pth, tmp_path / "src" / "ResNet18.tar.gz")
    record = dataclasses.replace(radiologynet.get_weights("resnet18.radiologynet"),
                                 source_url=archive.as_uri())
    radiologynet.register_weights(record)
    return record, state


def write_folder(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder / "model.safetensors"


def timm_resnet18_state(num_classes: int = 36) -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(2)
    return timm.create_model("resnet18", num_classes=num_classes).state_dict()


def fake_hub_cache(root: Path, repo_id: str, filename: str, content: bytes) -> Path:
    """huggingface_hub's cache layout: blobs/, snapshots/<commit>/, refs/main."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    import hashlib

    blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(content)
    snapshot = repo / "snapshots" / COMMIT / filename
    snapshot.parent.mkdir(parents=True)
    os.symlink(os.path.relpath(blob, snapshot.parent), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def test_offline_bundle_directory_is_used_first(tmp_path, monkeypatch):
    state = timm_resnet18_state()
    write_folder(tmp_path / "bundle" / "resnet18.radiologynet@v1", state)
    monkeypatch.setenv("RADIOLOGYNET_WEIGHTS_DIR", str(tmp_path / "bundle"))
    model = radiologynet.create_model("resnet18.radiologynet")
    assert torch.equal(model.fc.weight, state["fc.weight"])
    assert model.radiologynet_weights.tag == "radiologynet"


def test_pinned_hub_cache_loads_offline_without_network(tmp_path, monkeypatch):
    state = timm_resnet18_state()
    data_file = write_folder(tmp_path / "made", state)
    content = data_file.read_bytes()
    record = weights.with_pin(radiologynet.get_weights("resnet18.radiologynet"), COMMIT,
                              hub.sha256_of(data_file))
    radiologynet.register_weights(record)
    fake_hub_cache(tmp_path / "hf", record.hub_repo_id, "model.safetensors", content)
    for offline in ("1", None):  # with the flag, and without it: a cached pin needs no call
        if offline:
            monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        else:
            monkeypatch.delenv("HF_HUB_OFFLINE")
        model = radiologynet.create_model("resnet18", weights="radiologynet", num_classes=5)
        assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_pinned_hub_file_with_wrong_sha256_is_removed(tmp_path):
    data_file = write_folder(tmp_path / "made", timm_resnet18_state())
    record = weights.with_pin(radiologynet.get_weights("resnet18.radiologynet"), COMMIT,
                              "0" * 64)
    radiologynet.register_weights(record)
    snapshot = fake_hub_cache(tmp_path / "hf", record.hub_repo_id, "model.safetensors",
                              data_file.read_bytes())
    with pytest.raises(ChecksumError, match="removed"):
        radiologynet.create_model("resnet18.radiologynet")
    assert not snapshot.resolve().exists()


def test_empty_cache_offline_fails_fast_with_the_fix(monkeypatch, source_record):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "download", lambda *a, **k: pytest.fail("downloaded offline"))
    with pytest.raises(WeightsNotFoundError) as err:
        radiologynet.create_model("resnet18.radiologynet")
    message = str(err.value)
    assert "resnet18.radiologynet@v1" in message
    assert "RADIOLOGYNET_WEIGHTS_DIR" in message and "(cache)" in message
    assert "skipped: offline" in message
    assert "radiologynet download resnet18.radiologynet --to DIR" in message


def test_source_archive_is_downloaded_converted_and_cached(monkeypatch, source_record):
    record, state = source_record
    model = radiologynet.create_model("resnet18.radiologynet").eval()
    torch.testing.assert_close(model.fc.weight, state["model.fc.weight"], rtol=0, atol=0)
    folder = hub.cache_dir() / "weights" / record.full_name
    converted = folder / "model.safetensors"
    recorded = (folder / "model.safetensors.sha256").read_text().split()[0]
    assert recorded == hub.sha256_of(converted)
    assert set(load_file(str(converted))) == {k[len("model."):] for k in state}
    assert not list(folder.parent.glob(".tmp-*")), "no temporary folder left behind"
    # later loads come from the cache, never the source
    monkeypatch.setattr(hub, "download", lambda *a, **k: pytest.fail("downloaded twice"))
    radiologynet.create_model("resnet18.radiologynet", num_classes=2)


def test_corrupted_cache_is_detected_and_removed(source_record):
    record, _ = source_record
    radiologynet.create_model("resnet18.radiologynet")
    converted = hub.cache_dir() / "weights" / record.full_name / "model.safetensors"
    with open(converted, "r+b") as fh:
        fh.seek(-10, io.SEEK_END)
        fh.write(b"0123456789")
    with pytest.raises(ChecksumError, match="removed"):
        radiologynet.create_model("resnet18.radiologynet")
    assert not converted.exists()
    radiologynet.create_model("resnet18.radiologynet")  # fetched anew
    assert converted.exists()


def test_truncated_download_leaves_nothing_behind(tmp_path, source_record):
    record, _ = source_record
    archive = Path(record.source_url.removeprefix("file://"))
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(radiologynet.errors.RadiologyNetError, match="ResNet18.tar.gz"):
        radiologynet.create_model("resnet18.radiologynet")
    weights_dir = hub.cache_dir() / "weights"
    assert not (weights_dir / record.full_name).exists()
    assert not list(weights_dir.glob(".tmp-*"))


def test_unreachable_source_names_the_weight_and_url(source_record):
    record, _ = source_record
    radiologynet.register_weights(dataclasses.replace(
        record, source_url="file:///nonexistent/ResNet18.tar.gz"))
    with pytest.raises(WeightsNotFoundError, match="resnet18.radiologynet@v1.*ResNet18"):
        radiologynet.create_model("resnet18.radiologynet")


def test_original_checkpoint_path_is_converted_once(tmp_path, monkeypatch):
    pth = tmp_path / "ResNet18.pth"
    state = original_resnet18_checkpoint(pth)
    model = radiologynet.create_model("resnet18", weights=pth, num_classes=3)
    assert torch.equal(model.layer1[0].conv1.weight, state["model.layer1.0.conv1.weight"])
    converted = list((hub.cache_dir() / "converted").glob("ResNet18.pth-*/model.safetensors"))
    assert len(converted) == 1


@pytest.mark.slow  # two fresh interpreters racing for one download
def test_concurrent_processes_download_once(tmp_path, source_record):
    record, _ = source_record
    counter = tmp_path / "downloads.log"
    script = textwrap.dedent(f"""
        import dataclasses, radiologynet
        from radiologynet import hub
        real = hub.download
        def counting(*a, **k):
            with open({str(counter)!r}, "a") as fh:
                fh.write("x\\n")
            return real(*a, **k)
        hub.download = counting
        radiologynet.register_weights(dataclasses.replace(
            radiologynet.get_weights("resnet18.radiologynet"), source_url={record.source_url!r}))
        m = radiologynet.create_model("resnet18.radiologynet")
        print(float(m.fc.weight.sum()))
    """)
    env = {**os.environ, "RADIOLOGYNET_CACHE": str(hub.cache_dir())}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert outputs[0][0] == outputs[1][0]
    assert counter.read_text().count("x") == 1


def test_torchvision_imagenet_checkpoint_is_converted_exactly(tmp_path):
    """ImageNet weights timm does not carry come from torchvision's own checkpoint."""
    torch.manual_seed(3)
    net = torchvision.models.mobilenet_v3_small().eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    pth = tmp_path / "mobilenet_v3_small-047dcff4.pth"
    torch.save(net.state_dict(), pth)  # torchvision's checkpoints are bare state dicts
    record = radiologynet.get_weights("mobilenet_v3_small.imagenet")
    assert record.source_url.startswith("https://download.pytorch.org/")
    radiologynet.register_weights(dataclasses.replace(record, source_url=pth.as_uri()))
    model = radiologynet.create_model("mobilenet_v3_small", weights="imagenet").eval()
    assert model.pretrained_cfg["mean"] == (0.485, 0.456, 0.406)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=0, atol=1e-5)
