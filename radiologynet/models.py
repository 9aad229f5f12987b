"""``create_model``: one build path over timm for every architecture and weight."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import timm
import torch.nn as nn
from timm.models import PretrainedCfg

from radiologynet.errors import UnknownWeightsError
from radiologynet.hub import ResolvedWeights, resolve_path, resolve_record
from radiologynet.registry import Architecture, get_architecture
from radiologynet.weights import (
    RANDOM_TAGS,
    Preprocessing,
    WeightRecord,
    get_weights,
    list_weights,
    split_name,
)

_PRETRAINED_CFG_KEYS = frozenset(f.name for f in dataclasses.fields(PretrainedCfg))


def _is_path(weights: str | os.PathLike) -> bool:
    text = os.fspath(weights)
    return (
        isinstance(weights, os.PathLike)
        or os.sep in text
        or text.startswith((".", "~"))
        or Path(text).exists()
    )


def _is_known_tag(text: str) -> bool:
    tag = text.split("@", 1)[0]
    return tag in {r.tag for r in list_weights()}


def resolve(name: str, weights: str | os.PathLike | WeightRecord | None = None
            ) -> tuple[Architecture, ResolvedWeights | None]:
    """Resolve ``name`` (``arch`` or ``arch.tag[@version]``) and ``weights`` to a file.

    Returns the architecture and the resolved weights, or ``None`` for random init.
    """
    arch_name, tag, version = split_name(name)
    arch = get_architecture(arch_name)
    if tag is not None:
        named = tag + (f"@{version}" if version else "")
        if weights is not None and str(weights) != named:
            raise UnknownWeightsError(
                f"create_model({name!r}, weights={weights!r}): the name already selects "
                f"weights {named!r}; pass one or the other."
            )
        weights = named
    if weights is None:
        return arch, None
    if isinstance(weights, WeightRecord):
        return arch, resolve_record(weights)
    if isinstance(weights, str) and weights.lower() in RANDOM_TAGS:
        return arch, None
    if _is_path(weights) and not _is_known_tag(str(weights)):
        resolved = resolve_path(weights, arch)
        if resolved.arch.name != arch.name:
            raise UnknownWeightsError(
                f"Weights {weights} are for {resolved.arch.name}, not {arch.name}: "
                f"use create_model({resolved.arch.name!r}, weights=...)."
            )
        return arch, resolved
    return arch, resolve_record(get_weights(arch.name, tag=str(weights)))


def _pretrained_cfg(arch: Architecture, resolved: ResolvedWeights | None) -> dict[str, Any]:
    if resolved is None:
        cfg: dict[str, Any] = {
            **Preprocessing(input_size=arch.input_size).timm_cfg(),
            "first_conv": arch.first_conv, "classifier": arch.classifier,
            "architecture": arch.timm_name, "tag": "random",
        }
        return cfg
    if resolved.record is not None:
        cfg = resolved.record.pretrained_cfg()
    elif resolved.config and "pretrained_cfg" in resolved.config:
        cfg = dict(resolved.config["pretrained_cfg"])
    else:
        cfg = {**Preprocessing(input_size=arch.input_size).timm_cfg()}
    cfg.setdefault("first_conv", arch.first_conv)
    cfg.setdefault("classifier", arch.classifier)
    if resolved.config and "num_classes" in resolved.config:
        cfg["num_classes"] = resolved.config["num_classes"]
    if "num_classes" not in cfg:
        cfg["num_classes"] = _head_rows(resolved.file, arch)
    cfg["file"] = str(resolved.file)
    for key in ("url", "hf_hub_id", "hf_hub_filename", "state_dict", "source"):
        cfg.pop(key, None)
    return {k: v for k, v in cfg.items() if k in _PRETRAINED_CFG_KEYS}


def _head_rows(file: Path, arch: Architecture) -> int:
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as fh:
        key = f"{arch.classifier}.weight"
        if key in fh.keys():
            return int(fh.get_slice(key).get_shape()[0])
    return 0


def create_model(
    name: str,
    weights: str | os.PathLike | WeightRecord | None = None,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """Build a registry architecture as a plain timm model, optionally with weights.

    Args:
        name: an architecture (``"resnet50"``, timm names accepted) or ``"arch.tag[@v]"``.
        weights: a tag (``"radiologynet"``, ``"radiologynet-mr"``, ``"imagenet"``, with an
            optional ``@version``), a :class:`WeightRecord`, a path to a weights folder,
            ``.safetensors`` file or original checkpoint, or ``None`` for random
            initialisation (the paper's baseline).
        num_classes: output classes; a new head is initialised when it differs from the
            weights'. Defaults to the weights' head (1000 for random initialisation).
        in_chans: input channels; with ``1`` the first conv's RGB filters are summed.
        **kwargs: passed to :func:`timm.create_model` (``features_only``, ``out_indices``,
            ``drop_rate``, ``global_pool``, ...).

    Returns:
        The timm model. ``model.pretrained_cfg`` carries the weight's preprocessing;
        ``model.radiologynet_weights`` is the :class:`WeightRecord` (or ``None``) and
        ``model.radiologynet_arch`` the registry :class:`Architecture`.
    """
    arch, resolved = resolve(name, weights)
    cfg = _pretrained_cfg(arch, resolved)
    model_args = {**arch.model_args_dict}
    if resolved is not None and resolved.config:
        model_args.update(resolved.config.get("model_args") or {})
    model_args.update(kwargs)
    if num_classes is None:
        num_classes = int(cfg.get("num_classes") or 1000)
    model = timm.create_model(
        arch.timm_name,
        pretrained=resolved is not None,
        pretrained_cfg_overlay=cfg,
        num_classes=num_classes,
        in_chans=in_chans,
        **model_args,
    )
    model.radiologynet_weights = resolved.record if resolved is not None else None
    model.radiologynet_arch = arch
    return model
