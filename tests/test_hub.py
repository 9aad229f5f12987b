"""Weight resolution: offline bundles, a pinned Hub cache, the converted-source cache.

Nothing here touches the network: every network entry point is replaced by one that
fails the test, and sources are served from ``file://`` URLs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest
import torch
import torchvision
from safetensors.torch import load_file
from zoo_fakes import original_resnet18_checkpoint, tar_gz

import radiologynet
from radiologynet.errors import ChecksumError, WeightsNotFoundError
from radiologynet.models import _hub as hub
from radiologynet.models import _weights as weights

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
    record = dataclasses.replace(
        radiologynet.get_weights("resnet18.radiologynet"), source_url=archive.as_uri()
    )
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
    record = weights.with_pin(
        radiologynet.get_weights("resnet18.radiologynet"), COMMIT, hub.sha256_file(data_file)
    )
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
    record = weights.with_pin(radiologynet.get_weights("resnet18.radiologynet"), COMMIT, "0" * 64)
    radiologynet.register_weights(record)
    snapshot = fake_hub_cache(
        tmp_path / "hf", record.hub_repo_id, "model.safetensors", data_file.read_bytes()
    )
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
    assert recorded == hub.sha256_file(converted)
    assert set(load_file(str(converted))) == {k[len("model.") :] for k in state}
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
    radiologynet.register_weights(
        dataclasses.replace(record, source_url="file:///nonexistent/ResNet18.tar.gz")
    )
    with pytest.raises(WeightsNotFoundError, match="resnet18.radiologynet@v1.*ResNet18"):
        radiologynet.create_model("resnet18.radiologynet")


def test_original_checkpoint_path_is_converted_once(tmp_path, monkeypatch):
    pth = tmp_path / "ResNet18.pth"
    state = original_resnet18_checkpoint(pth)
    model = radiologynet.create_model("resnet18", weights=pth, num_classes=3)
    assert torch.equal(model.layer1[0].conv1.weight, state["model.layer1.0.conv1.weight"])
    converted = list((hub.cache_dir() / "converted").glob("ResNet18.pth-*/model.safetensors"))
    assert len(converted) == 1


def _torchvision_net(name: str) -> torch.nn.Module:
    """A torchvision network with random weights and BatchNorm statistics."""
    torch.manual_seed(3)
    net = getattr(torchvision.models, name)().eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    return net


@pytest.mark.parametrize(
    "name, file, version",
    [
        ("mobilenet_v3_small", "mobilenet_v3_small-047dcff4.pth", "IMAGENET1K_V1"),
        ("mobilenet_v3_large", "mobilenet_v3_large-5c1a4163.pth", "IMAGENET1K_V2"),
        ("resnet50", "resnet50-11ad3fa6.pth", "IMAGENET1K_V2"),
    ],
)
def test_torchvision_imagenet_checkpoint_is_converted_exactly(tmp_path, name, file, version):
    """The paper's ImageNet weights (torchvision 0.15.2 DEFAULT) from torchvision's own
    checkpoint layout (a bare state dict), converted exactly."""
    net = _torchvision_net(name)
    pth = tmp_path / f"{name}-fabricated.pth"  # no hash in the name: not checked
    torch.save(net.state_dict(), pth)
    record = radiologynet.get_weights(f"{name}.imagenet")
    assert record.source_url == f"https://download.pytorch.org/models/{file}"
    assert record.torchvision_weights == version
    radiologynet.register_weights(
        dataclasses.replace(record, source_url=pth.as_uri(), timm_hub_id=None)
    )
    model = radiologynet.create_model(name, weights="imagenet").eval()
    assert model.pretrained_cfg["mean"] == (0.485, 0.456, 0.406)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=0, atol=1e-5)
    config = json.loads(
        (hub.cache_dir() / "weights" / record.full_name / "config.json").read_text()
    )
    assert version in config["radiologynet"]["description"]


def test_torchvision_hash_in_the_file_name_is_checked(tmp_path):
    pth = tmp_path / "mobilenet_v3_small-deadbeef.pth"
    torch.save(_torchvision_net("mobilenet_v3_small").state_dict(), pth)
    record = radiologynet.get_weights("mobilenet_v3_small.imagenet")
    assert record.source_sha256_prefix == "047dcff4"
    radiologynet.register_weights(dataclasses.replace(record, source_url=pth.as_uri()))
    with pytest.raises(ChecksumError, match="does not start with deadbeef"):
        radiologynet.create_model("mobilenet_v3_small", weights="imagenet")
    assert not list((hub.cache_dir() / "downloads").rglob("*.pth"))


def test_local_torchvision_imagenet_pth_is_not_called_radiologynet(tmp_path):
    """Before: converted under the radiologynet record (mean 0 / std 1, "pretrained on
    RadiologyNET")."""
    net = _torchvision_net("mobilenet_v3_small")
    pth = tmp_path / "my-imagenet.pth"
    torch.save(net.state_dict(), pth)
    model = radiologynet.create_model("mobilenet_v3_small", weights=pth, num_classes=3)
    assert tuple(model.pretrained_cfg["mean"]) == (0.485, 0.456, 0.406)
    config_file = next((hub.cache_dir() / "converted").glob("my-imagenet.pth-*/config.json"))
    config = json.loads(config_file.read_text())
    assert config["radiologynet"]["tag"] == "imagenet"
    assert "RadiologyNET" not in config["radiologynet"]["description"]
    readme = (config_file.parent / "README.md").read_text()
    assert "IMAGENET1K_V1" in readme and "pretrained on RadiologyNET" not in readme


# --------------------------------------------------------------------------- integrity


def bundle_folder(tmp_path, monkeypatch, state=None, name="resnet18.radiologynet@v1") -> Path:
    """A bundle (RADIOLOGYNET_WEIGHTS_DIR) holding one weights folder, as `download` makes
    it: config.json, model.safetensors and its .sha256 sidecar."""
    from radiologynet.models._folder import write_weights_folder

    folder = tmp_path / "bundle" / name
    record = radiologynet.get_weights(name)
    write_weights_folder(state or timm_resnet18_state(), folder, arch=record.arch, record=record)
    digest = hub.sha256_file(folder / "model.safetensors")
    (folder / "model.safetensors.sha256").write_text(f"{digest}  model.safetensors\n")
    monkeypatch.setenv("RADIOLOGYNET_WEIGHTS_DIR", str(tmp_path / "bundle"))
    return folder


def test_pinned_sha256_is_checked_on_the_downloading_call(source_record):
    """Before: with a wrong pin the first call (download + convert) loaded the weights."""
    record, _ = source_record
    radiologynet.register_weights(dataclasses.replace(record, sha256="0" * 64))
    for _ in range(2):  # every call refuses, and nothing is cached
        with pytest.raises(ChecksumError, match="pins 0000"):
            radiologynet.create_model("resnet18.radiologynet")
        assert not (hub.cache_dir() / "weights" / record.full_name / "model.safetensors").exists()


def test_source_sha256_and_size_are_verified(source_record):
    record, _ = source_record
    archive = Path(record.source_url.removeprefix("file://"))
    right = dict(source_sha256=hub.sha256_file(archive), source_size=archive.stat().st_size)
    for field, wrong in (("source_sha256", "f" * 64), ("source_size", 5)):
        radiologynet.register_weights(dataclasses.replace(record, **{**right, field: wrong}))
        with pytest.raises(ChecksumError, match="ResNet18.tar.gz"):
            hub.resolve_record(radiologynet.get_weights("resnet18.radiologynet"))
    radiologynet.register_weights(dataclasses.replace(record, **right))
    assert hub.resolve_record(radiologynet.get_weights("resnet18.radiologynet")).origin == "source"


def test_bundle_whose_sidecar_does_not_match_is_refused(tmp_path, monkeypatch):
    folder = bundle_folder(tmp_path, monkeypatch)
    (folder / "model.safetensors.sha256").write_text("1" * 64 + "  model.safetensors\n")
    with pytest.raises(ChecksumError, match="model.safetensors.sha256"):
        radiologynet.create_model("resnet18.radiologynet")
    assert (folder / "model.safetensors").exists(), "a bundle is the user's: never deleted"


@pytest.mark.parametrize("content", ["", "  \n", "not-a-hash  model.safetensors\n"])
def test_empty_or_junk_sidecar_is_a_clear_error(tmp_path, monkeypatch, content):
    folder = bundle_folder(tmp_path, monkeypatch)
    (folder / "model.safetensors.sha256").write_text(content)
    with pytest.raises(ChecksumError, match=r"model.safetensors.sha256 holds no sha256"):
        radiologynet.create_model("resnet18.radiologynet")


def test_corrupt_bundled_and_cached_config_is_a_clear_error(tmp_path, monkeypatch, source_record):
    from radiologynet.errors import CheckpointFormatError

    folder = bundle_folder(tmp_path, monkeypatch)
    (folder / "config.json").write_text('{"architecture": "resn')
    with pytest.raises(CheckpointFormatError, match=r"config.json is not valid JSON.*delete"):
        radiologynet.create_model("resnet18.radiologynet")
    monkeypatch.delenv("RADIOLOGYNET_WEIGHTS_DIR")
    record, _ = source_record
    radiologynet.create_model("resnet18.radiologynet")  # fills the cache
    cached = hub.cache_dir() / "weights" / record.full_name / "config.json"
    cached.write_text("")
    with pytest.raises(CheckpointFormatError, match=str(cached)):
        radiologynet.create_model("resnet18.radiologynet")


def test_truncated_bundle_file_without_sidecar_is_a_clear_error(tmp_path, monkeypatch):
    from radiologynet.errors import CheckpointFormatError

    folder = bundle_folder(tmp_path, monkeypatch)
    (folder / "model.safetensors.sha256").unlink()
    (folder / "config.json").write_text(json.dumps({"architecture": "resnet18"}))
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match="model.safetensors.*truncated or damaged"):
        radiologynet.create_model("resnet18.radiologynet")


