"""The task plug-in interface of the protocol runner.

A *task* is everything the runner needs besides the grid (models x inits x lrs x runs):
how to build the data, the model, the loss and the metrics, which validation metric picks
the checkpoint, and which optimiser/scheduler to train with. What a task *is* (names,
aliases, kind, classes, its loader, the paper's protocol) is its record in the task
registry, :mod:`radiologynet.data.tasks`; a :class:`TaskSpec` holds that record
(``spec.info``) and adds only the protocol's parts. :func:`register_task` registers a
spec (and its record, when the registry does not hold it yet); :func:`get_task_spec`
looks a spec up by any name or alias. The plug-ins are :mod:`radiologynet.protocol.tasks`.

How to plug a task (:mod:`radiologynet.protocol.tasks.luna16` does this for ``"luna16"``)::

    from radiologynet.data.tasks import PaperProtocol, TaskInfo
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

    info = TaskInfo(
        name="mytask", title="My nodules", kind="segmentation", classes=("nodule",),
        num_outputs=1, input_needs_sex=False, download_url="https://...",
        expected_tree="DIR/...", load=my_reader,       # my_reader(root, seed=, fraction=)
        aliases=("mine",),
    )
    register_task(TaskSpec(
        info, build_data, build_model=build_model,
        loss=lambda data: MySoftDiceLoss(),            # (outputs, target) -> scalar tensor
        metrics=lambda data: MyDiceIoUMetrics(),       # torchmetrics.Metric: update(outputs,
                                                       #   target); compute() -> {"crop_dice":..}
        protocol=PaperProtocol(                        # None: info.paper, or the paper's
            models=("unet-resnet50",),                 #   shared protocol
            lrs=("1e-3", "1e-4", "1e-5"), optimizer="adam",
            monitor="crop_dice", mode="max",           # checkpoint selection on validation
        ),
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
    TASKS,
    PaperProtocol,
    TaskInfo,
    canonical_task_name,
    register_task_info,
)
from radiologynet.errors import InvalidArgumentError, UnknownTaskError
from radiologynet.train.config import OPTIMIZERS, SCHEDULERS, check_lr


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
    #: how training augmentation is drawn: ``"image"`` or ``"batch"`` (the authors')
    augment_draw: str = "image"


@dataclass
class TaskData:
    """The three splits of a task plus what the model and metrics need to know.

    ``extra_val``: more validation sets scored every epoch, ``{name: (dataset, metrics)}``
    (:func:`radiologynet.train.fit`'s ``extra_val``; their values are ``<name>_<key>``),
    e.g. LUNA16's full slices, whose recall the authors stopped on.
    """

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    test: torch.utils.data.Dataset | None
    num_classes: int
    class_names: tuple[str, ...] = ()
    batch_transform: Callable[..., tuple[Any, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    extra_val: dict[str, tuple[torch.utils.data.Dataset, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRequest:
    """What ``TaskSpec.build_model`` is asked for."""

    arch: str
    weights: str | Path | None
    data: TaskData
    in_chans: int = 3
    input_size: int | None = None
    head: str = "pooled"
    #: how random weights and new heads start: ``"timm"`` or ``"torchvision"`` (the
    #: authors'; :func:`radiologynet.create_model`)
    init_scheme: str = "timm"


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
    """One downstream task of the protocol: its record in the task registry and the
    protocol's own parts.

    Attributes:
        info: the task's record (:class:`radiologynet.data.tasks.TaskInfo`: name, kind,
            title, classes, loader, aliases, the paper's protocol).
        build_data: ``DataRequest -> TaskData``.
        build_model: ``ModelRequest -> nn.Module``; ``None`` builds the default
            classification/regression model (:func:`radiologynet.train.heads.build_model`).
        loss: ``TaskData -> loss module``; ``None`` picks it from ``kind`` (cross-entropy,
            BCE-with-logits on one logit, MSE).
        metrics: ``TaskData -> torchmetrics.Metric`` whose ``compute()`` returns a dict of
            floats; ``None`` picks it from ``kind``.
        resolve_model: ``name -> ModelName`` for model names that are not registry
            architectures; ``None``: every model is a registry architecture.
        protocol: how the runner trains the task (a
            :class:`~radiologynet.data.tasks.PaperProtocol`: learning rates, models,
            optimiser, scheduler, batch size, checkpoint metric and mode, settings);
            ``None``: ``info.paper`` (the paper's own record), or for a task the paper did
            not have, the paper's shared protocol without default models.

    The protocol's values read as attributes: ``lrs``, ``models``, ``optimizer``,
    ``scheduler``, ``batch_size``, ``monitor``/``mode`` (the validation value that picks
    the checkpoint and drives early stopping, lower or higher better) and ``settings``
    (given to ``build_data`` as ``DataRequest.settings``; a run may override them,
    :func:`with_settings`, never add new ones).
    """

    info: TaskInfo
    build_data: Callable[[DataRequest], TaskData]
    build_model: Callable[[ModelRequest], torch.nn.Module] | None = None
    loss: Callable[[TaskData], torch.nn.Module] | None = None
    metrics: Callable[[TaskData], Any] | None = None
    resolve_model: Callable[[str], ModelName] | None = None
    protocol: PaperProtocol | None = None

    def __post_init__(self) -> None:
        _check_runnable(self.name, self.training)

    @property
    def training(self) -> PaperProtocol:
        """How the runner trains the task: :attr:`protocol`, else ``info.paper``, else
        the paper's shared protocol without default models."""
        return self.protocol or self.info.paper or _SHARED_PROTOCOL

    @property
    def description(self) -> str:
        """One line for ``--help``: the task's title."""
        return self.info.title

    @property
    def name(self) -> str:
        """The ``--task`` name."""
        return self.info.name

    @property
    def kind(self) -> str:
        """``multiclass``, ``binary``, ``regression`` or ``segmentation``."""
        return self.info.kind

    @property
    def lrs(self) -> tuple[str, ...]:
        """The learning rates of a sweep (as written: ``"1e-4"``)."""
        return self.training.lrs

    @property
    def models(self) -> tuple[str, ...]:
        """The architectures of a sweep."""
        return self.training.models

    @property
    def optimizer(self) -> str:
        """``"adamw"`` or ``"adam"``."""
        return self.training.optimizer

    @property
    def scheduler(self) -> str | None:
        """``None`` or ``"plateau"`` (ReduceLROnPlateau(0.1, patience 3) on val loss)."""
        return self.training.scheduler

    @property
    def batch_size(self) -> int:
        """The batch size when the run gives none."""
        return self.training.batch_size

    @property
    def monitor(self) -> str:
        """The validation value that picks the checkpoint (``"loss"`` or a metric)."""
        return self.training.monitor

    @property
    def mode(self) -> str:
        """``"min"`` or ``"max"``: whether lower or higher :attr:`monitor` is better."""
        return self.training.mode

    @property
    def stop_monitor(self) -> str | None:
        """The validation value early stopping watches when it is not :attr:`monitor`
        (``None``: :attr:`monitor`)."""
        return self.training.stop_monitor

    @property
    def stop_mode(self) -> str | None:
        """``"min"`` or ``"max"`` for :attr:`stop_monitor` (``None``: :attr:`mode`)."""
        return self.training.stop_mode

    @property
    def settings(self) -> Mapping[str, Any]:
        """The task-specific settings and their values (LUNA16: samples per epoch ...)."""
        return self.training.settings


def _check_runnable(name: str, protocol: PaperProtocol) -> None:
    """Refuse a protocol the trainer cannot run (before a sweep starts, not at run time)."""
    if protocol.mode not in ("min", "max") or protocol.stop_mode not in (None, "min", "max"):
        raise InvalidArgumentError(f"TaskSpec {name!r}: mode and stop_mode must be 'min' or 'max'")
    for field_name, value, choices in (
        ("optimizer", protocol.optimizer, OPTIMIZERS),
        ("scheduler", protocol.scheduler, SCHEDULERS),
    ):
        if value not in choices:
            shown = ", ".join(repr(c) for c in choices)
            raise InvalidArgumentError(
                f"TaskSpec {name!r}: {field_name} must be one of {shown}, got {value!r}"
            )
    for lr in protocol.lrs:
        check_lr(lr, f"TaskSpec {name!r}: learning rate")


_TASKS: dict[str, TaskSpec] = {}
#: How a task the paper did not have trains unless its spec says otherwise.
_SHARED_PROTOCOL = PaperProtocol(models=())


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add (or replace) a task; returns it so it can be used as a statement or decorator.

    Its record (``spec.info``, with its aliases) joins the task registry
    (:func:`radiologynet.data.tasks.register_task_info`) unless the registry holds it already.

    Raises:
        InvalidArgumentError: the name or an alias already names another task.
    """
    if TASKS.get(spec.name) is not spec.info:
        register_task_info(spec.info)
    _TASKS[spec.name] = spec
    return spec


def get_task_spec(name: str) -> TaskSpec:
    """The protocol's spec of the task called ``name`` or one of its aliases (the alias
    table is :mod:`radiologynet.data.tasks`'s).

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
    return replace(spec, protocol=replace(spec.training, settings={**spec.settings, **overrides}))


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
