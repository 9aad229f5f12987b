"""Finding a weight's file: explicit path, offline bundle, Hugging Face Hub, original source.

Resolution order for a :class:`~radiologynet.models._weights.WeightRecord`:

1. a bundle directory named by ``RADIOLOGYNET_WEIGHTS_DIR`` (machines with no internet),
   holding ``<arch>.<tag>@<version>/`` or ``<arch>.<tag>/`` weights folders;
2. the Hugging Face Hub at the record's pinned revision, through huggingface_hub's cache
   (``HF_HUB_OFFLINE`` respected; no network call when the pinned file is cached);
3. the unconverted source (the authors' archive, or torchvision's ImageNet checkpoint):
   downloaded with a progress bar, checked against the record's ``source_sha256`` /
   ``source_size`` when known, converted, stored as safetensors in the cache with its
   sha256 recorded beside it, and checked on every later load.

A record's pinned ``sha256`` is checked on every one of these paths. Cache and bundle
writes go file by file through :mod:`radiologynet._atomic` under a file lock, so
concurrent processes download once and never read half a file; temporaries left by a
killed process are removed on the next run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from tqdm.auto import tqdm

from radiologynet._atomic import atomic_write, atomic_write_text
from radiologynet.errors import (
    CheckpointFormatError,
    ChecksumError,
    UnknownWeightsError,
    WeightsNotFoundError,
    WeightsNotReleasedError,
)
from radiologynet.models._folder import (
    CHUNK_SIZE,
    CONFIG_NAME,
    SHA256_SUFFIX,
    WEIGHTS_NAME,
    model_type,
    read_config,
    read_sha256_sidecar,
    read_weights_folder,
    sha256_file,
    verify_folder,
    verify_sha256,
)
from radiologynet.models._registry import Architecture, get_architecture
from radiologynet.models._weights import WeightRecord, resolve_weights_arg

WEIGHTS_DIR_ENV = "RADIOLOGYNET_WEIGHTS_DIR"
CACHE_ENV = "RADIOLOGYNET_CACHE"
OFFLINE_ENV = "RADIOLOGYNET_OFFLINE"
ORIGINAL_SUFFIXES = (".pth", ".pt", ".tar.gz", ".tgz", ".tar", ".bin", ".ckpt")
DOWNLOAD_TIMEOUT_S = 30.0
#: Temporaries (``.tmp-*`` folders, atomic-write ``.*.tmp`` files, ``*.part`` files,
#: extraction folders) untouched for this long belong to a killed process: removed.
STALE_TEMP_S = 3600.0
_TEMP_PATTERNS = (".tmp-*", ".*.tmp", "*.part", ".radiologynet-extract-*")


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


# --------------------------------------------------------------------------- integrity


# --------------------------------------------------------------------------- folders


def remove_stale_temporaries(folder: Path, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Delete temporaries a killed process left in ``folder`` (not recursively): those
    whose newest modification is older than ``older_than_s``. Returns what was removed."""
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed: list[Path] = []
    for pattern in _TEMP_PATTERNS:
        for path in folder.glob(pattern):
            try:
                if _newest_mtime(path) < cutoff:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # another process cleaned it first
                continue
    return removed


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir():
        for child in path.rglob("*"):
            newest = max(newest, child.lstat().st_mtime)
    return newest


# --------------------------------------------------------------------------- the argument


def resolve(
    arch: str | Architecture, weights: str | os.PathLike[str] | WeightRecord | None
) -> ResolvedWeights | None:
    """Resolve a ``weights=`` argument of ``arch`` to a file (``None`` for random init),
    as :func:`radiologynet.models._weights.resolve_weights_arg` reads it.

    Raises:
        UnknownWeightsError: a tag that does not exist, or a file or folder whose
            config.json names another architecture.
        WeightsNotFoundError / WeightsNotReleasedError / ChecksumError /
        CheckpointFormatError: see :func:`resolve_record` and :func:`resolve_path`.
    """
    spec = arch if isinstance(arch, Architecture) else get_architecture(arch)
    target = resolve_weights_arg(spec, weights)
    if target is None:
        return None
    if isinstance(target, WeightRecord):
        return resolve_record(target)
    resolved = resolve_path(target, spec)
    if resolved.arch.name != spec.name:
        raise UnknownWeightsError(
            f"Weights {target} are for {resolved.arch.name}, not {spec.name}: use "
            f"{resolved.arch.name!r} with these weights, or weights of {spec.name}."
        )
    return resolved


# --------------------------------------------------------------------------- zoo records


