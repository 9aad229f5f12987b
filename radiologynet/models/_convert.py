"""Turn the authors' original checkpoints into weights folders that plain timm loads.

The original release is one ``torch.save`` dict per architecture (``model_state``,
``model_name``, ...) holding a torchvision network inside the authors' wrapper, shipped as
``<Name>.tar.gz``. This module reads it safely, detects the architecture, renames the keys
onto the numerically identical timm model and writes ``config.json`` + ``model.safetensors``
+ ``README.md``: a folder ``timm.create_model("local-dir:DIR", pretrained=True)`` loads.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import safetensors.torch
import timm
import torch
from timm.models import PretrainedCfg
from torch import Tensor

from radiologynet._atomic import atomic_write, atomic_write_text
from radiologynet.errors import CheckpointFormatError, UnknownModelError, WeightsNotFoundError
from radiologynet.models._hub import CONFIG_NAME, WEIGHTS_NAME, sha256_file
from radiologynet.models._registry import ARCHITECTURES, Architecture, get_architecture
from radiologynet.models._weights import (
    IMAGENET_NUM_CLASSES,
    PAPER,
    PAPER_DOI,
    Preprocessing,
    WeightRecord,
    get_weights,
)

CARD_NAME = "README.md"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
#: pretrained_cfg keys that say where weights come from; a folder must not point elsewhere.
_SOURCE_KEYS = {"url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source"}
#: The keys timm's ``PretrainedCfg`` accepts (an unknown one raises TypeError in timm).
PRETRAINED_CFG_KEYS = frozenset(f.name for f in fields(PretrainedCfg))
#: The pretraining head of the authors' RadiologyNET checkpoints.
RADIOLOGYNET_NUM_CLASSES = 36
#: Archive extraction refuses more than this many uncompressed bytes (the largest
#: original archive, VGG16, is 1.21 GiB) ...
MAX_EXTRACT_BYTES = 4 << 30
#: ... or members this many times larger than the archive (weights barely compress; a
#: higher ratio is a decompression bomb).
MAX_EXTRACT_RATIO = 20


# --------------------------------------------------------------------------- reading


def load_original_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], str | None]:
    """Read an original checkpoint (``<Name>.pth`` or the ``<Name>.tar.gz`` holding it).

    Only tensors and plain containers are unpickled (``weights_only=True``).

    Returns:
        The model state dict (from ``model_state``, or the file itself when it is a bare
        state dict) with any ``module.`` prefix removed, and the checkpoint's
        ``model_name`` (``None`` when absent).

    Raises:
        WeightsNotFoundError: ``path`` does not exist.
        CheckpointFormatError: a corrupt or truncated file, an unsafe archive member, or
            content other than tensors.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointFormatError(
            f"{path} is a folder; a checkpoint is one file (<Name>.pth or <Name>.tar.gz). "
            "A weights folder (config.json + model.safetensors) needs no conversion: load "
            "it with create_model(ARCH, weights=FOLDER)."
        )
    if not path.is_file():
        raise WeightsNotFoundError(f"Checkpoint {path} does not exist.")
    if path.name.endswith(ARCHIVE_SUFFIXES):
        with tempfile.TemporaryDirectory(
            prefix=".radiologynet-extract-",
            dir=path.parent if os.access(path.parent, os.W_OK) else None,
        ) as tmp:
            member = _extract_checkpoint(path, Path(tmp))
            return _read_checkpoint(member, shown=f"{path} (member {member.name})")
    return _read_checkpoint(path, shown=str(path))


