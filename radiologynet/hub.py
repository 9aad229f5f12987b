"""Finding a weight's file: explicit path, offline bundle, Hugging Face Hub, original source.

Resolution order for a :class:`~radiologynet.weights.WeightRecord`:

1. a bundle directory named by ``RADIOLOGYNET_WEIGHTS_DIR`` (machines with no internet),
   holding ``<arch>.<tag>@<version>/`` or ``<arch>.<tag>/`` weights folders;
2. the Hugging Face Hub at the record's pinned revision, through huggingface_hub's cache
   (``HF_HUB_OFFLINE`` respected; no network call when the pinned file is cached);
3. the unconverted source (the authors' archive, or torchvision's ImageNet checkpoint):
   downloaded with a progress bar to a temporary file, converted, stored as safetensors in
   the cache with its sha256 recorded beside it, and checked on every later load.

Cache writes are atomic and guarded by a file lock, so concurrent processes download once
and never read half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from tqdm.auto import tqdm

from radiologynet.errors import (
    ChecksumError,
    WeightsNotFoundError,
    WeightsNotReleasedError,
)
from radiologynet.registry import Architecture, get_architecture
from radiologynet.weights import WeightRecord

WEIGHTS_DIR_ENV = "RADIOLOGYNET_WEIGHTS_DIR"
CACHE_ENV = "RADIOLOGYNET_CACHE"
OFFLINE_ENV = "RADIOLOGYNET_OFFLINE"
SHA256_SUFFIX = ".sha256"
ORIGINAL_SUFFIXES = (".pth", ".pt", ".tar.gz", ".tgz", ".tar", ".bin", ".ckpt")
DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight file ready for timm, and what is known about it.

    Attributes:
        file: the ``model.safetensors`` in timm's key layout.
        arch: the architecture it belongs to.
        record: the zoo record, or ``None`` for a user's own folder or file.
        config: the folder's parsed ``config.json`` when there is one.
        origin: where it was found (``"path"``, ``"bundle"``, ``"hub"``, ``"cache"``,
            ``"source"``).
    """

    file: Path
    arch: Architecture
    record: WeightRecord | None
    config: dict | None
    origin: str


def cache_dir() -> Path:
    """The radiologynet cache: ``$RADIOLOGYNET_CACHE`` or ``~/.cache/radiologynet``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "radiologynet"


def is_offline() -> bool:
    """Whether network access is forbidden (``HF_HUB_OFFLINE`` or ``RADIOLOGYNET_OFFLINE``)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get(OFFLINE_ENV, ""))
    return any(f.strip().upper() in {"1", "ON", "YES", "TRUE"} for f in flags)


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(path: Path, expected: str, what: str, remove: bool = True) -> None:
    actual = sha256_of(path)
    if actual != expected:
        if remove:
            path.unlink(missing_ok=True)
        raise ChecksumError(
            f"{what}: {path} has sha256 {actual}, expected {expected}. "
            + ("The corrupt file was removed; run the command again to fetch it anew."
               if remove else "Replace the file with an intact copy.")
        )


def _folder_weights(folder: Path) -> tuple[Path, dict | None] | None:
    file = folder / "model.safetensors"
    if not file.is_file():
        return None
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else None
    return file, config


# --------------------------------------------------------------------------- zoo records