def resolve_record(record: WeightRecord) -> ResolvedWeights:
    """Find (downloading and converting if needed) the file of a zoo weight.

    Raises:
        WeightsNotReleasedError: the weight was never published by its authors.
        WeightsNotFoundError: no place had it; the message lists every place looked and
            the command that fixes it.
        ChecksumError: a file whose sha256 differs from the pinned or recorded one.
        CheckpointFormatError: a damaged config.json in a bundle or the cache.
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
            looked.append(f"{folder}/{WEIGHTS_NAME} ({WEIGHTS_DIR_ENV})")
            if (folder / WEIGHTS_NAME).is_file():
                config = read_config(folder)
                verify_folder(folder / WEIGHTS_NAME, config, record.full_name, record.sha256)
                return ResolvedWeights(folder / WEIGHTS_NAME, arch, record, config, "bundle")
    else:
        looked.append(f"{WEIGHTS_DIR_ENV} (not set)")

    hub = _from_hub(record, looked)
    if hub is not None:
        return ResolvedWeights(hub, arch, record, None, "hub")

    cached = _cached_conversion(record)
    looked.append(f"{_record_cache(record)}/{WEIGHTS_NAME} (cache)")
    if cached is not None:
        return ResolvedWeights(cached, arch, record, read_config(cached.parent), "cache")

    if record.source_url and not is_offline():
        file = _download_and_convert(record)
        return ResolvedWeights(file, arch, record, read_config(file.parent), "source")
    if record.source_url:
        looked.append(f"{record.source_url} (skipped: offline)")

    raise WeightsNotFoundError(
        f"Weights {record.full_name} not found. Looked in: " + "; ".join(looked) + ". "
        f"To fix: on a connected machine run `radiologynet download {record.name} --to DIR`, "
        f"copy DIR here and set {WEIGHTS_DIR_ENV}=DIR (or pass weights='/path/to/folder')."
    )


def _from_hub(record: WeightRecord, looked: list[str]) -> Path | None:
    """The record's file from the Hub cache or the Hub; ``None`` when not available."""
    if record.published:
        repo, revision = record.hub_repo_id, record.hub_revision
    elif record.timm_hub_id:
        repo, revision = record.timm_hub_id, None
    else:
        looked.append(f"hf-hub:{record.hub_repo_id} (not published yet)")
        return None
    looked.append(f"hf-hub:{repo}@{revision or 'main'}/{record.filename}")
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cached = huggingface_hub.try_to_load_from_cache(repo, record.filename, revision=revision)
    if isinstance(cached, str):
        path = Path(cached)
    elif is_offline():
        return None
    else:
        try:
            path = Path(huggingface_hub.hf_hub_download(repo, record.filename, revision=revision))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
            looked[-1] += f" (failed: {type(err).__name__})"
            return None
    if record.sha256:
        verify_sha256(path.resolve(), record.sha256, record.full_name, remove=True)
    return path


def _record_cache(record: WeightRecord) -> Path:
    return cache_dir() / "weights" / record.full_name


def _cached_conversion(record: WeightRecord) -> Path | None:
    """The converted file in the cache, checked against the record's pin and the sha256
    recorded beside it (written last, so a folder without it is unfinished: ``None``)."""
    folder = _record_cache(record)
    file = folder / WEIGHTS_NAME
    sidecar = folder / (WEIGHTS_NAME + SHA256_SUFFIX)
    if not (file.is_file() and sidecar.is_file()):
        return None
    try:
        expected = read_sha256_sidecar(sidecar)
        if record.sha256 and expected != record.sha256.lower():
            raise ChecksumError(
                f"{record.full_name}: the cached {file} has sha256 {expected}, but the "
                f"record pins {record.sha256}. The cached copy was removed; run the command "
                "again to fetch it anew."
            )
        verify_sha256(file, expected, record.full_name, remove=True)
    except ChecksumError:
        sidecar.unlink(missing_ok=True)
        file.unlink(missing_ok=True)
        raise
    return file


def _download_and_convert(record: WeightRecord) -> Path:
    folder = _record_cache(record)
    folder.parent.mkdir(parents=True, exist_ok=True)
    downloads = cache_dir() / "downloads" / record.full_name
    with FileLock(str(folder) + ".lock"):
        for place in (folder.parent, folder, downloads):
            remove_stale_temporaries(place)
        cached = _cached_conversion(record)  # another process may have finished it
        if cached is not None:
            return cached
        from radiologynet.models._convert import convert_checkpoint  # torch: only when converting

        if record.source_url is None:
            raise WeightsNotFoundError(f"{record.full_name} has no source URL to fetch.")
        name = record.source_url.rstrip("/").rsplit("/", 1)[-1]
        archive = downloads / name
        try:
            download(
                record.source_url,
                archive,
                what=record.full_name,
                sha256=record.source_sha256,
                size=record.source_size,
                sha256_prefix=record.source_sha256_prefix,
            )
            sidecar = folder / (WEIGHTS_NAME + SHA256_SUFFIX)
            sidecar.unlink(missing_ok=True)  # the folder is unfinished until it is back
            convert_checkpoint(archive, folder, record=record)
        finally:
            archive.unlink(missing_ok=True)
        file = folder / WEIGHTS_NAME
        digest = sha256_file(file)
        if record.sha256 and digest != record.sha256.lower():
            file.unlink(missing_ok=True)
            raise ChecksumError(
                f"{record.full_name}: the weights converted from {record.source_url} have "
                f"sha256 {digest}, but the record pins {record.sha256}. Nothing was cached; "
                "the source has changed or the pin is wrong: report it."
            )
        atomic_write_text(sidecar, f"{digest}  {WEIGHTS_NAME}\n")
    return file