def _extract_checkpoint(archive: Path, dest: Path) -> Path:
    """Extract the one checkpoint member of ``archive`` into ``dest`` after checking every
    member is a plain file with a safe relative name."""
    redownload = f"Re-download {archive.name} (the file may be truncated or corrupt)."
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(archive, member)
            _check_extracted_size(archive, members)
            candidates = [
                m for m in members if m.isfile() and m.name.endswith(_CHECKPOINT_SUFFIXES)
            ]
            if not candidates:
                raise CheckpointFormatError(
                    f"Archive {archive} holds no checkpoint (.pth/.pt) file; members: "
                    f"{', '.join(m.name for m in members) or 'none'}. {redownload}"
                )
            stem = archive.name.split(".")[0]
            chosen = next(
                (m for m in candidates if PurePosixPath(m.name).name.split(".")[0] == stem),
                candidates[0],
            )
            if hasattr(tarfile, "data_filter"):
                tar.extract(chosen, dest, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extract(chosen, dest)
    except CheckpointFormatError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise CheckpointFormatError(f"Cannot read archive {archive}: {err}. {redownload}") from err
    return dest / chosen.name


def _check_extracted_size(archive: Path, members: list[tarfile.TarInfo]) -> None:
    """Refuse, before writing anything, an archive whose members would unpack to more than
    :data:`MAX_EXTRACT_BYTES`, or to :data:`MAX_EXTRACT_RATIO` times the archive's size."""
    total = sum(m.size for m in members if m.isfile())
    limit = min(MAX_EXTRACT_BYTES, MAX_EXTRACT_RATIO * max(archive.stat().st_size, 1 << 20))
    if total > limit:
        raise CheckpointFormatError(
            f"Refusing archive {archive}: its members would unpack to {total} bytes, more "
            f"than the {limit}-byte limit (the largest original archive, VGG16, is 1.21 GiB"
            " and weights barely compress). It is not an original RadiologyNET archive; get "
            "it from the authors' server again."
        )


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    if (
        member.name.startswith(("/", "\\"))
        or name.is_absolute()
        or re.match(r"^[A-Za-z]:", member.name)
    ):
        problem = "an absolute path"
    elif ".." in name.parts or ".." in PurePosixPath(member.name.replace("\\", "/")).parts:
        problem = "a '..' component"
    elif member.issym() or member.islnk():
        problem = "a link"
    elif not (member.isfile() or member.isdir()):
        problem = "a device, FIFO or other special file"
    else:
        return
    raise CheckpointFormatError(
        f"Refusing archive {archive}: member {member.name!r} has {problem}. The original "
        "release holds one plain <Name>.pth; get the archive from the authors' server again."
    )


def _read_checkpoint(path: Path, shown: str) -> tuple[dict[str, Tensor], str | None]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointFormatError(
            f"Checkpoint {shown} holds objects other than tensors and plain containers, "
            f"which are refused for safety (torch.load weights_only=True): {err}"
        ) from err
    except Exception as err:  # a damaged file fails anywhere inside the unpickler
        raise CheckpointFormatError(
            f"Cannot read checkpoint {shown}: {err}. Re-download or re-save it "
            "(the file may be truncated or corrupt)."
        ) from err
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(
            f"Checkpoint {shown} holds a {type(obj).__name__}, not a state dict or a dict "
            "with 'model_state'."
        )
    model_name = obj.get("model_name")
    state = obj.get("model_state", obj.get("state_dict", obj))
    if not isinstance(state, Mapping) or not state:
        raise CheckpointFormatError(f"Checkpoint {shown} has an empty or invalid model_state.")
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointFormatError(
            f"Checkpoint {shown}: model_state entries {bad[:5]} are not tensors; expected a "
            "state dict (the original dict format, or a bare state dict)."
        )
    return strip_prefix(state), model_name if isinstance(model_name, str) else None


def grayscale_filters(weight: Tensor, channels: int) -> Tensor:
    """First-convolution filters ``(O, I, kH, kW)`` re-spread for ``channels`` inputs that
    all carry the same grayscale image: the filters are summed over their input channels
    (what they compute on replicated grayscale) and, for more than one channel, that sum
    divided by ``channels`` is repeated, so the result computes the same on grayscale input
    and loading it with ``in_chans=1`` (timm sums the filters) gives the sum back. timm's
    ``adapt_input_conv`` does not go from 1 to 3 channels."""
    summed = weight.sum(1, keepdim=True)
    return summed if channels == 1 else summed.repeat(1, channels, 1, 1) / channels


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """``state_dict`` with ``prefix`` (DataParallel's ``module.``) removed from every key
    that has it."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


# --------------------------------------------------------------------------- key mapping


@lru_cache(maxsize=64)
def _timm_layout(arch_name: str, num_classes: int) -> tuple[dict[str, tuple[int, ...]], int]:
    """Key -> shape of the timm model of ``arch_name`` (built on the meta device, so no
    memory or init cost), and its ``num_features``."""
    arch = ARCHITECTURES[arch_name]
    with torch.device("meta"):
        model = timm.create_model(arch.timm_name, num_classes=num_classes, **arch.model_args_dict)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, int(model.num_features)


def _head_rows(state_dict: Mapping[str, Tensor], arch: Architecture) -> int:
    weight = state_dict.get(f"{arch.classifier}.weight")
    if weight is None:
        raise CheckpointFormatError(
            f"The converted {arch.name} state dict has no {arch.classifier}.weight (the "
            "classification head)."
        )
    return int(weight.shape[0])


def _family(arch: Architecture) -> str:
    for family in ("resnet", "inception", "densenet", "vgg", "efficientnet", "mobilenet"):
        if arch.name.startswith(family):
            return family
    raise CheckpointFormatError(f"No conversion rules for architecture {arch.name}.")


def _strip_model(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return strip_prefix(state_dict, "model.")


def _map_vgg(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    if "pre_logits.fc1.weight" in sd:
        return dict(sd)
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        if key.startswith("classifier.0."):
            if key.endswith("weight"):
                value = value.reshape(value.shape[0], -1, 7, 7)
            key = "pre_logits.fc1." + key.split(".")[-1]
        elif key.startswith("classifier.3."):
            if key.endswith("weight"):
                value = value.reshape(*value.shape, 1, 1)
            key = "pre_logits.fc2." + key.split(".")[-1]
        elif key.startswith("classifier.6."):
            key = "head.fc." + key.split(".")[-1]
        out[key] = value
    return out


_DS_CONVS = (("conv_dw", "bn1"), ("conv_pw", "bn2"))
_IR_CONVS = (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3"))
_BLOCK_KEY = re.compile(r"block\.(\d+)\.(.+)")
_DENSENET_LEGACY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
    r"running_var|num_batches_tracked))$"
)


def _map_block(prefix: str, block: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename one torchvision MBConv/InvertedResidual (keys ``block.U.*``) to timm's
    DepthwiseSeparableConv or InvertedResidual names under ``prefix``."""
    units: dict[int, dict[str, Tensor]] = {}
    for key, value in block.items():
        match = _BLOCK_KEY.fullmatch(key)
        if not match:
            raise CheckpointFormatError(f"Unexpected key {prefix}{key} in an MBConv block.")
        units.setdefault(int(match.group(1)), {})[match.group(2)] = value
    conv_units = [u for u in sorted(units) if "fc1.weight" not in units[u]]
    names = {2: _DS_CONVS, 3: _IR_CONVS}.get(len(conv_units))
    if names is None:
        raise CheckpointFormatError(
            f"Unexpected MBConv layout under {prefix}: units {sorted(units)}."
        )
    out: dict[str, Tensor] = {}
    conv_names = dict(zip(conv_units, names, strict=True))
    for unit, tensors in units.items():
        for rest, value in tensors.items():
            if unit in conv_names:
                conv, bn = conv_names[unit]
                layer, _, param = rest.partition(".")
                new = f"{conv}.{param}" if layer == "0" else f"{bn}.{param}"
            else:
                new = rest.replace("fc1.", "se.conv_reduce.").replace("fc2.", "se.conv_expand.")
            out[prefix + new] = value
    return out


def _group(sd: Mapping[str, Tensor], pattern: str) -> dict[tuple[int, ...], dict[str, Tensor]]:
    """Group ``features.*`` keys by the integer indices ``pattern`` captures."""
    groups: dict[tuple[int, ...], dict[str, Tensor]] = {}
    regex = re.compile(pattern)
    for key, value in sd.items():
        match = regex.fullmatch(key)
        if match:
            index = tuple(int(g) for g in match.groups()[:-1])
            groups.setdefault(index, {})[match.groups()[-1]] = value
    return groups


def _map_stem_head(
    sd: Mapping[str, Tensor], last: int, head: tuple[str, str], out: dict[str, Tensor]
) -> None:
    for key, value in sd.items():
        for index, (conv, bn) in ((0, ("conv_stem", "bn1")), (last, head)):
            if key.startswith(f"features.{index}.0."):
                out[f"{conv}.{key.split('.', 3)[3]}"] = value
            elif key.startswith(f"features.{index}.1."):
                out[f"{bn}.{key.split('.', 3)[3]}"] = value


def _map_efficientnet(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    if "conv_stem.weight" in sd:
        return dict(sd)
    blocks = _group(sd, r"features\.(\d+)\.(\d+)\.(block\..+)")
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("features."))
    out: dict[str, Tensor] = {}
    _map_stem_head(sd, last, ("conv_head", "bn2"), out)
    for (stage, index), block in blocks.items():
        out.update(_map_block(f"blocks.{stage - 1}.{index}.", block))
    for key, value in sd.items():
        if key.startswith("classifier.1."):
            out["classifier." + key.split(".")[-1]] = value
    return out


def _map_mobilenet(sd: Mapping[str, Tensor], arch: Architecture) -> dict[str, Tensor]:
    if "conv_stem.weight" in sd:
        return dict(sd)
    layout, _ = _timm_layout(arch.name, 1000)
    stage_sizes: dict[int, int] = {}
    for key in layout:
        if key.startswith("blocks."):
            _, stage, index = key.split(".")[:3]
            stage_sizes[int(stage)] = max(stage_sizes.get(int(stage), 0), int(index) + 1)
    positions = [(s, i) for s in sorted(stage_sizes) for i in range(stage_sizes[s])]
    blocks = _group(sd, r"features\.(\d+)\.(block\..+)")
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("features."))
    if len(blocks) + 1 != len(positions):
        raise CheckpointFormatError(
            f"{len(blocks)} inverted-residual blocks found, {arch.timm_name} has "
            f"{len(positions) - 1}: this is not a {arch.name} checkpoint."
        )
    out: dict[str, Tensor] = {}
    final_stage = positions[-1][0]
    _map_stem_head(sd, last, (f"blocks.{final_stage}.0.conv", f"blocks.{final_stage}.0.bn1"), out)
    for (feature,), block in blocks.items():
        stage, index = positions[feature - 1]
        out.update(_map_block(f"blocks.{stage}.{index}.", block))
    for key, value in sd.items():
        if key == "classifier.0.weight":
            out["conv_head.weight"] = value.reshape(*value.shape, 1, 1)
        elif key == "classifier.0.bias":
            out["conv_head.bias"] = value
        elif key.startswith("classifier.3."):
            out["classifier." + key.split(".")[-1]] = value
    return out