def resolve_record(record: WeightRecord) -> ResolvedWeights:
    """Find (downloading and converting if needed) the file of a zoo weight.

    Raises:
        WeightsNotReleasedError: the weight was never published by its authors.
        WeightsNotFoundError: no place had it; the message lists every place looked and
            the command that fixes it.
        ChecksumError: a file whose sha256 differs from the recorded one (it is removed).
    """
    arch = get_architecture(record.arch)
    if not record.released:
        raise WeightsNotReleasedError(
            f"{record.full_name} is described in the paper but its authors never released "
            "it. Two ways forward: pass a local file or folder you have "
            f"(create_model('{record.arch}', weights='/path/to/folder-or-file')), or "
            "pretrain your own with `radiologynet pretrain` (see the docs page "
            "'Pretraining on your own archive')."
        )
    looked: list[str] = []

    bundle = os.environ.get(WEIGHTS_DIR_ENV)
    if bundle:
        for folder in (Path(bundle) / record.full_name, Path(bundle) / record.name):
            found = _folder_weights(folder)
            looked.append(f"{folder}/model.safetensors ({WEIGHTS_DIR_ENV})")
            if found:
                if record.sha256:
                    _check_sha256(found[0], record.sha256, record.full_name, remove=False)
                return ResolvedWeights(found[0], arch, record, found[1], "bundle")
    else:
        looked.append(f"{WEIGHTS_DIR_ENV} (not set)")

    hub = _from_hub(record, looked)
    if hub is not None:
        return ResolvedWeights(hub, arch, record, None, "hub")

    cached = _cached_conversion(record)
    looked.append(f"{_record_cache(record)}/model.safetensors (cache)")
    if cached is not None:
        return ResolvedWeights(cached, arch, record, _read_config(cached.parent), "cache")

    if record.source_url and not is_offline():
        file = _download_and_convert(record)
        return ResolvedWeights(file, arch, record, _read_config(file.parent), "source")
    if record.source_url:
        looked.append(f"{record.source_url} (skipped: offline)")

    raise WeightsNotFoundError(
        f"Weights {record.full_name} not found. Looked in: " + "; ".join(looked) + ". "
        f"To fix: on a connected machine run `radiologynet download {record.name} --to DIR`, "
        f"copy DIR here and set {WEIGHTS_DIR_ENV}=DIR (or pass weights='/path/to/folder')."
    )


def _read_config(folder: Path) -> dict | None:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _from_hub(record: WeightRecord, looked: list[str]) -> Path | None:
    """The record's file from the Hub cache or the Hub; ``None`` when not available."""
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if record.published:
        repo, revision = record.hub_repo_id, record.hub_revision
    elif record.timm_hub_id:
        repo, revision = record.timm_hub_id, None
    else:
        looked.append(f"hf-hub:{record.hub_repo_id} (not published yet)")
        return None
    looked.append(f"hf-hub:{repo}@{revision or 'main'}/{record.filename}")
    cached = huggingface_hub.try_to_load_from_cache(repo, record.filename, revision=revision)
    if isinstance(cached, str):
        path = Path(cached)
    elif is_offline():
        return None
    else:
        try:
            path = Path(huggingface_hub.hf_hub_download(repo, record.filename,
                                                        revision=revision))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
            looked[-1] += f" (failed: {type(err).__name__})"
            return None
    if record.sha256 and record.published:
        _check_sha256(path.resolve(), record.sha256, record.full_name)
    return path


def _record_cache(record: WeightRecord) -> Path:
    return cache_dir() / "weights" / record.full_name


def _cached_conversion(record: WeightRecord) -> Path | None:
    """The converted file in the cache, checked against its recorded sha256."""
    folder = _record_cache(record)
    file = folder / "model.safetensors"
    if not file.is_file():
        return None
    sha_file = folder / ("model.safetensors" + SHA256_SUFFIX)
    expected = record.sha256 or (sha_file.read_text().split()[0] if sha_file.is_file() else None)
    if expected is None:
        raise ChecksumError(
            f"{record.full_name}: {file} has no recorded sha256 ({sha_file} is missing). "
            f"Delete {folder} and run the command again."
        )
    try:
        _check_sha256(file, expected, record.full_name)
    except ChecksumError:
        sha_file.unlink(missing_ok=True)
        raise
    return file


def _download_and_convert(record: WeightRecord) -> Path:
    from radiologynet.convert import convert_checkpoint

    folder = _record_cache(record)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        cached = _cached_conversion(record)  # another process may have finished it
        if cached is not None:
            return cached
        assert record.source_url is not None
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".tmp-") as tmp:
            name = record.source_url.rstrip("/").rsplit("/", 1)[-1]
            archive = Path(tmp) / name
            download(record.source_url, archive, what=record.full_name)
            converted = Path(tmp) / "converted"
            convert_checkpoint(archive, converted, record=record)
            archive.unlink()
            digest = sha256_of(converted / "model.safetensors")
            (converted / ("model.safetensors" + SHA256_SUFFIX)).write_text(
                f"{digest}  model.safetensors\n")
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(converted, folder)
    return folder / "model.safetensors"


