"""Turn the authors' original checkpoints into weights folders that plain timm loads.

The original release is one ``torch.save`` dict per architecture (``model_state``,
``model_name``, ...) holding a torchvision network inside the authors' wrapper, shipped as
``<Name>.tar.gz``. This module reads it safely, detects the architecture, renames the keys
onto the numerically identical timm model and writes ``config.json`` + ``model.safetensors``
+ ``README.md``: a folder ``timm.create_model("local-dir:DIR", pretrained=True)`` loads.
"""

from __future__ import annotations

import os
import pickle
import re
import tarfile
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import torch
from torch import Tensor

from radiologynet.errors import CheckpointFormatError, UnknownModelError, WeightsNotFoundError
from radiologynet.models._folder import (
    head_rows,
    pickle_refused,
    refused_global,
    shape_mismatch,
    timm_layout,
    write_weights_folder,
)
from radiologynet.models._registry import ARCHITECTURES, Architecture, get_architecture
from radiologynet.models._weights import (
    IMAGENET_NUM_CLASSES,
    WeightRecord,
    get_weights,
)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
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
            return _checkpoint_in_archive(path, Path(tmp))
    return _read_checkpoint(path, shown=str(path))


def _checkpoint_in_archive(archive: Path, dest: Path) -> tuple[dict[str, Tensor], str | None]:
    """The checkpoint an archive holds, chosen by content: each checkpoint-named member
    (the one named like the archive first, then in order) is extracted and read until one
    is a state dict; a decoy member before it (notes saved as ``.pth``, another object) is
    passed over. Only when none is a checkpoint is the first one's error raised."""
    failures: list[CheckpointFormatError] = []
    for member in _checkpoint_members(archive):
        file = _extract_member(archive, member, dest)
        try:
            return _read_checkpoint(file, shown=f"{archive} (member {member.name})")
        except CheckpointFormatError as err:
            failures.append(err)
        finally:
            file.unlink(missing_ok=True)
    if len(failures) == 1:
        raise failures[0]
    raise CheckpointFormatError(
        f"Archive {archive}: none of its {len(failures)} checkpoint members is a state dict "
        f"({'; '.join(str(f) for f in failures[:3])})."
    )


def _checkpoint_members(archive: Path) -> list[tarfile.TarInfo]:
    """Every ``.pth``/``.pt``/... member of ``archive`` (the one named like the archive
    first), after checking every member is a plain file with a safe relative name and the
    total unpacks within bounds."""
    redownload = f"Re-download {archive.name} (the file may be truncated or corrupt)."
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise CheckpointFormatError(f"Cannot read archive {archive}: {err}. {redownload}") from err
    for member in members:
        _check_member(archive, member)
    _check_extracted_size(archive, members)
    candidates = [m for m in members if m.isfile() and m.name.endswith(_CHECKPOINT_SUFFIXES)]
    if not candidates:
        raise CheckpointFormatError(
            f"Archive {archive} holds no checkpoint (.pth/.pt) file; members: "
            f"{', '.join(m.name for m in members) or 'none'}. {redownload}"
        )
    stem = archive.name.split(".")[0]
    return sorted(candidates, key=lambda m: PurePosixPath(m.name).name.split(".")[0] != stem)


def _extract_member(archive: Path, member: tarfile.TarInfo, dest: Path) -> Path:
    """Extract one checked member of ``archive`` into ``dest``; returns its path."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extract(member, dest, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extract(member, dest)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise CheckpointFormatError(
            f"Cannot read archive {archive}: {err}. Re-download {archive.name} (the file "
            "may be truncated or corrupt)."
        ) from err
    return dest / member.name


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
        raise pickle_refused(shown, refused_global(err)) from err
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


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """``state_dict`` with ``prefix`` (DataParallel's ``module.``) removed from every key
    that has it."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


# --------------------------------------------------------------------------- key mapping


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
    layout, _ = timm_layout(arch.name, 1000)
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
    return shape_mismatch({k: tuple(v.shape) for k, v in converted.items()}, arch)


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
    rows = head_rows(converted, arch)
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
