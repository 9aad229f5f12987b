"""``radiologynet publish``: checked with plain timm first, only the model files, PRs and
commit messages, network failures as one line. huggingface_hub's HfApi is replaced: no
network."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub.errors import HfHubHTTPError

import radiologynet
from radiologynet.cli import main
from radiologynet.models._folder import write_weights_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    model = radiologynet.create_model("resnet18", weights=None, num_classes=2)
    out = write_weights_folder(
        model.state_dict(), tmp_path_factory.mktemp("w") / "weights", arch="resnet18"
    )
    (out / "training_log.csv").write_text("epoch,loss\n1,0.5\n")
    (out / ".lock").write_text("")
    return out


class FakeApi:
    """Records calls; ``fail`` (an exception) is raised by create_repo."""

    calls: list[tuple[str, dict]] = []
    fail: BaseException | None = None

    def create_repo(self, repo_id, **kwargs):
        if FakeApi.fail is not None:
            raise FakeApi.fail
        FakeApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def create_branch(self, repo_id, **kwargs):
        FakeApi.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        FakeApi.calls.append(("upload_folder", kwargs))
        url = (
            "https://huggingface.co/me/r/discussions/1"
            if kwargs.get("create_pr")
            else "https://huggingface.co/me/r/commit/abc123"
        )
        return SimpleNamespace(
            commit_url=url, oid="abc123", pr_url=url if kwargs.get("create_pr") else None
        )


@pytest.fixture
def api(monkeypatch):
    FakeApi.calls, FakeApi.fail = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


def _uploaded(folder: Path, patterns: list[str]) -> list[str]:
    from huggingface_hub.utils import filter_repo_objects

    every = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(filter_repo_objects(every, allow_patterns=patterns))


def test_uploads_only_the_model_files_with_pr_and_message(folder, api, capsys):
    assert (
        main(
            [
                "publish",
                str(folder),
                "--repo-id",
                "me/r",
                "--create-pr",
                "--commit-message",
                "RadiologyNET resnet18 v2",
            ]
        )
        == 0
    )
    upload = dict(api.calls)["upload_folder"]
    assert upload["create_pr"] is True
    assert upload["commit_message"] == "RadiologyNET resnet18 v2"
    assert upload["revision"] is None and "create_branch" not in dict(api.calls)
    assert _uploaded(folder, upload["allow_patterns"]) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    out = capsys.readouterr().out
    assert "discussions/1" in out and "hub_revision='abc123'" in out


def test_include_adds_named_files_and_refuses_outside_ones(folder, api, capsys):
    assert main(["publish", str(folder), "--repo-id", "me/r", "--include", "training_log.csv"]) == 0
    upload = dict(api.calls)["upload_folder"]
    assert "training_log.csv" in _uploaded(folder, upload["allow_patterns"])
    assert upload["create_pr"] is False
    assert upload["commit_message"] == "Upload RadiologyNET weights folder"
    api.calls.clear()
    assert main(["publish", str(folder), "--repo-id", "me/r", "--include", "../x"]) == 1
    assert "--include '../x'" in capsys.readouterr().err and api.calls == []


def test_refuses_a_folder_plain_timm_cannot_build(folder, tmp_path, api, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("model.safetensors", "README.md"):
        (broken / name).write_bytes((folder / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["num_classes"] = 5  # the head in model.safetensors has 2 rows
    (broken / "config.json").write_text(json.dumps(config))
    assert main(["publish", str(broken), "--repo-id", "me/r"]) == 1
    err = capsys.readouterr().err
    assert "does not load with plain timm" in err and len(err.strip().splitlines()) == 1
    assert api.calls == []  # nothing uploaded, not even a repo created
    assert main(["publish", str(broken), "--repo-id", "me/r", "--dry-run"]) == 1


def _client_http_error(message: str) -> BaseException:
    base = next(
        c for c in HfHubHTTPError.__mro__ if c.__name__ in ("HTTPError", "RequestException")
    )
    return base(message)


@pytest.mark.parametrize(
    "failure",
    [ConnectionError("Connection refused"), _client_http_error("Name or service not known")],
)
def test_network_errors_are_one_line(folder, api, capsys, failure):
    api.fail = failure
    assert main(["publish", str(folder), "--repo-id", "me/r"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(failure) in err and "hf auth login" in err