def download(
    url: str,
    dest: Path,
    *,
    what: str,
    sha256: str | None = None,
    size: int | None = None,
    sha256_prefix: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, atomically.

    Raises:
        WeightsNotFoundError: the server could not be reached, answered with an error,
            stalled for :data:`DOWNLOAD_TIMEOUT_S`, or sent less than it announced.
        ChecksumError: ``sha256`` / ``size`` / ``sha256_prefix`` (torchvision's hash in
            its file names) were given and the download differs.
    """
    offline_hint = (
        f"Run the command again later, or on a machine without internet copy a "
        f"bundle made by `radiologynet download` and set {WEIGHTS_DIR_ENV}."
    )

    def fetch(tmp: str) -> None:
        try:
            response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310
        except (urllib.error.URLError, OSError) as err:
            raise WeightsNotFoundError(
                f"Could not download {what} from {url}: {err}. {offline_hint}"
            ) from err
        digest = hashlib.sha256()
        written = 0
        with response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"Downloading {what}",
                leave=False,
            ) as bar:
                try:
                    while chunk := response.read(CHUNK_SIZE):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                except TimeoutError as err:
                    raise WeightsNotFoundError(
                        f"Download of {what} from {url} stalled: no data for "
                        f"{DOWNLOAD_TIMEOUT_S:g} s after {written} bytes. {offline_hint}"
                    ) from err
                except OSError as err:
                    raise WeightsNotFoundError(
                        f"Download of {what} from {url} failed after {written} bytes: "
                        f"{err}. {offline_hint}"
                    ) from err
        if total is not None and written != total:
            raise WeightsNotFoundError(
                f"Download of {what} from {url} was cut short ({written} of {total} "
                f"bytes). {offline_hint}"
            )
        if size is not None and written != size:
            raise ChecksumError(
                f"{what}: download from {url} is {written} bytes, the record expects {size}."
                " The file was discarded; the source may have changed: report it."
            )
        if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
            raise ChecksumError(
                f"{what}: download from {url} has sha256 {digest.hexdigest()}, which does not "
                f"start with {sha256_prefix} as its name says. The file was discarded; run "
                "the command again."
            )
        if sha256 and digest.hexdigest() != sha256.lower():
            raise ChecksumError(
                f"{what}: download from {url} has sha256 {digest.hexdigest()}, expected "
                f"{sha256}. The file was discarded; the source may have changed: report it."
            )

    return atomic_write(dest, fetch)


# --------------------------------------------------------------------------- bundles


def bundle_weight(record: WeightRecord, to: Path) -> Path:
    """Resolve ``record`` and place it as the weights folder ``to/<arch.tag@version>/``.

    Concurrent calls for the same weight and bundle wait for each other (a file lock);
    every file is written atomically, ``config.json`` last, so a reader never sees a half
    folder; the cache's ``.sha256`` sidecar is copied along (a Hub file's hash is in
    config.json). Returns the folder.
    """
    resolved = resolve_record(record)
    target = Path(to) / record.full_name
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{record.full_name}.lock")):
        remove_stale_temporaries(target)
        digest = sha256_file(resolved.file)
        if (
            (target / CONFIG_NAME).is_file()
            and (target / WEIGHTS_NAME).is_file()
            and sha256_file(target / WEIGHTS_NAME) == digest
        ):
            return target  # already bundled (by a concurrent or earlier run)
        source_dir = resolved.file.parent
        if resolved.config is not None:
            names = [WEIGHTS_NAME, "README.md", WEIGHTS_NAME + SHA256_SUFFIX, CONFIG_NAME]
            for name in names:  # config.json last: it marks the folder complete
                if (source_dir / name).is_file():
                    atomic_write(
                        target / name, lambda tmp, n=name: shutil.copyfile(source_dir / n, tmp)
                    )
        else:  # a Hub file: write the folder around it
            from safetensors.torch import load_file

            from radiologynet.models._convert import write_weights_folder

            write_weights_folder(
                load_file(str(resolved.file)), target, arch=resolved.arch, record=record
            )
    return target


# --------------------------------------------------------------------------- local paths


def resolve_path(path: str | Path, arch: Architecture | None = None) -> ResolvedWeights:
    """Resolve a user's weights folder, safetensors file or original checkpoint.

    A folder holds ``model.safetensors`` (and normally ``config.json``); an original
    checkpoint (``.pth``, ``.tar.gz``, ...) is converted once into the cache, keyed by its
    sha256. A ``.sha256`` sidecar, or the sha256 config.json recorded, is checked.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(
            f"No such file or folder: {path}. Pass a weights folder (config.json + "
            "model.safetensors), a .safetensors file, or an original checkpoint (.pth, "
            ".tar.gz)."
        )
    if path.is_dir() and not (path / WEIGHTS_NAME).is_file():
        path = run_weights_folder(path)
    if path.is_dir() or path.suffix == ".safetensors":
        folder = path if path.is_dir() else path.parent
        if path.is_dir():
            config, file = read_weights_folder(path, require_config=False)
        else:
            config, file = read_config(folder), path
        verify_folder(file, config, str(file), None)
        _refuse_non_timm(config, folder)
        folder_arch = _arch_from_config(config)
        return ResolvedWeights(file, folder_arch or _need_arch(arch, path), None, config, "path")
    if any(path.name.endswith(s) for s in ORIGINAL_SUFFIXES):
        return _convert_local(path)
    raise WeightsNotFoundError(
        f"Don't know how to load weights from {path}: expected a folder, a .safetensors "
        f"file or an original checkpoint ({', '.join(ORIGINAL_SUFFIXES)})."
    )