def test_weights_of_another_architecture_are_named(tmp_path, monkeypatch):
    import timm

    from radiologynet.errors import CheckpointFormatError

    with torch.device("meta"):
        shapes = timm.create_model("resnet34", num_classes=36).state_dict()
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()}
    write_folder(tmp_path / "bundle" / "resnet18.radiologynet@v1", state)
    monkeypatch.setenv("RADIOLOGYNET_WEIGHTS_DIR", str(tmp_path / "bundle"))
    with pytest.raises(
        CheckpointFormatError, match=r"for a different architecture \(resnet34\), not resnet18"
    ):
        radiologynet.create_model("resnet18.radiologynet")


def test_config_model_args_may_not_change_the_architecture(tmp_path, monkeypatch):
    from radiologynet.errors import CheckpointFormatError

    folder = bundle_folder(tmp_path, monkeypatch)
    config = json.loads((folder / "config.json").read_text())
    config["model_args"] = {"drop_path_rate": 0.5}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFormatError, match="trust_config_model_args=True"):
        radiologynet.create_model("resnet18.radiologynet")
    model = radiologynet.create_model("resnet18.radiologynet", trust_config_model_args=True)
    assert model.layer4[-1].drop_path is not None


def test_missing_path_says_no_such_file_not_the_tag_list(tmp_path, monkeypatch):
    from radiologynet.protocol.runner import preprocessing_for

    monkeypatch.chdir(tmp_path)
    for where in ("/nope/w", "nope.pth", "./nope"):
        with pytest.raises(WeightsNotFoundError, match="No such file or folder") as err:
            radiologynet.create_model("resnet18", weights=where)
        assert "Valid tags" not in str(err.value)
        with pytest.raises(WeightsNotFoundError, match="No such file or folder"):
            preprocessing_for("resnet18", where)
        with pytest.raises(WeightsNotFoundError, match="No such file or folder"):
            radiologynet.create_unet("resnet18", weights=where)