def _rename(state_dict: Mapping[str, Tensor], arch: Architecture) -> dict[str, Tensor]:
    sd = strip_prefix(state_dict)
    family = _family(arch)
    if family in ("resnet", "inception"):
        return {k: v for k, v in _strip_model(sd).items() if not k.startswith("AuxLogits.")}
    if family == "densenet":
        if any(k.startswith("features.") for k in sd):
            sd = {k: v for k, v in sd.items() if not k.startswith("model.")}
        else:
            sd = _strip_model(sd)
        # torchvision's published checkpoint keeps the old names (norm.1 for norm1)
        return {_DENSENET_LEGACY.sub(r"\1\2", k): v for k, v in sd.items()}
    if family == "vgg":
        return _map_vgg(_strip_model(sd))
    if family == "efficientnet":
        return _map_efficientnet(_strip_model(sd))
    return _map_mobilenet(_strip_model(sd), arch)


def _mismatch(converted: Mapping[str, Tensor], arch: Architecture) -> str | None:
    """Why ``converted`` would not load ``strict=True`` into the timm model (None if it
    would)."""
    return _shape_mismatch({k: tuple(v.shape) for k, v in converted.items()}, arch)


def to_timm_state_dict(state_dict: Mapping[str, Tensor], arch: Architecture) -> dict[str, Tensor]:
    """Rename an original (or plain torchvision, or already timm) state dict of ``arch``
    onto ``timm.create_model(arch.timm_name, **arch.model_args)``.

    Returns:
        A state dict that loads ``strict=True`` into that timm model built with
        ``num_classes`` equal to the head's rows (checked here, key by key and shape by
        shape).

    Raises:
        CheckpointFormatError: the keys or shapes do not fit ``arch``.
    """
    converted = _rename(state_dict, arch)
    problem = _mismatch(converted, arch)
    if problem is not None:
        raise CheckpointFormatError(
            f"The checkpoint does not fit {arch.name} ({arch.timm_name}): {problem}."
        )
    return converted


