"""``create_model``: one build path over timm for every architecture and weight."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import timm
import torch.nn as nn

from radiologynet.errors import UnknownWeightsError
from radiologynet.models._folder import check_model_args, check_weights_file
from radiologynet.models._hub import ResolvedWeights, resolve_path
from radiologynet.models._hub import resolve as resolve_weights
from radiologynet.models._registry import Architecture, get_architecture
from radiologynet.models._weights import (
    WeightRecord,
    get_weights,
    looks_like_path,
    resolve_weights_arg,
    split_name,
    timm_pretrained_cfg,
)


def resolve(
    name: str | None, weights: str | os.PathLike | WeightRecord | None = None
) -> tuple[Architecture, ResolvedWeights | None]:
    """Resolve ``name`` (``arch`` or ``arch.tag[@version]``) and ``weights`` to a file.

    Returns the architecture and the resolved weights, or ``None`` for random init.
    With a tag in ``name``, ``weights`` may only name the same weight record (as a tag,
    full name or record); anything else is refused. ``name=None`` takes the architecture
    from ``weights``: a weight record, a full weight name, or a folder whose config.json
    names it.
    """
    if name is None:
        name = _name_from_weights(weights)
    arch_name, tag, _ = split_name(name)
    arch = get_architecture(arch_name)
    if tag is not None:
        named = get_weights(name)
        if weights is not None and resolve_weights_arg(arch, weights) != named:
            raise UnknownWeightsError(
                f"create_model({name!r}, weights={weights!r}): the name already selects "
                f"weights {named.full_name!r}; pass one or the other."
            )
        weights = named
    return arch, resolve_checked(arch, weights)


def _name_from_weights(weights: str | os.PathLike | WeightRecord | None) -> str:
    """The architecture ``weights`` name (for ``create_model(weights=...)`` without one)."""
    if isinstance(weights, WeightRecord):
        return weights.arch
    if isinstance(weights, str) and not looks_like_path(weights):
        return split_name(weights)[0]
    if weights is not None and looks_like_path(weights):
        return resolve_path(Path(os.fspath(weights).strip())).arch.name
    raise UnknownWeightsError(
        f"create_model(weights={weights!r}) without an architecture: pass its name, "
        "e.g. create_model('resnet50', weights=...), or weights that name it (a weight "
        "record, 'resnet50.radiologynet', or a weights folder with config.json)."
    )


def resolve_checked(
    arch: Architecture, weights: str | os.PathLike | WeightRecord | None
) -> ResolvedWeights | None:
    """:func:`radiologynet.models._hub.resolve`, then the file's header checked to be intact and
    of ``arch`` (:func:`radiologynet.models._convert.check_weights_file`) before timm loads it.
    timm's own Hub copies (ImageNet) are left to timm's key filters."""
    resolved = resolve_weights(arch, weights)
    if resolved is not None and resolved.origin != "hub":
        check_weights_file(resolved.file, arch)
    return resolved


def pretrained_cfg_for(arch: Architecture, resolved: ResolvedWeights | None) -> dict[str, Any]:
    """The timm ``pretrained_cfg`` overlay that loads ``resolved`` into ``arch``'s timm
    model (or describes random initialisation)."""
    if resolved is None:
        return {**timm_pretrained_cfg(arch), "tag": "random"}
    config = resolved.config or {}
    base = config.get("pretrained_cfg") if resolved.record is None else None
    if base is not None:  # timm reads the class names from config.json's top level
        labels = {k: config[k] for k in ("label_names", "label_descriptions") if k in config}
        base = {**base, **labels}
    num_classes = config.get("num_classes")
    if resolved.record is None and num_classes is None:
        num_classes = _head_rows(resolved.file, arch)
    cfg = timm_pretrained_cfg(arch, resolved.record, base=base, num_classes=num_classes)
    cfg["file"] = str(resolved.file)
    return cfg


def _head_rows(file: Path, arch: Architecture) -> int:
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as fh:
        key = f"{arch.classifier}.weight"
        if key in fh.keys():
            return int(fh.get_slice(key).get_shape()[0])
    return 0


def create_model(
    name: str | None = None,
    weights: str | os.PathLike | WeightRecord | None = None,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    trust_config_model_args: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registry architecture as a plain timm model, optionally with weights.

    Args:
        name: an architecture (``"resnet50"``, timm names accepted) or ``"arch.tag[@v]"``;
            ``None`` takes it from ``weights`` (a record, a full weight name, or a weights
            folder whose config.json names it).
        weights: a tag (``"radiologynet"``, ``"radiologynet-mr"``, ``"imagenet"``, with an
            optional ``@version``), a :class:`WeightRecord`, a path to a weights folder,
            ``.safetensors`` file or original checkpoint, or ``None`` for random
            initialisation (the paper's baseline).
        num_classes: output classes; a new head is initialised when it differs from the
            weights'. Defaults to the weights' head (1000 for random initialisation).
        in_chans: input channels; with ``1`` the first conv's RGB filters are summed.
        trust_config_model_args: build with the ``model_args`` of the weights folder's
            config.json even where they differ from the registry's (which changes the
            network); refused otherwise.
        **kwargs: passed to :func:`timm.create_model` (``features_only``, ``out_indices``,
            ``drop_rate``, ``global_pool``, ...).

    Returns:
        The timm model. ``model.pretrained_cfg`` carries the weight's preprocessing;
        ``model.radiologynet_weights`` is the :class:`WeightRecord` (or ``None``) and
        ``model.radiologynet_arch`` the registry :class:`Architecture`.
    """
    arch, resolved = resolve(name, weights)
    cfg = pretrained_cfg_for(arch, resolved)
    model_args = {**arch.model_args_dict}
    if resolved is not None:
        model_args.update(
            check_model_args(
                resolved.config, arch, resolved.file.parent, allow=trust_config_model_args
            )
        )
    model_args.update(kwargs)
    if num_classes is None:
        num_classes = int(cfg.get("num_classes") or 1000)
    elif num_classes != cfg.get("num_classes"):  # a new head: the names were the old one's
        cfg = {k: v for k, v in cfg.items() if k not in ("label_names", "label_descriptions")}
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
