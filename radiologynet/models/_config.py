"""The values of a weights folder's ``config.json``, checked before anything is built
from them: each field's type and range, so a hostile or damaged file is refused with a
:class:`~radiologynet.errors.CheckpointFormatError` naming the file and the field instead
of building a 2-petabyte head (``num_classes: 10**12``), a silently truncated one
(``num_classes: 1.5``) or a 52 GB input (``input_size: 100000``).

Only the fields this library reads are checked; other keys (timm's, a user's own
metadata) pass as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from radiologynet.errors import CheckpointFormatError

#: A ``config.json`` larger than this is refused unread (the zoo's are under 10 KB; the
#: label names of a 100,000-class head fit).
MAX_CONFIG_BYTES = 4 << 20
#: Output classes a weights folder may declare (ImageNet-21k has 21,841).
MAX_NUM_CLASSES = 100_000
#: Input side a weights folder may declare, in pixels (the paper's are 224-512).
MAX_INPUT_SIZE = 4096
#: Input channels a weights folder may declare.
MAX_IN_CHANS = 16
#: A vanilla U-Net's depth and first width (the paper's: 3 and 16).
MAX_UNET_DEPTH = 8
MAX_UNET_WIDTH = 1024
#: Feature width of a backbone (ConvNeXt-XL's is 2048).
MAX_NUM_FEATURES = 1 << 16

_STRING_FIELDS = ("model_type", "architecture", "global_pool", "task_model", "kind")
_OPTIONAL_STRINGS = ("encoder", "decoder", "model")
_CFG_STRINGS = ("interpolation", "crop_mode", "first_conv", "classifier", "license")


def _refuse(where: Path, field: str, value: Any, expected: str) -> CheckpointFormatError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CheckpointFormatError(
        f"{where}: {field} is {shown}, expected {expected}. The file is damaged or was "
        "written by hand: fix the field, or fetch or convert the weights again."
    )


def check_int(where: Path, field: str, value: Any, low: int, high: int) -> int:
    """``value`` when it is an int (not a bool, not a float) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _refuse(where, field, value, f"an integer from {low} to {high}")
    return value


def _check_number(where: Path, field: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _refuse(where, field, value, "a finite number")
    if positive and value <= 0:
        raise _refuse(where, field, value, "a number > 0")
    return float(value)


def _check_numbers(where: Path, field: str, value: Any, positive: bool) -> None:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_IN_CHANS:
        raise _refuse(where, field, value, f"a list of 1 to {MAX_IN_CHANS} numbers")
    for i, item in enumerate(value):
        _check_number(where, f"{field}[{i}]", item, positive)


def _check_str(where: Path, field: str, value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise _refuse(where, field, value, "a non-empty string (at most 200 characters)")


def _check_labels(where: Path, field: str, value: Any) -> None:
    if not isinstance(value, list) or len(value) > MAX_NUM_CLASSES:
        raise _refuse(where, field, value, f"a list of at most {MAX_NUM_CLASSES} names")
    for i, name in enumerate(value):
        if not isinstance(name, str):
            raise _refuse(where, f"{field}[{i}]", name, "a string")


def _check_input_size(where: Path, field: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise _refuse(where, field, value, "[channels, height, width]")
    check_int(where, f"{field}[0]", value[0], 1, MAX_IN_CHANS)
    for i in (1, 2):
        check_int(where, f"{field}[{i}]", value[i], 1, MAX_INPUT_SIZE)


def _check_pretrained_cfg(where: Path, cfg: Any) -> None:
    if not isinstance(cfg, Mapping):
        raise _refuse(where, "pretrained_cfg", cfg, "a JSON object")
    checks: dict[str, Callable[[Path, str, Any], object]] = {
        "input_size": _check_input_size,
        "test_input_size": _check_input_size,
        "num_classes": lambda w, f, v: check_int(w, f, v, 1, MAX_NUM_CLASSES),
        "mean": lambda w, f, v: _check_numbers(w, f, v, positive=False),
        "std": lambda w, f, v: _check_numbers(w, f, v, positive=True),
        "crop_pct": lambda w, f, v: _check_crop_pct(w, f, v),
        "label_names": _check_labels,
        **{name: _check_str for name in _CFG_STRINGS},
    }
    for key, check in checks.items():
        if cfg.get(key) is not None:
            check(where, f"pretrained_cfg.{key}", cfg[key])


def _check_crop_pct(where: Path, field: str, value: Any) -> None:
    if not 0 < _check_number(where, field, value) <= 4:
        raise _refuse(where, field, value, "a number in (0, 4]")


def _check_model_args(where: Path, config: Mapping[str, Any]) -> None:
    args = config.get("model_args")
    if args is None:
        return
    if not isinstance(args, Mapping):
        raise _refuse(where, "model_args", args, "a JSON object of keyword arguments")
    if config.get("model_type") == "vanilla_unet":
        bounds = {
            "in_chans": MAX_IN_CHANS,
            "num_classes": MAX_NUM_CLASSES,
            "depth": MAX_UNET_DEPTH,
            "first_width": MAX_UNET_WIDTH,
        }
        for key, high in bounds.items():
            if key in args:
                check_int(where, f"model_args.{key}", args[key], 1, high)


def check_config(config: Mapping[str, Any], where: Path) -> None:
    """Check every field of a weights folder's ``config.json`` (``where``) this library
    reads: the model type and names are strings, ``num_classes`` an integer from 1 to
    :data:`MAX_NUM_CLASSES`, ``model_args`` an object (a vanilla U-Net's bounded),
    ``input_size`` at most :data:`MAX_INPUT_SIZE` pixels, mean / std / crop_pct finite,
    ``label_names`` strings, ``radiologynet`` an object whose ``sha256`` is a string.

    Raises:
        CheckpointFormatError: naming ``where``, the field, its value and what was expected.
    """
    for name in _STRING_FIELDS + _OPTIONAL_STRINGS:
        if config.get(name) is not None:
            _check_str(where, name, config[name])
    if "num_classes" in config:
        check_int(where, "num_classes", config["num_classes"], 1, MAX_NUM_CLASSES)
    if config.get("num_features") is not None:
        check_int(where, "num_features", config["num_features"], 1, MAX_NUM_FEATURES)
    _check_model_args(where, config)
    if config.get("label_names") is not None:
        _check_labels(where, "label_names", config["label_names"])
    if config.get("pretrained_cfg") is not None:
        _check_pretrained_cfg(where, config["pretrained_cfg"])
    meta = config.get("radiologynet")
    if meta is not None and not isinstance(meta, Mapping):
        raise _refuse(where, "radiologynet", meta, "a JSON object")
    if meta and meta.get("sha256") is not None and not isinstance(meta["sha256"], str):
        raise _refuse(where, "radiologynet.sha256", meta["sha256"], "a sha256 string")