def detect_architecture(
    state_dict: Mapping[str, Tensor], model_name: str | None = None
) -> Architecture:
    """Find the architecture of a state dict: from ``model_name`` (the wrapper's class name,
    e.g. ``ResNet50`` or ``mobileNetV3Small``) when given, else from its keys and shapes.

    Raises:
        CheckpointFormatError: no architecture of the zoo fits; the message lists them and
            what the keys looked like.
    """
    if model_name:
        try:
            arch = get_architecture(model_name)
        except UnknownModelError:
            arch = None
        if arch is not None:
            problem = _mismatch(_rename(state_dict, arch), arch)
            if problem is None:
                return arch
            raise CheckpointFormatError(
                f"The checkpoint says model_name={model_name!r} but its keys do not fit "
                f"{arch.name}: {problem}."
            )
    for arch in ARCHITECTURES.values():
        try:
            if _mismatch(_rename(state_dict, arch), arch) is None:
                return arch
        except (CheckpointFormatError, ValueError, RuntimeError, KeyError, IndexError):
            continue
    sample = ", ".join(list(state_dict)[:4]) or "none"
    raise CheckpointFormatError(
        f"The checkpoint's keys match no known architecture (first keys: {sample}). Expected "
        f"one of {', '.join(a.original_name for a in ARCHITECTURES.values())} in the original "
        "RadiologyNET layout, a torchvision state dict, or a timm state dict of "
        f"{', '.join(a.timm_name for a in ARCHITECTURES.values())}."
    )