# --------------------------------------------------------------------------- network


@pytest.fixture
def stalling_server():
    """An http server on 127.0.0.1 that sends headers, some bytes, then stalls."""
    import http.server
    import threading

    release = threading.Event()

    class Stall(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            release.wait(10)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ResNet18.tar.gz"
    release.set()
    server.shutdown()
    server.server_close()


def test_stalling_server_gives_one_line_naming_the_url(tmp_path, monkeypatch, stalling_server):
    monkeypatch.setattr(hub, "DOWNLOAD_TIMEOUT_S", 0.5)
    with pytest.raises(WeightsNotFoundError) as err:
        hub.download(stalling_server, tmp_path / "a.tar.gz", what="resnet18.radiologynet")
    message = str(err.value)
    assert stalling_server in message and "stalled" in message
    assert "RADIOLOGYNET_WEIGHTS_DIR" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == [], "no partial file left"


# --------------------------------------------------------------------------- housekeeping


def test_stale_temporaries_of_a_killed_download_are_removed(source_record):
    record, _ = source_record
    weights_dir = hub.cache_dir() / "weights"
    stale_dir = weights_dir / ".tmp-abc123"
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "ResNet18.tar.gz.part").write_bytes(b"x")
    downloads = hub.cache_dir() / "downloads" / record.full_name
    downloads.mkdir(parents=True)
    stale_file = downloads / ".ResNet18.tar.gz.k3j2.tmp"
    stale_file.write_bytes(b"x")
    fresh_file = downloads / ".ResNet18.tar.gz.fresh.tmp"
    fresh_file.write_bytes(b"x")
    old = time.time() - 2 * hub.STALE_TEMP_S
    for path in (
        stale_dir / "sub" / "ResNet18.tar.gz.part",
        stale_dir / "sub",
        stale_dir,
        stale_file,
    ):
        os.utime(path, (old, old))
    radiologynet.create_model("resnet18.radiologynet")
    assert not stale_dir.exists() and not stale_file.exists()
    assert fresh_file.exists(), "a live writer's temporary is left alone"