def download(url: str, dest: Path, *, what: str, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, atomically (temp file + rename).

    Raises:
        WeightsNotFoundError: the server could not be reached or answered with an error.
        ChecksumError: ``sha256`` was given and the download does not match it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310
            except (urllib.error.URLError, OSError) as err:
                raise WeightsNotFoundError(
                    f"Could not download {what} from {url}: {err}. On a machine without "
                    f"internet, copy a bundle made by `radiologynet download` and set "
                    f"{WEIGHTS_DIR_ENV}."
                ) from err
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"Downloading {what}", leave=False) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        if total is not None and tmp.stat().st_size != total:
            raise WeightsNotFoundError(
                f"Download of {what} from {url} was cut short ({tmp.stat().st_size} of "
                f"{total} bytes). Run the command again."
            )
        if sha256 and digest.hexdigest() != sha256:
            raise ChecksumError(
                f"{what}: download from {url} has sha256 {digest.hexdigest()}, expected "
                f"{sha256}. The file was discarded."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------- local paths


def resolve_path(path: str | Path, arch: Architecture | None = None) -> ResolvedWeights:
    """Resolve a user's weights folder, safetensors file or original checkpoint.

    A folder holds ``model.safetensors`` (and normally ``config.json``); an original
    checkpoint (``.pth``, ``.tar.gz``, ...) is converted once into the cache, keyed by its
    sha256.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(
            f"Weights path {path} does not exist. Pass a weights folder (config.json + "
            "model.safetensors), a .safetensors file, or an original checkpoint (.pth, "
            ".tar.gz)."
        )
    if path.is_dir():
        found = _folder_weights(path)
        if found is None:
            raise WeightsNotFoundError(
                f"Weights folder {path} has no model.safetensors. Make one with "
                "`radiologynet convert CHECKPOINT --out DIR`."
            )
        file, config = found
        folder_arch = _arch_from_config(config, path)
        return ResolvedWeights(file, folder_arch or _need_arch(arch, path), None, config,
                               "path")
    if path.suffix == ".safetensors":
        config = _read_config(path.parent)
        folder_arch = _arch_from_config(config, path.parent)
        return ResolvedWeights(path, folder_arch or _need_arch(arch, path), None, config,
                               "path")
    if any(path.name.endswith(s) for s in ORIGINAL_SUFFIXES):
        return _convert_local(path)
    raise WeightsNotFoundError(
        f"Don't know how to load weights from {path}: expected a folder, a .safetensors "
        f"file or an original checkpoint ({', '.join(ORIGINAL_SUFFIXES)})."
    )


def _need_arch(arch: Architecture | None, path: Path) -> Architecture:
    if arch is None:
        raise WeightsNotFoundError(
            f"{path} has no config.json naming its architecture: pass the architecture "
            "name, e.g. create_model('resnet50', weights=...)."
        )
    return arch


def _arch_from_config(config: dict | None, where: Path) -> Architecture | None:
    if not config or "architecture" not in config:
        return None
    return get_architecture(str(config["architecture"]))


def _convert_local(path: Path) -> ResolvedWeights:
    from radiologynet.convert import (
        convert_checkpoint,
        detect_architecture,
        load_original_checkpoint,
    )

    digest = sha256_of(path)[:16]
    folder = cache_dir() / "converted" / f"{path.name}-{digest}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / "model.safetensors").is_file():
            state_dict, model_name = load_original_checkpoint(path)
            arch = detect_architecture(state_dict, model_name)
            with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".tmp-") as tmp:
                out = Path(tmp) / "converted"
                from radiologynet.weights import get_weights

                convert_checkpoint(path, out, record=get_weights(f"{arch.name}.radiologynet"))
                if folder.exists():
                    shutil.rmtree(folder)
                os.replace(out, folder)
    config = _read_config(folder)
    return ResolvedWeights(folder / "model.safetensors", _need_arch(
        _arch_from_config(config, folder), folder), None, config, "path")
