"""Publishing a weights folder to the Hugging Face Hub, the way timm's own tools do.

Before anything is uploaded the folder must build with plain timm
(``timm.create_model("local-dir:<folder>", pretrained=True)``), so that what lands on the
Hub loads for everyone, with or without radiologynet. Only ``config.json``,
``model.safetensors`` and ``README.md`` are uploaded unless more files are named.

timm's ``push_to_hf_hub`` is not used: it re-serialises a model object and writes its own
``config.json`` and model card, which would drop the folder's RadiologyNET record (licence,
preprocessing, paper results). The folder's files are uploaded as they are, in one commit
(``HfApi.upload_folder`` restricted to the chosen files).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path, PurePosixPath

from radiologynet.errors import CheckpointFormatError, InvalidArgumentError, RadiologyNetError
from radiologynet.models._folder import read_weights_folder, sha256_file

#: What a published weights folder holds, unless more files are named.
DEFAULT_FILES = ("config.json", "model.safetensors", "README.md")


class PublishError(RadiologyNetError):
    """The Hub could not be reached or refused the upload."""


@dataclass(frozen=True)
class Published:
    """What :func:`publish_weights_folder` uploaded and where.

    Attributes:
        repo_id: the Hub repository.
        files: the uploaded paths, relative to the folder.
        revision: the commit's sha to pin in a weight record (``hub_revision``).
        url: the commit's (or the pull request's) URL.
        sha256: the sha256 of ``model.safetensors`` (the record's ``sha256``).
    """

    repo_id: str
    files: tuple[str, ...]
    revision: str | None
    url: str | None
    sha256: str


def upload_files(folder: str | os.PathLike[str], include: Iterable[str] = ()) -> list[str]:
    """The files of ``folder`` to upload: :data:`DEFAULT_FILES` that exist, then
    ``include`` (paths relative to the folder).

    Raises:
        InvalidArgumentError: a named file is missing or lies outside the folder.
    """
    folder = Path(folder)
    names = [name for name in DEFAULT_FILES if (folder / name).is_file()]
    for name in include:
        relative = PurePosixPath(Path(name).as_posix())
        if relative.is_absolute() or ".." in relative.parts:
            raise InvalidArgumentError(
                f"--include {name!r}: name a file inside {folder}, relative to it."
            )
        if not (folder / relative).is_file():
            raise InvalidArgumentError(f"--include {name!r}: {folder / relative} is not a file.")
        if str(relative) not in names:
            names.append(str(relative))
    return names


def check_loads_with_timm(folder: str | os.PathLike[str]) -> None:
    """Build the folder's model with plain timm from its ``config.json`` and load its
    ``model.safetensors``, as anyone downloading it from the Hub would.

    Raises:
        CheckpointFormatError: timm cannot build or load it; the message says why.
    """
    import timm

    folder = Path(folder).resolve()
    try:
        timm.create_model(f"local-dir:{folder}", pretrained=True)
    except Exception as err:  # noqa: BLE001 - any failure means others cannot load it
        reason = " ".join(str(err).split()) or type(err).__name__
        raise CheckpointFormatError(
            f"{folder} does not load with plain timm (timm.create_model('local-dir:{folder}', "
            f"pretrained=True) failed: {reason[:300]}). Fix config.json / model.safetensors "
            "(e.g. rewrite the folder with `radiologynet convert`) before publishing."
        ) from err


def _network_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError

    # the Hub client's own HTTP error base (requests', httpx's, ...), whichever it uses:
    # connection failures derive from it but not always from OSError
    client = tuple(
        c for c in HfHubHTTPError.__mro__ if c.__name__ in ("HTTPError", "RequestException")
    )
    return (HfHubHTTPError, OSError, *client)


def publish_weights_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    include: Iterable[str] = (),
    revision: str | None = None,
    private: bool = False,
    create_pr: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
) -> Published:
    """Upload a weights folder to the Hub model repository ``repo_id`` in one commit,
    creating the repository (and the ``revision`` branch) if needed.

    Args:
        include: more files to upload, relative to the folder.
        revision: the branch to commit to (default ``main``); with ``create_pr``, the
            branch the pull request targets.
        create_pr: open a pull request instead of committing to the branch.
        commit_message: default ``"Upload RadiologyNET weights folder"``.

    Returns:
        A :class:`Published`.

    Raises:
        WeightsNotFoundError / CheckpointFormatError: not a weights folder, or one that
            plain timm cannot load (nothing is uploaded).
        InvalidArgumentError: a malformed ``repo_id`` or a missing ``include`` file.
        PublishError: the Hub could not be reached or refused (one line, with the fix).
    """
    folder = Path(folder)
    read_weights_folder(folder)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise InvalidArgumentError(f"--repo-id {repo_id!r} must look like ORG/NAME.")
    files = upload_files(folder, include)
    check_loads_with_timm(folder)

    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True, token=token)
        if revision not in (None, "main"):
            api.create_branch(
                repo_id, branch=revision, repo_type="model", exist_ok=True, token=token
            )
        commit = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            revision=revision,
            allow_patterns=[glob_escape(name) for name in files],
            create_pr=create_pr,
            commit_message=commit_message or "Upload RadiologyNET weights folder",
            token=token,
        )
    except _network_errors() as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise PublishError(
            f"Publishing {folder} to {repo_id} failed: {reason}. Check the network, log in "
            "with `hf auth login` (or set HF_TOKEN) and check you may write to that repo."
        ) from err
    return Published(
        repo_id=repo_id,
        files=tuple(files),
        revision=getattr(commit, "oid", None),
        url=getattr(commit, "pr_url", None) or getattr(commit, "commit_url", None),
        sha256=sha256_file(folder / "model.safetensors"),
    )
