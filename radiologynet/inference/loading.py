"""Loading a model to use it: :func:`load` resolves any weights the library knows (a run
folder, its ``model/``, a weights folder of any model type, a ``.safetensors`` file or
original checkpoint, a zoo name) to an eval-mode model with its preprocessing, class
names and task kind. Predict, embed and export all start here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radiologynet.errors import CheckpointFormatError, InvalidArgumentError, WeightsNotFoundError
from radiologynet.models._builder import create_model
from radiologynet.models._folder import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    model_type,
    read_config,
    sha256_file,
)
from radiologynet.models._hub import run_weights_folder
from radiologynet.models._preprocessing import Preprocessing
from radiologynet.models._registry import get_architecture
from radiologynet.models._weights import _is_weight_name, looks_like_path, split_name
from radiologynet.train.runs import MODEL_DIR
from radiologynet.transforms.pipeline import model_in_chans, read_preprocessing

#: What a loaded model computes (``LoadedModel.task_kind``).
TASK_KINDS = ("multiclass", "binary", "multilabel", "regression", "segmentation")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference and what it is.

    Attributes:
        model: the network, in eval mode, on the requested device.
        preprocessing: the input it expects (:class:`~radiologynet.Preprocessing`);
            ``transforms.for_weights(loaded.preprocessing, in_chans=loaded.in_chans)``
            builds it.
        label_names: one name per output (``None`` when the weights name none).
        task_kind: one of :data:`TASK_KINDS`.
        arch: the zoo architecture of the network (or of its encoder); ``None`` for the
            vanilla U-Net.
        weights_tag: what the weights are: a zoo weight's full name
            (``resnet50.radiologynet@1``), ``"random"``, or the folder's name.
        sha256: the weights file's sha256 (``""`` for random initialisation).
        source: the folder or file loaded, or the zoo name.
        in_chans: the input channels the network takes.
    """

    model: nn.Module
    preprocessing: Preprocessing
    label_names: tuple[str, ...] | None
    task_kind: str
    arch: str | None
    weights_tag: str
    sha256: str
    source: Path | str
    in_chans: int = 3

    def class_names(self) -> tuple[str, ...]:
        """One name per class: the label names, or ``"0"``, ``"1"``, ... without them. A
        binary task has two classes (negative first) for its one output."""
        if self.label_names:
            return self.label_names
        if self.task_kind == "binary":
            return ("0", "1")
        outputs = int(getattr(self.model, "num_classes", 0) or 0)
        return tuple(str(i) for i in range(outputs))


