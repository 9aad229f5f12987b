"""The task plug-in interface of the protocol runner.

A *task* is everything the runner needs besides the grid (models x inits x lrs x runs):
how to build the data, the model, the loss and the metrics, which validation metric picks
the checkpoint, and which optimiser/scheduler the paper used. What a task *is* (names,
aliases, kind, classes, the paper's protocol) lives in the one task registry,
:mod:`radiologynet.data.tasks`; :meth:`TaskSpec.from_info` builds a spec from it and
adds only the protocol's parts. Classification and regression tasks are registered by
this package; other tasks plug in with :func:`register_task` (which records them in the
task registry too). :func:`get_task_spec` looks a spec up by any name or alias.

How to plug a task (the segmentation module does this for ``"luna16"``)::

    from radiologynet.protocol import TaskSpec, TaskData, register_task

    def build_data(request: DataRequest) -> TaskData:
        # request.root: the dataset folder the user passed (--data)
        # request.seed: the split seed (the same for every run of a sweep)
        # request.fraction: None or the training fraction (apply it to train only)
        # request.preprocessing: the model's Preprocessing (input size, mean/std of the init)
        # request.train_seed: the run's seed (for samplers / augmentation inside the dataset)
        return TaskData(train=..., val=..., test=..., num_classes=1)

    def build_model(request: ModelRequest) -> torch.nn.Module:
        # request.arch, request.weights (None = random, a tag or a path),
        # request.data (the TaskData above), request.preprocessing
        ...

    register_task(TaskSpec(
        name="luna16", kind="segmentation", build_data=build_data, build_model=build_model,
        loss=lambda data: MySoftDiceLoss(),            # (outputs, target) -> scalar tensor
        metrics=lambda data: MyDiceIoUMetrics(),       # torchmetrics.Metric: update(outputs,
                                                       #   target); compute() -> {"crop_dice":..}
        monitor="loss", mode="min",                    # checkpoint selection on validation
        optimizer="adam", lrs=("1e-3", "1e-4", "1e-5"),
        resolve_model=my_model_names,                  # optional: names beyond the registry
    ))

Model names: by default a ``--models`` name is a registry architecture (aliases are
normalised, so ``ResNet50`` plans as ``resnet50``). A task whose models are not registry
architectures (``unet-resnet50``, ``unet``) gives ``resolve_model: str -> ModelName``:
the canonical name (results folders), the registry architecture whose weight records give
the input preprocessing (``None``: no zoo backbone) and, optionally, which inits the model
cannot take (those cells of the grid are skipped with a warning).

Data contract: ``train``/``val``/``test`` are map-style ``torch.utils.data.Dataset`` whose
items are ``(inputs, target)``; ``inputs`` is a tensor or a tuple of tensors (the model is
called as ``model(*inputs)``). ``TaskData.batch_transform`` (optional) is applied to each
collated batch on the device as ``batch_transform(inputs, target, train=..., generator=...)
-> (inputs, target)``: the place for scaling, normalisation and augmentation on the GPU.
``test`` may be ``None`` (LUNA16 reports validation only). ``val`` must not be ``None``:
early stopping and checkpoint selection use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from radiologynet.data.tasks import (
    TASK_KINDS,
    TaskInfo,
    canonical_task_name,
    register_task_info,
)
from radiologynet.data.tasks import get_task as get_task_info
from radiologynet.errors import InvalidArgumentError, UnknownTaskError
from radiologynet.train.config import DEFAULT_BATCH_SIZE, OPTIMIZERS, SCHEDULERS, check_lr


@dataclass(frozen=True)
class DataRequest:
    """What ``TaskSpec.build_data`` is asked for."""

    root: Path
    seed: int = 0
    fraction: float | None = None
    preprocessing: Any = (
        None  # radiologynet.models._weights.Preprocessing (or None: the task's own)
    )
    input_size: int | None = None
    in_chans: int = 3
    train_seed: int = 0
    augment: bool = True
    cache_dir: Path | None = None
    #: the task's settings (:attr:`TaskSpec.settings`, with the run's overrides)
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TaskData:
    """The three splits of a task plus what the model and metrics need to know."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    test: torch.utils.data.Dataset | None
    num_classes: int
    class_names: tuple[str, ...] = ()
    batch_transform: Callable[..., tuple[Any, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRequest:
    """What ``TaskSpec.build_model`` is asked for."""

    arch: str
    weights: str | Path | None
    data: TaskData
    in_chans: int = 3
    input_size: int | None = None
    head: str = "pooled"


@dataclass(frozen=True)
class ModelName:
    """How a task reads one ``--models`` name.

    Attributes:
        name: the canonical name, used in results folders (``<model>-<init>-<lr>-run<k>``)
            and passed to ``TaskSpec.build_model`` as ``ModelRequest.arch``.
        arch: the registry architecture whose weight records give the input preprocessing
            (and, for the default models, the weights); ``None`` for a model without a zoo
            backbone (the vanilla U-Net).
        input_size: the input side recorded for a model without ``arch``.
        skip_init: ``weights -> reason | None``: why this model cannot take an init
            (``weights`` as :func:`radiologynet.protocol.runner.parse_init` gives it,
            ``None`` for random); ``None`` when it can. It may raise a
            :class:`radiologynet.errors.RadiologyNetError` for an init that never works.
    """

    name: str
    arch: str | None
    input_size: int = 224
    skip_init: Callable[[str | None], str | None] | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One downstream task of the protocol.

    Attributes:
        name: the ``--task`` name.
        kind: ``multiclass``, ``binary``, ``regression`` or ``segmentation``.
        build_data: ``DataRequest -> TaskData``.
        build_model: ``ModelRequest -> nn.Module``; ``None`` builds the default
            classification/regression model (:func:`radiologynet.train.heads.build_model`).
        loss: ``TaskData -> loss module``; ``None`` picks it from ``kind`` (cross-entropy,
            BCE-with-logits on one logit, MSE).
        metrics: ``TaskData -> torchmetrics.Metric`` whose ``compute()`` returns a dict of
            floats; ``None`` picks it from ``kind``.
        monitor / mode: the validation metric (``"loss"`` or a metric name) that selects the
            best checkpoint and drives early stopping, and whether lower or higher is better.
        optimizer: ``"adamw"`` or ``"adam"`` (both with weight decay 1e-3).
        scheduler: ``None`` or ``"plateau"`` (ReduceLROnPlateau(0.1, patience 3) on val loss).
        lrs: the paper's learning rates for this task (written as given: ``"1e-4"``).
        models: the paper's architectures for this task (a sweep's default).
        batch_size: the authors' batch size.
        description: one line for ``--help`` and the docs.
        resolve_model: ``name -> ModelName`` for model names that are not registry
            architectures; ``None``: every model is a registry architecture.
        settings: task-specific settings and their defaults (LUNA16: samples per epoch,
            crop sizes, augmentation), given to ``build_data`` as ``DataRequest.settings``;
            a run may override them (:func:`with_settings`), never add new ones.
    """

    name: str
    kind: str
    build_data: Callable[[DataRequest], TaskData]
    build_model: Callable[[ModelRequest], torch.nn.Module] | None = None
    loss: Callable[[TaskData], torch.nn.Module] | None = None
    metrics: Callable[[TaskData], Any] | None = None
    monitor: str = "loss"
    mode: str = "min"
    optimizer: str = "adamw"
    scheduler: str | None = None
    lrs: tuple[str, ...] = ("1e-2", "1e-3", "1e-4", "1e-5")
    models: tuple[str, ...] = ()
    batch_size: int = DEFAULT_BATCH_SIZE
    description: str = ""
    resolve_model: Callable[[str], ModelName] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_info(cls, info: TaskInfo | str, **protocol: Any) -> TaskSpec:
        """The spec of a registered task: its kind, description and the paper's
        protocol (learning rates, models, optimiser, scheduler, batch size, checkpoint
        metric, settings) from :mod:`radiologynet.data.tasks`, plus the protocol's
        own parts given as keywords (``build_data``, ``build_model``, ``loss``, ...; any
        field given here wins)."""
        info = get_task_info(info) if isinstance(info, str) else info
        fields: dict[str, Any] = {"name": info.name, "kind": info.kind, "description": info.title}
        if info.paper is not None:
            paper = info.paper
            fields.update(
                lrs=paper.lrs,
                models=paper.models,
                optimizer=paper.optimizer,
                scheduler=paper.scheduler,
                batch_size=paper.batch_size,
                monitor=paper.monitor,
                mode=paper.mode,
                settings=dict(paper.settings),
            )
        fields.update(protocol)
        return cls(**fields)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(
                f"TaskSpec {self.name!r}: kind must be one of {TASK_KINDS}, got {self.kind!r}"
            )
        if self.mode not in ("min", "max"):
            raise ValueError(f"TaskSpec {self.name!r}: mode must be 'min' or 'max'")
        for name, value, choices in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("scheduler", self.scheduler, SCHEDULERS),
        ):
            if value not in choices:
                shown = ", ".join(repr(c) for c in choices)
                raise InvalidArgumentError(
                    f"TaskSpec {self.name!r}: {name} must be one of {shown}, got {value!r}"
                )
        for lr in self.lrs:
            check_lr(lr, f"TaskSpec {self.name!r}: learning rate")


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec, aliases: tuple[str, ...] = ()) -> TaskSpec:
    """Add (or replace) a task; returns it so it can be used as a statement or decorator.

    A task the registry of task metadata (:mod:`radiologynet.data.tasks`) does not
    know is recorded there too, with ``aliases``; a known task keeps its record (its
    aliases are added to it)."""
    known = canonical_task_name(spec.name)
    if known is not None and known != spec.name:
        raise InvalidArgumentError(
            f"task name {spec.name!r} is an alias of {known!r}; "
            "register the task under another name."
        )
    if known is None or aliases:
        info = (
            get_task_info(known)
            if known is not None
            else TaskInfo(
                name=spec.name,
                title=spec.description or spec.name,
                kind=spec.kind,
                classes=(),
                num_outputs=1,
                input_needs_sex=False,
                download_url="",
                expected_tree="",
                load=_spec_loader(spec.name),
            )
        )
        merged = tuple(dict.fromkeys((*info.aliases, *(a.lower() for a in aliases))))
        register_task_info(replace(info, aliases=merged))
    _TASKS[spec.name] = spec
    return spec


def _spec_loader(name: str) -> Callable[..., Any]:
    def load(*args: Any, **kwargs: Any) -> Any:
        raise InvalidArgumentError(
            f"task {name!r} is read by its protocol plug-in (TaskSpec.build_data), not as samples."
        )

    return load


def get_task_spec(name: str) -> TaskSpec:
    """The protocol's spec of the task called ``name`` or one of its aliases (the one
    alias table is :mod:`radiologynet.data.tasks`).

    Raises:
        UnknownTaskError: the message lists the registered tasks.
    """
    key = canonical_task_name(name) or str(name).strip().lower()
    if key in _TASKS:
        return _TASKS[key]
    raise UnknownTaskError(
        f"Unknown task {name!r}. Registered tasks: {', '.join(list_tasks())}. A new task "
        "plugs in with radiologynet.protocol.register_task(TaskSpec(...))."
    )


def with_settings(spec: TaskSpec, **overrides: Any) -> TaskSpec:
    """``spec`` with some of its :attr:`TaskSpec.settings` changed (e.g. a small
    ``samples_per_epoch`` for a CPU run of ``luna16``).

    Raises:
        InvalidArgumentError: a setting the task does not have.
    """
    unknown = sorted(set(overrides) - set(spec.settings))
    if unknown:
        have = ", ".join(sorted(spec.settings)) or "none"
        raise InvalidArgumentError(
            f"task {spec.name!r} has no setting {', '.join(unknown)} (its settings: {have})."
        )
    return replace(spec, settings={**spec.settings, **overrides})


def parse_settings(spec: TaskSpec, items: list[str] | None) -> dict[str, Any]:
    """``["samples_per_epoch=512", ...]`` (``--task-setting``) as overrides of ``spec``'s
    settings, each value read as the type of the setting's default.

    Raises:
        InvalidArgumentError: no ``=``, a setting the task does not have, or a value of
            the wrong type.
    """
    overrides: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in spec.settings:
            have = ", ".join(sorted(spec.settings)) or "none"
            raise InvalidArgumentError(
                f"--task-setting {item!r}: use KEY=VALUE with a setting of task "
                f"{spec.name!r} (its settings: {have})."
            )
        default = spec.settings[key]
        try:
            if isinstance(default, bool):
                if text.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value: Any = text.strip().lower() in ("true", "1", "yes")
            else:
                value = type(default)(text.strip())
        except ValueError:
            raise InvalidArgumentError(
                f"--task-setting {item!r}: {key} takes a {type(default).__name__} "
                f"(default {default!r})."
            ) from None
        overrides[key] = value
    return overrides


def list_tasks() -> list[str]:
    """The names of every registered task."""
    return sorted(_TASKS)


def resolve_model(task: TaskSpec, name: str) -> ModelName:
    """What ``task`` makes of the model name ``name`` (its ``resolve_model`` hook, or a
    registry architecture by default).

    Raises:
        UnknownModelError (or the hook's error): a name the task does not know.
    """
    if task.resolve_model is not None:
        return task.resolve_model(name.strip())
    from radiologynet.models._registry import get_architecture

    arch = get_architecture(name.strip())
    return ModelName(name=arch.name, arch=arch.name, input_size=arch.input_size)
