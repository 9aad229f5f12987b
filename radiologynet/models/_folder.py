"""The weights-folder format: ``model.safetensors``, ``config.json`` (timm's keys, the
model type, and this library's metadata under ``radiologynet``) and ``README.md``; writing
it, reading it back and verifying its file.

``config.json`` is written last: a folder without it is incomplete. Its ``model_type``
says what the tensors are: ``"timm"`` (a zoo architecture, loadable by plain timm),
``"vanilla_unet"`` (the paper's vanilla U-Net) or ``"task"`` (a whole task model, such as
an encoder U-Net or the bone-age regressor, loaded by what wrote it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radiologynet._atomic import atomic_write, atomic_write_text
from radiologynet.errors import CheckpointFormatError, ChecksumError, WeightsNotFoundError
from radiologynet.models._card import render_model_card
from radiologynet.models._preprocessing import Preprocessing
from radiologynet.models._registry import ARCHITECTURES, Architecture, get_architecture
from radiologynet.models._weights import WeightRecord, pretrained_cfg_keys, timm_pretrained_cfg
from radiologynet.paper import PAPER, PAPER_DOI

if TYPE_CHECKING:
    from torch import Tensor


SHA256_SUFFIX = ".sha256"


_SHA256 = re.compile(r"[0-9a-f]{64}")
#: What a weights folder can hold (``config.json``'s ``model_type``).
MODEL_TYPES = ("timm", "vanilla_unet", "task")


CONFIG_NAME = "config.json"


WEIGHTS_NAME = "model.safetensors"


CHUNK_SIZE = 1 << 20


#: sha256 of the files this process has hashed, by :func:`_file_identity`.
_HASHED: dict[tuple[int, ...], str] = {}


def _file_identity(stat: os.stat_result) -> tuple[int, ...]:
    """Device, inode, size, modification and status-change times (ns): any write to the
    file changes the status-change time, which no caller can set back."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file, read in chunks; a file this process already hashed and
    that has not changed since (same inode, size, modification and status-change time)
    is not read again, so loading the same weights twice hashes them once."""
    with open(path, "rb") as fh:
        identity = _file_identity(os.fstat(fh.fileno()))
        known = _HASHED.get(identity)
        if known is not None:
            return known
        digest = hashlib.sha256()
        while chunk := fh.read(CHUNK_SIZE):
            digest.update(chunk)
        if _file_identity(os.fstat(fh.fileno())) != identity:  # written while read
            return digest.hexdigest()
    _HASHED[identity] = digest.hexdigest()
    return _HASHED[identity]


def read_sha256_sidecar(path: Path) -> str:
    """The hash recorded in a ``<file>.sha256`` sidecar (``sha256sum`` format).

    Raises:
        ChecksumError: the sidecar is empty or holds no 64-digit hex hash.
    """
    words = path.read_text(encoding="utf-8", errors="replace").split()
    if not words or not _SHA256.fullmatch(words[0].lower()):
        raise ChecksumError(
            f"{path} holds no sha256 (it is empty or not `sha256sum` output). Delete it "
            "and the weights folder beside it, then fetch the weights again (or write it "
            f"with `sha256sum {path.name.removesuffix(SHA256_SUFFIX)} > {path.name}`)."
        )
    return words[0].lower()


def verify_sha256(path: Path, expected: str, what: str, *, remove: bool) -> None:
    """Raise :class:`ChecksumError` unless ``path`` hashes to ``expected``; ``remove``
    deletes the bad file first (cache entries, which are fetched anew)."""
    actual = sha256_file(path)
    if actual != expected.lower():
        if remove:
            path.unlink(missing_ok=True)
        raise ChecksumError(
            f"{what}: {path} has sha256 {actual}, expected {expected}. "
            + (
                "The corrupt file was removed; run the command again to fetch it anew."
                if remove
                else "Replace the file with an intact copy."
            )
        )


def verify_folder(file: Path, config: dict | None, what: str, pin: str | None) -> None:
    """Check a weights file against the record's pin, its ``.sha256`` sidecar or the
    sha256 its ``config.json`` recorded, whichever are present."""
    if pin:
        verify_sha256(file, pin, what, remove=False)
    sidecar = file.with_name(file.name + SHA256_SUFFIX)
    if sidecar.is_file():
        verify_sha256(
            file, read_sha256_sidecar(sidecar), f"{what} (per {sidecar.name})", remove=False
        )
    elif not pin and config and isinstance(config.get("radiologynet"), dict):
        recorded = config["radiologynet"].get("sha256")
        if isinstance(recorded, str) and _SHA256.fullmatch(recorded):
            verify_sha256(file, recorded, f"{what} (per config.json)", remove=False)


def read_config(folder: Path) -> dict | None:
    """A weights folder's parsed ``config.json`` (``None`` when it has none).

    Raises:
        CheckpointFormatError: config.json is not a valid JSON object; the message names
            it and says how to get an intact copy.
    """
    path = folder / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointFormatError(
            f"{path} is not valid JSON ({err}). The folder is damaged: delete it and fetch "
            "or convert the weights again (`radiologynet download` / `radiologynet "
            "convert`)."
        ) from err
    if not isinstance(config, dict):
        raise CheckpointFormatError(
            f"{path} holds a {type(config).__name__}, not a JSON "
            "object. Delete the folder and fetch the weights again."
        )
    return config


def read_weights_folder(
    path: str | os.PathLike[str], *, require_config: bool = True
) -> tuple[dict[str, Any] | None, Path]:
    """Read a weights folder (``config.json`` + ``model.safetensors``); the reader
    every caller uses.

    Returns:
        The parsed ``config.json`` (``None`` when absent and not required) and the path
        of ``model.safetensors``.

    Raises:
        WeightsNotFoundError: the folder or one of its files is missing (a folder given
            where a file is, too).
        CheckpointFormatError: config.json is not valid JSON or names no architecture.
    """
    folder = Path(path).expanduser()
    hint = "Make one with `radiologynet convert CHECKPOINT --out DIR`."
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise WeightsNotFoundError(f"Weights folder {folder} {what}. {hint}")
    for name in (CONFIG_NAME, WEIGHTS_NAME) if require_config else (WEIGHTS_NAME,):
        if not (folder / name).is_file():
            raise WeightsNotFoundError(f"Weights folder {folder} has no {name}. {hint}")
    config = read_config(folder)
    if config is not None:
        kind = model_type(config, folder)
        if require_config and kind == "timm" and "architecture" not in config:
            raise CheckpointFormatError(f"{folder / CONFIG_NAME} names no 'architecture'. {hint}")
    return config, folder / WEIGHTS_NAME


def model_type(config: Mapping[str, Any], folder: Path | None = None) -> str:
    """What a weights folder's tensors are (its ``config.json``'s ``model_type``; a folder
    written by plain timm has none and is ``"timm"``).

    Raises:
        CheckpointFormatError: a ``model_type`` this library does not know.
    """
    kind = str(config.get("model_type", "timm"))
    if kind not in MODEL_TYPES:
        where = f"{folder / CONFIG_NAME}: " if folder is not None else ""
        raise CheckpointFormatError(
            f"{where}model_type {kind!r} is not one of {', '.join(MODEL_TYPES)}; the folder "
            "was written by a newer radiologynet or by hand."
        )
    return kind


def write_folder(
    out_dir: str | os.PathLike[str],
    tensors: Mapping[str, Tensor],
    config: Mapping[str, Any],
    card: Callable[[Mapping[str, Any]], str],
) -> Path:
    """Write a weights folder of any model type: ``model.safetensors``, then ``README.md``
    (``card(config)``, with the file's sha256 in ``config["radiologynet"]["sha256"]``),
    then ``config.json`` last, each atomically. Other files in the folder are left alone.

    Raises:
        CheckpointFormatError: ``out_dir`` exists and is not a folder, or ``config`` has
            no known ``model_type``.
    """
    from safetensors.torch import save_file

    model_type(config)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CheckpointFormatError(
            f"Output {out} exists and is not a folder; choose another --out or remove it."
        )
    out.mkdir(parents=True, exist_ok=True)
    contiguous = _contiguous_unshared(tensors)
    atomic_write(
        out / WEIGHTS_NAME, lambda tmp: save_file(contiguous, tmp, metadata={"format": "pt"})
    )
    meta = {**dict(config.get("radiologynet") or {}), "sha256": sha256_file(out / WEIGHTS_NAME)}
    config = {**config, "radiologynet": meta}
    atomic_write_text(out / CARD_NAME, card(config))
    atomic_write_text(out / CONFIG_NAME, json.dumps(config, indent=2) + "\n")  # last
    return out


def task_config(
    task_model: str,
    *,
    kind: str,
    pretrained_cfg: Mapping[str, Any],
    encoder: str | None = None,
    decoder: str | None = None,
    model: str | None = None,
    label_names: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``config.json`` of a whole task model (``model_type: "task"``): the class
    (``task_model``), the task kind, the zoo architecture of its encoder and the U-Net
    decoder when it has them, the run's model name, its class names (one per output) and its
    preprocessing. It names no timm
    ``architecture``: plain timm and :func:`radiologynet.create_model` refuse it with a
    message, :func:`radiologynet.models.load_unet` loads the U-Nets."""
    config: dict[str, Any] = {
        "model_type": "task",
        "task_model": task_model,
        "kind": kind,
        "encoder": encoder,
        "decoder": decoder,
        "model": model or encoder,
        "label_names": list(label_names) or None,
        "pretrained_cfg": dict(pretrained_cfg),
    }
    return {k: v for k, v in config.items() if v is not None}


def check_model_args(
    config: dict | None, arch: Architecture, where: Path, allow: bool = False
) -> dict[str, Any]:
    """The ``model_args`` of a folder's ``config.json``, refused when they differ from the
    registry's for ``arch`` (they would silently build another network) unless ``allow``.

    Raises:
        CheckpointFormatError: differing model_args without ``allow``.
    """
    args = dict((config or {}).get("model_args") or {})
    expected = arch.model_args_dict
    if args and args != expected and not allow:
        raise CheckpointFormatError(
            f"{where / CONFIG_NAME} sets model_args {args}, but {arch.name} is built with "
            f"{expected} (the registry's). Loading it would change the architecture: use "
            "weights written for the registry's network, or pass "
            "trust_config_model_args=True if you mean it."
        )
    return args if allow else expected


CARD_NAME = "README.md"


def grayscale_filters(weight: Tensor, channels: int) -> Tensor:
    """First-convolution filters ``(O, I, kH, kW)`` re-spread for ``channels`` inputs that
    all carry the same grayscale image: the filters are summed over their input channels
    (what they compute on replicated grayscale) and, for more than one channel, that sum
    divided by ``channels`` is repeated, so the result computes the same on grayscale input
    and loading it with ``in_chans=1`` (timm sums the filters) gives the sum back. timm's
    ``adapt_input_conv`` does not go from 1 to 3 channels."""
    summed = weight.sum(1, keepdim=True)
    return summed if channels == 1 else summed.repeat(1, channels, 1, 1) / channels


@lru_cache(maxsize=64)
def timm_layout(arch_name: str, num_classes: int) -> tuple[dict[str, tuple[int, ...]], int]:
    """Key -> shape of the timm model of ``arch_name`` (built on the meta device, so no
    memory or init cost), and its ``num_features``."""
    import timm
    import torch

    arch = ARCHITECTURES[arch_name]
    with torch.device("meta"):
        model = timm.create_model(arch.timm_name, num_classes=num_classes, **arch.model_args_dict)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, int(model.num_features)


def head_rows(state_dict: Mapping[str, Tensor], arch: Architecture) -> int:
    weight = state_dict.get(f"{arch.classifier}.weight")
    if weight is None:
        raise CheckpointFormatError(
            f"The converted {arch.name} state dict has no {arch.classifier}.weight (the "
            "classification head)."
        )
    return int(weight.shape[0])


def _metadata(arch: Architecture, record: WeightRecord | None, sha256: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "arch": arch.name,
        "original_name": arch.original_name,
        "paper": PAPER,
        "paper_doi": PAPER_DOI,
        "sha256": sha256,
    }
    if record is not None:
        meta.update(
            weights=record.full_name,
            tag=record.tag,
            version=record.version,
            description=record.description,
            license=record.license,
            license_note=record.license_note,
            modalities=list(record.modalities),
            training_data=record.training_data,
            source_url=record.source_url,
            hub_repo_id=record.hub_repo_id,
            preprocessing=asdict(record.preprocessing),
            results=[asdict(r) for r in record.results],
        )
    return meta


def build_config(
    arch: Architecture,
    num_classes: int,
    *,
    record: WeightRecord | None = None,
    label_names: Iterable[str] = (),
    sha256: str = "",
    extra_config: Mapping[str, Any] | None = None,
    task_kind: str | None = None,
) -> dict[str, Any]:
    """The ``config.json`` of a weights folder: timm's keys (``label_names`` at the top
    level, where timm reads it into ``pretrained_cfg``), plus this library's metadata under
    the top-level ``radiologynet`` key (timm ignores it): the task kind (``task_kind``:
    default ``"binary"`` for one output, else ``"multiclass"``) and the preprocessing."""
    _, num_features = timm_layout(arch.name, num_classes)
    labels = list(label_names)
    if not labels and record is not None and record.num_classes == num_classes:
        labels = list(record.label_names)
    config: dict[str, Any] = {
        "model_type": "timm",
        "architecture": arch.timm_name,
        "num_classes": num_classes,
        "num_features": num_features,
        "global_pool": "avg",
        "model_args": arch.model_args_dict,
        "label_names": labels,
        # label names live at the top level of config.json (timm copies them from there)
        "pretrained_cfg": {
            k: v
            for k, v in timm_pretrained_cfg(arch, record, num_classes=num_classes).items()
            if k not in ("label_names", "label_descriptions")
        },
        "radiologynet": _metadata(arch, record, sha256),
    }
    for key, value in (extra_config or {}).items():
        if key in ("pretrained_cfg", "radiologynet") and isinstance(value, Mapping):
            unknown = set(value) - pretrained_cfg_keys() if key == "pretrained_cfg" else set()
            if unknown:
                raise CheckpointFormatError(
                    f"extra_config['pretrained_cfg'] has keys timm does not accept: "
                    f"{sorted(unknown)}; put your own metadata under 'radiologynet'."
                )
            config[key].update(value)
        else:
            config[key] = value
    if not config["label_names"]:
        del config["label_names"]
    meta = config["radiologynet"]
    meta.setdefault("task_kind", task_kind or ("binary" if num_classes == 1 else "multiclass"))
    meta.setdefault("preprocessing", asdict(Preprocessing.from_timm_cfg(config["pretrained_cfg"])))
    return config


def _contiguous_unshared(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """CPU, contiguous tensors, none sharing memory (safetensors refuses shared ones)."""
    seen: set[int] = set()
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        tensor = value.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if tensor.numel() and pointer in seen:
            tensor = tensor.clone()
            pointer = tensor.untyped_storage().data_ptr()
        if tensor.numel():
            seen.add(pointer)
        out[key] = tensor
    return out


def _three_input_channels(state_dict: Mapping[str, Tensor], arch: Architecture) -> dict:
    """``state_dict`` with a 3-channel first convolution, the form every weights folder
    holds (timm's ``pretrained_cfg`` and :func:`radiologynet.create_model` expect it): a
    model trained on grayscale repeated to another channel count is re-spread by
    :func:`grayscale_filters`, exact on grayscale input."""
    key = f"{arch.first_conv}.weight"
    weight = state_dict.get(key)
    if weight is None or weight.dim() != 4 or weight.shape[1] == 3:
        return dict(state_dict)
    return {**state_dict, key: grayscale_filters(weight, 3)}


def write_weights_folder(
    state_dict: Mapping[str, Tensor],
    out_dir: str | os.PathLike[str],
    *,
    arch: Architecture | str,
    record: WeightRecord | None = None,
    num_classes: int | None = None,
    label_names: Iterable[str] = (),
    extra_config: Mapping[str, Any] | None = None,
    card_extra: Mapping[str, Any] | None = None,
    task_kind: str | None = None,
) -> Path:
    """Write a timm state dict as a weights folder: ``model.safetensors``, ``README.md``
    (model card) and ``config.json`` (written last, each atomically).

    Args:
        state_dict: in timm layout for ``arch`` (see :func:`to_timm_state_dict`); a first
            convolution with other than 3 input channels (a model trained with
            ``in_chans=1``) is stored in the 3-channel form (:func:`grayscale_filters`), so
            the folder loads with any ``in_chans``.
        out_dir: the folder (created if needed; other files in it are left alone).
        arch: the architecture (or its name).
        record: the weight this is; supplies preprocessing, licence, labels and results.
        num_classes: the head's size (default: read from the state dict).
        label_names: one name per class (default: the record's when the sizes agree); a
            binary task's one output gets both names, negative class first.
        task_kind: what the head computes (``"multiclass"``, ``"binary"``,
            ``"multilabel"``), recorded as ``config.json``'s ``radiologynet.task_kind``.
        extra_config: merged into config.json (``pretrained_cfg`` and ``radiologynet`` are
            merged into those dicts).
        card_extra: passed to :func:`radiologynet.models._card.render_model_card`.

    Returns:
        ``out_dir`` as a Path.
    """
    arch = get_architecture(arch) if isinstance(arch, str) else arch
    rows = head_rows(state_dict, arch)
    if num_classes is not None and num_classes != rows:
        raise CheckpointFormatError(
            f"num_classes={num_classes} but the state dict's head "
            f"{arch.classifier}.weight has {rows} rows."
        )
    config = build_config(
        arch,
        rows,
        record=record,
        label_names=label_names,
        extra_config=extra_config,
        task_kind=task_kind,
    )
    return write_folder(
        out_dir,
        _three_input_channels(state_dict, arch),
        config,
        lambda final: render_model_card(final, record=record, extra=card_extra),
    )


def check_weights_file(
    file: str | os.PathLike[str], arch: Architecture, shown: str | None = None
) -> None:
    """Check, from its header alone, that a ``model.safetensors`` is intact and holds
    weights of ``arch`` (any head size), before timm loads it.

    Raises:
        CheckpointFormatError: a truncated or damaged file, or weights of another
            architecture (the message names the one they fit, when the zoo has it).
    """
    from safetensors import SafetensorError, safe_open

    shown = shown or str(file)
    try:
        with safe_open(str(file), framework="pt") as fh:
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointFormatError(
            f"Cannot read {shown}: {err}. The file is truncated or damaged: fetch or "
            "convert it again (delete it first if it sits in the cache)."
        ) from err
    problem = shape_mismatch(shapes, arch)
    if problem is None:
        return
    fits = next(
        (
            a.name
            for a in ARCHITECTURES.values()
            if a.name != arch.name and shape_mismatch(shapes, a) is None
        ),
        None,
    )
    raise CheckpointFormatError(
        f"{shown}: these weights are for a different architecture"
        + (f" ({fits})" if fits else "")
        + f", not {arch.name} ({problem}). Pass weights of "
        f"{arch.name}" + (f", or build {fits} instead." if fits else ".")
    )


def shape_mismatch(shapes: Mapping[str, tuple[int, ...]], arch: Architecture) -> str | None:
    head = shapes.get(f"{arch.classifier}.weight")
    if head is None:
        return f"no {arch.classifier}.weight"
    expected, _ = timm_layout(arch.name, head[0])
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(expected) & set(shapes) if shapes[k] != expected[k])
    if not (missing or unexpected or wrong):
        return None
    return "; ".join(
        f"{len(keys)} {label} tensors, e.g. {keys[0]}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrongly shaped", wrong),
        )
        if keys
    )