@pytest.mark.slow  # three fresh interpreters racing for one bundle
def test_concurrent_downloads_into_one_bundle_all_succeed_and_download_once(
    tmp_path, source_record
):
    """Three `radiologynet download` runs into one bundle (before: 2 of 3 failed), one
    download between them. Light processes: no model is built."""
    record, _ = source_record
    to = tmp_path / "bundle"
    counter = tmp_path / "downloads.log"
    script = textwrap.dedent(f"""
        import dataclasses
        from pathlib import Path
        from radiologynet.models import _hub as hub
        from radiologynet.models import _weights as weights
        real = hub.download
        def counting(*a, **k):
            with open({str(counter)!r}, "a") as fh:
                fh.write("x\\n")
            return real(*a, **k)
        hub.download = counting
        record = dataclasses.replace(weights.get_weights("resnet18.radiologynet"),
                                     source_url={record.source_url!r})
        folder = hub.bundle_weight(record, Path({str(to)!r}))
        print(hub.sha256_file(folder / "model.safetensors"))
    """)
    env = {**os.environ, "RADIOLOGYNET_CACHE": str(hub.cache_dir()), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert len({out for out, _ in outputs}) == 1, "every run saw the same weights"
    assert counter.read_text().count("x") == 1, "downloaded once"
    folder = to / record.full_name
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "model.safetensors",
        "model.safetensors.sha256",
        "README.md",
    }
    assert hub.read_sha256_sidecar(folder / "model.safetensors.sha256") == hub.sha256_file(
        folder / "model.safetensors"
    )
    assert not list(to.glob(".tmp-*")) and not list(folder.glob(".*.tmp"))


def test_cli_weights_that_do_not_exist_say_no_such_file(tmp_path, capsys):
    """Before: `finetune --weights /nope/w` answered with the list of valid tags."""
    from PIL import Image

    from radiologynet.cli import main

    for split in ("train", "val"):
        for label in ("a", "b"):
            (tmp_path / "data" / split / label).mkdir(parents=True)
            Image.new("L", (8, 8), 40).save(tmp_path / "data" / split / label / "0.png")
    code = main(
        [
            "finetune",
            "--task",
            "folder",
            "--data",
            str(tmp_path / "data"),
            "--model",
            "resnet18",
            "--weights",
            "/nope/w",
            "--out",
            str(tmp_path / "o"),
            "--max-epochs",
            "1",
            "--input-size",
            "32",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "No such file or folder: /nope/w" in err and "Valid tags" not in err
    assert err.count("\n") == 1


def test_a_weights_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    """Loading the same folder twice read every byte twice (create_model at 1.29x timm);
    the hash is now kept per (inode, size, mtime, ctime), and any change to the file is
    still caught."""
    from radiologynet.models import _folder

    file = tmp_path / "model.safetensors"
    file.write_bytes(b"a" * 1000)
    first = _folder.sha256_file(file)
    monkeypatch.setattr(_folder.hashlib, "sha256", lambda: pytest.fail("hashed again"))
    assert _folder.sha256_file(file) == first
    monkeypatch.undo()
    with file.open("r+b") as fh:  # same size, content changed in place
        fh.write(b"b")
    changed = _folder.sha256_file(file)
    assert changed != first and changed == hashlib.sha256(b"b" + b"a" * 999).hexdigest()
    with pytest.raises(ChecksumError):
        _folder.verify_sha256(file, first, "w", remove=False)