# --------------------------------------------------------------------------- writing


def timm_pretrained_cfg(
    arch: Architecture,
    record: WeightRecord | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """The one timm ``pretrained_cfg`` of a weight: the record's, else ``base`` (a
    folder's own ``pretrained_cfg``), else the architecture's letterbox input without
    normalisation; with ``first_conv``/``classifier`` (so ``in_chans`` and ``num_classes``
    work), only keys timm accepts, and no key that points at another file."""
    if record is not None:
        cfg: dict[str, Any] = dict(record.pretrained_cfg())
    elif base is not None:
        cfg = dict(base)
    else:
        cfg = {
            **Preprocessing(input_size=arch.input_size).timm_cfg(),
            "architecture": arch.timm_name,
            "paper_ids": f"doi:{PAPER_DOI}",
        }
    cfg.setdefault("first_conv", arch.first_conv)
    cfg.setdefault("classifier", arch.classifier)
    if num_classes is not None:
        cfg["num_classes"] = num_classes
    return {
        k: v
        for k, v in cfg.items()
        if k in PRETRAINED_CFG_KEYS and k not in _SOURCE_KEYS and v not in (None, "")
    }


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
) -> dict[str, Any]:
    """The ``config.json`` of a weights folder: timm's keys, plus this library's metadata
    under the top-level ``radiologynet`` key (timm ignores it)."""
    _, num_features = _timm_layout(arch.name, num_classes)
    labels = list(label_names)
    if not labels and record is not None and record.num_classes == num_classes:
        labels = list(record.label_names)
    config: dict[str, Any] = {
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
            unknown = set(value) - PRETRAINED_CFG_KEYS if key == "pretrained_cfg" else set()
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
        label_names: one name per class (default: the record's when the sizes agree).
        extra_config: merged into config.json (``pretrained_cfg`` and ``radiologynet`` are
            merged into those dicts).
        card_extra: passed to :func:`radiologynet.models._card.render_model_card`.

    Returns:
        ``out_dir`` as a Path.
    """
    from radiologynet.models._card import render_model_card

    arch = get_architecture(arch) if isinstance(arch, str) else arch
    rows = _head_rows(state_dict, arch)
    if num_classes is not None and num_classes != rows:
        raise CheckpointFormatError(
            f"num_classes={num_classes} but the state dict's head "
            f"{arch.classifier}.weight has {rows} rows."
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CheckpointFormatError(
            f"Output {out} exists and is not a folder; choose another --out or remove it."
        )
    out.mkdir(parents=True, exist_ok=True)
    tensors = _contiguous_unshared(_three_input_channels(state_dict, arch))
    atomic_write(
        out / WEIGHTS_NAME,
        lambda tmp: safetensors.torch.save_file(tensors, tmp, metadata={"format": "pt"}),
    )
    config = build_config(
        arch,
        rows,
        record=record,
        label_names=label_names,
        sha256=sha256_file(out / WEIGHTS_NAME),
        extra_config=extra_config,
    )
    card = render_model_card(config, record=record, extra=card_extra)
    atomic_write_text(out / CARD_NAME, card)
    atomic_write_text(out / CONFIG_NAME, json.dumps(config, indent=2) + "\n")  # last
    return out


def record_for(arch: Architecture, num_classes: int, tag: str | None = None) -> WeightRecord | None:
    """The weight record a converted checkpoint of ``arch`` is, from its head's size:
    ``tag``'s record when given, else the RadiologyNET weights for a 36-class head, the
    ImageNet (torchvision) weights for a 1000-class head, and ``None`` (no claims about
    its training or preprocessing) otherwise.

    Raises:
        CheckpointFormatError: ``tag``'s record has another number of classes (e.g. a
            torchvision ImageNet checkpoint converted as ``radiologynet``).
    """
    if tag is None:
        tag = {RADIOLOGYNET_NUM_CLASSES: "radiologynet", IMAGENET_NUM_CLASSES: "imagenet"}.get(
            num_classes
        )
        if tag is None:
            return None
    record = get_weights(arch.name, tag=tag)
    if record.num_classes != num_classes:
        raise CheckpointFormatError(
            f"The checkpoint's head has {num_classes} classes, but {record.full_name} has "
            f"{record.num_classes}"
            + (
                " (this looks like torchvision's ImageNet weights: use tag 'imagenet')"
                if num_classes == IMAGENET_NUM_CLASSES
                else ""
            )
            + ". Pick the matching tag, or leave it out to detect it."
        )
    return record


def convert_checkpoint(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    record: WeightRecord | None = None,
    tag: str | None = None,
) -> Path:
    """Convert an original checkpoint (``.pth``/``.tar.gz``, original dict or bare state
    dict, or a torchvision ImageNet checkpoint) into a weights folder.

    Args:
        record: the weight it is; default: ``tag``'s record, or detected from the head
            (:func:`record_for`).
        tag: the weight tag used when ``record`` is not given.

    Returns:
        ``out_dir`` as a Path.
    """
    state_dict, model_name = load_original_checkpoint(src)
    arch = detect_architecture(state_dict, model_name)
    converted = to_timm_state_dict(state_dict, arch)
    rows = _head_rows(converted, arch)
    if record is None:
        record = record_for(arch, rows, tag)
    elif record.arch != arch.name:
        raise CheckpointFormatError(
            f"Checkpoint {src} is a {arch.name}, but the weight record given is {record.full_name}."
        )
    elif record.num_classes != rows:
        raise CheckpointFormatError(
            f"Checkpoint {src} has a {rows}-class head, but {record.full_name} has "
            f"{record.num_classes} classes: it is another weight."
        )
    return write_weights_folder(converted, out_dir, arch=arch, record=record)


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
    problem = _shape_mismatch(shapes, arch)
    if problem is None:
        return
    fits = next(
        (
            a.name
            for a in ARCHITECTURES.values()
            if a.name != arch.name and _shape_mismatch(shapes, a) is None
        ),
        None,
    )
    raise CheckpointFormatError(
        f"{shown}: these weights are for a different architecture"
        + (f" ({fits})" if fits else "")
        + f", not {arch.name} ({problem}). Pass weights of "
        f"{arch.name}" + (f", or build {fits} instead." if fits else ".")
    )


def _shape_mismatch(shapes: Mapping[str, tuple[int, ...]], arch: Architecture) -> str | None:
    head = shapes.get(f"{arch.classifier}.weight")
    if head is None:
        return f"no {arch.classifier}.weight"
    expected, _ = _timm_layout(arch.name, head[0])
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