def load(
    weights: str | os.PathLike[str],
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load a model for inference.

    Args:
        weights: a run folder (made by ``radiologynet finetune``/``benchmark``), its
            ``model/`` folder, any weights folder the library writes (zoo backbone,
            bone-age regressor, U-Net), a ``.safetensors`` file or original checkpoint,
            or a zoo name (``"resnet50.radiologynet"``, ``"resnet50"`` for random
            initialisation) with ``num_classes`` for a new head.
        arch: the architecture, for a file or folder that does not name it; refused when
            it differs from the one the folder names.
        num_classes: a new head of this size (zoo names and backbone folders only).
        device: where the model goes.

    Returns:
        A :class:`LoadedModel` (model in eval mode).

    Raises:
        WeightsNotFoundError / CheckpointFormatError / UnknownModelError /
        UnknownWeightsError: weights that do not exist or cannot be loaded; the message
            names them and what to pass instead.
    """
    path = Path(weights).expanduser() if isinstance(weights, (str, os.PathLike)) else None
    if path is not None and path.exists():
        path = run_weights_folder(path) if path.is_dir() else path
        config = read_config(path) if path.is_dir() else None
        kind = model_type(config, path) if config else "timm"
        if kind == "timm":
            loaded = _load_backbone(path, config, arch, num_classes)
        else:
            if num_classes is not None:
                raise InvalidArgumentError(
                    f"num_classes={num_classes}: {path} holds a whole trained "
                    f"{(config or {}).get('task_model') or kind}; its head cannot be replaced"
                )
            loaded = _load_task_model(path, config or {}, kind)
    elif isinstance(weights, str) and (_is_weight_name(weights) or not looks_like_path(weights)):
        loaded = _load_zoo(weights, arch, num_classes)
    else:
        raise WeightsNotFoundError(
            f"No such file or folder: {weights}. Pass a run folder, a weights folder, a "
            ".safetensors file, or a zoo name such as resnet50.radiologynet (see "
            "`radiologynet list`)."
        )
    loaded.model.to(device).eval()
    return loaded


def _zoo_kind(num_outputs: int, labels: tuple[str, ...] | None) -> str:
    return "binary" if num_outputs == 1 and not (labels and len(labels) > 1) else "multiclass"


def _labels(config: dict[str, Any] | None, model: nn.Module) -> tuple[str, ...] | None:
    names = (config or {}).get("label_names") or (model.pretrained_cfg or {}).get("label_names")
    return tuple(str(n) for n in names) if names else None


def _fitting(labels: tuple[str, ...] | None, outputs: int, kind: str) -> tuple[str, ...] | None:
    """The label names when they fit the head: one per output, or a binary task's two."""
    if labels and (len(labels) == outputs or (kind == "binary" and len(labels) == 2)):
        return labels
    return None


def _recorded_kind(config: dict[str, Any] | None) -> str | None:
    meta = (config or {}).get("radiologynet")
    kind = meta.get("task_kind") if isinstance(meta, dict) else None
    kind = kind or (config or {}).get("kind")
    return str(kind) if kind in TASK_KINDS else None


def _load_backbone(
    path: Path, config: dict[str, Any] | None, arch: str | None, num_classes: int | None
) -> LoadedModel:
    named = get_architecture(str(config["architecture"])).name if config else None
    if arch is not None and named is not None and get_architecture(arch).name != named:
        raise InvalidArgumentError(
            f"arch={arch!r}, but {path / CONFIG_NAME} says the weights are {named}; leave "
            "arch out or pass the weights of the architecture you name."
        )
    name = named or arch
    if name is None:
        raise WeightsNotFoundError(
            f"{path} does not name its architecture (no config.json): pass the "
            "architecture, e.g. --arch resnet50 / load(..., arch='resnet50')."
        )
    model = create_model(name, weights=path, num_classes=num_classes)
    file = Path(model.pretrained_cfg.get("file") or (path / WEIGHTS_NAME))
    labels = _labels(config, model) if num_classes is None else None
    outputs = int(model.num_classes)
    kind = _recorded_kind(config) if num_classes is None else None
    meta = (config or {}).get("radiologynet") or {}
    return LoadedModel(
        model=model,
        preprocessing=read_preprocessing(model),
        label_names=_fitting(labels, outputs, kind or _zoo_kind(outputs, labels)),
        task_kind=kind or _zoo_kind(outputs, labels),
        arch=get_architecture(name).name,
        weights_tag=str(meta.get("weights") or _folder_tag(path)),
        sha256=sha256_file(file),
        source=path,
        in_chans=model_in_chans(model),
    )


def _load_zoo(name: str, arch: str | None, num_classes: int | None) -> LoadedModel:
    arch_name, tag, _ = split_name(name)
    if arch is not None and get_architecture(arch).name != get_architecture(arch_name).name:
        raise InvalidArgumentError(f"arch={arch!r} but the weights {name!r} are {arch_name}")
    model = create_model(name, num_classes=num_classes)
    record = model.radiologynet_weights
    file = model.pretrained_cfg.get("file")
    labels = _labels(None, model) if num_classes is None else None
    outputs = int(model.num_classes)
    return LoadedModel(
        model=model,
        preprocessing=read_preprocessing(model),
        label_names=_fitting(labels, outputs, _zoo_kind(outputs, labels)),
        task_kind=_zoo_kind(outputs, labels),
        arch=model.radiologynet_arch.name,
        weights_tag=record.full_name if record is not None else "random" if tag is None else tag,
        sha256=sha256_file(file) if file and Path(file).is_file() else "",
        source=name,
        in_chans=model_in_chans(model),
    )


def _load_task_model(path: Path, config: dict[str, Any], kind: str) -> LoadedModel:
    """A whole task model: the bone-age regressor, or an encoder/vanilla U-Net."""
    task_kind = _recorded_kind(config) or ("segmentation" if kind == "vanilla_unet" else None)
    if config.get("task_model") == "BoneAgeRegressor":
        model, in_chans = _bone_age_regressor(path, config)
        task_kind = "regression"
    elif kind == "vanilla_unet" or config.get("decoder"):
        from radiologynet.models.unet import load_unet

        model = load_unet(path)
        in_chans = int(getattr(model, "in_chans", 0) or _first_conv_channels(model))
        task_kind = "segmentation"
    else:
        raise CheckpointFormatError(
            f"{path / CONFIG_NAME} describes a {config.get('task_model')!r} "
            f"({task_kind or kind}), which radiologynet cannot load for inference."
        )
    cfg = config.get("pretrained_cfg") or (config.get("radiologynet") or {}).get(
        "pretrained_cfg", {}
    )
    return LoadedModel(
        model=model,
        preprocessing=Preprocessing.from_timm_cfg(cfg),
        label_names=tuple(config["label_names"]) if config.get("label_names") else None,
        task_kind=str(task_kind),
        arch=config.get("encoder"),
        weights_tag=_folder_tag(path),
        sha256=sha256_file(path / WEIGHTS_NAME),
        source=path,
        in_chans=in_chans,
    )


def _folder_tag(path: Path) -> str:
    """A user's weights by the name of their folder (a run's, for ``RUN/model``)."""
    folder = path if path.is_dir() else path.parent
    return folder.parent.name if folder.name == MODEL_DIR else folder.name


def _first_conv_channels(model: nn.Module) -> int:
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return int(conv.in_channels)


def _bone_age_regressor(path: Path, config: dict[str, Any]) -> tuple[nn.Module, int]:
    """The bone-age regressor of a run folder, rebuilt from its tensors: the encoder's
    input channels and whether its head is pooled or the paper's flattened map."""
    from safetensors.torch import load_file

    from radiologynet.train.heads import build_model, pooled_features

    arch = get_architecture(str(config.get("encoder")))
    state = load_file(str(path / WEIGHTS_NAME))
    first = state.get(f"backbone.{arch.first_conv}.weight")
    dense = state.get("regressor.0.weight")
    if first is None or dense is None:
        raise CheckpointFormatError(f"{path / WEIGHTS_NAME} does not hold a {arch.name} regressor.")
    in_chans = int(first.shape[1])
    pre = Preprocessing.from_timm_cfg(config.get("pretrained_cfg") or {})
    with torch.device("meta"):  # the width only
        pooled = pooled_features(create_model(arch.name, num_classes=0, in_chans=in_chans))
    head = "pooled" if dense.shape[1] == pooled + 128 else "paper"
    model = build_model(
        arch.name,
        None,
        kind="regression",
        num_classes=1,
        in_chans=in_chans,
        head=head,
        input_size=pre.input_size,
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointFormatError(
            f"{path / WEIGHTS_NAME} does not fit a {arch.name} bone-age regressor: "
            f"{str(err).splitlines()[0]}"
        ) from err
    model.pretrained_cfg = {**pre.timm_cfg(), "file": str(path / WEIGHTS_NAME)}
    return model, in_chans