#: The weights folder inside a run folder (``radiologynet.train.runs.MODEL_DIR``).
RUN_MODEL_DIR = "model"
#: The file that marks a run folder (``radiologynet.train.runs.RESULT_NAME``).
RUN_RESULT_NAME = "result.json"


def run_weights_folder(path: Path) -> Path:
    """A run folder's trained weights (``RUN/model``); any other folder as it is. A run
    folder passed where weights go (``create_model``, ``predict``, ``embed``) loads them.

    Raises:
        WeightsNotFoundError: a run folder that holds no trained weights yet.
    """
    inner = path / RUN_MODEL_DIR
    if (inner / CONFIG_NAME).is_file():
        return inner
    if (path / RUN_RESULT_NAME).is_file():
        raise WeightsNotFoundError(
            f"{path} is a run folder without trained weights ({RUN_MODEL_DIR}/{CONFIG_NAME} "
            "is missing): the run has not finished an epoch. Rerun it, or pass another run."
        )
    return path


def _need_arch(arch: Architecture | None, path: Path) -> Architecture:
    if arch is None:
        raise WeightsNotFoundError(
            f"{path} has no config.json naming its architecture: pass the architecture "
            "name, e.g. create_model('resnet50', weights=...)."
        )
    return arch


#: Where a weights folder that is not a timm model loads, by ``model_type``.
_LOADED_BY = {
    "vanilla_unet": "radiologynet.create_unet(None, weights=PATH)",
    "task": "radiologynet.models.load_unet(PATH) for a U-Net, or the code that built it",
}


def _refuse_non_timm(config: dict | None, folder: Path) -> None:
    kind = model_type(config, folder) if config else "timm"
    if kind != "timm":
        what = config.get("task_model") or kind  # type: ignore[union-attr]
        raise CheckpointFormatError(
            f"{folder} holds a whole {what} (model_type {kind!r}), not the weights of a "
            f"zoo backbone; load it with {_LOADED_BY[kind]}."
        )


def _arch_from_config(config: dict | None) -> Architecture | None:
    if not config or "architecture" not in config:
        return None
    return get_architecture(str(config["architecture"]))


def _convert_local(path: Path) -> ResolvedWeights:
    """Convert a local original checkpoint once into the cache (``converted/``), under
    the record its contents show (:func:`radiologynet.models._convert.record_for`)."""
    from radiologynet.models._convert import convert_checkpoint

    digest = sha256_file(path)[:16]
    root = cache_dir() / "converted"
    folder = root / f"{path.name}-{digest}"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        for place in (root, folder):
            remove_stale_temporaries(place)
        if read_config(folder) is None:  # config.json is written last
            convert_checkpoint(path, folder)
    config, file = read_weights_folder(folder)
    return ResolvedWeights(
        file, _need_arch(_arch_from_config(config), folder), None, config, "path"
    )


__all__ = [
    "ResolvedWeights",
    "bundle_weight",
    "cache_dir",
    "download",
    "is_offline",
    "remove_stale_temporaries",
    "resolve",
    "resolve_path",
    "resolve_record",
    "run_weights_folder",
]
