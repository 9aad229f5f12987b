"""The task plug-in interface of the protocol runner.

A *task* is everything the runner needs besides the grid (models x inits x lrs x runs):
how to build the data, the model, the loss and the metrics, which validation metric picks
the checkpoint, and which optimiser/scheduler the paper used. Classification and
regression tasks are registered by this package; other tasks plug in with
:func:`register_task`.

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
                                                       #   target); compute() -> {"dice":..}
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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from radiologynet.errors import UnknownTaskError

TASK_KINDS = ("multiclass", "binary", "regression", "segmentation")


@dataclass(frozen=True)
class DataRequest:
    """What ``TaskSpec.build_data`` is asked for."""

    root: Path
    seed: int = 0
    fraction: float | None = None
    preprocessing: Any = None  # radiologynet.weights.Preprocessing (or None: the task's own)
    input_size: int | None = None
    in_chans: int = 3
    train_seed: int = 0
    augment: bool = True
    cache_dir: Path | None = None


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
    batch_size: int = 32
    description: str = ""
    resolve_model: Callable[[str], ModelName] | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"TaskSpec {self.name!r}: kind must be one of {TASK_KINDS}, "
                             f"got {self.kind!r}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"TaskSpec {self.name!r}: mode must be 'min' or 'max'")
        if self.optimizer not in ("adamw", "adam"):
            raise ValueError(f"TaskSpec {self.name!r}: optimizer must be 'adamw' or 'adam'")


_TASKS: dict[str, TaskSpec] = {}
_ALIASES: dict[str, str] = {}


def register_task(spec: TaskSpec, aliases: tuple[str, ...] = ()) -> TaskSpec:
    """Add (or replace) a task; returns it so it can be used as a statement or decorator."""
    _TASKS[spec.name] = spec
    for alias in aliases:
        _ALIASES[alias] = spec.name
    return spec


def _load_builtin() -> None:
    # The built-in tasks live in their own module; importing it registers them. Plug-ins
    # outside this package (segmentation) register on import of their module.
    from radiologynet.protocol import builtin  # noqa: F401
    from radiologynet.segmentation import task  # noqa: F401  (the LUNA16 plug-in)


def get_task(name: str) -> TaskSpec:
    """The registered task called ``name``.

    Raises:
        UnknownTaskError: the message lists the registered tasks.
    """
    _load_builtin()
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key in _TASKS:
        return _TASKS[key]
    raise UnknownTaskError(
        f"Unknown task {name!r}. Registered tasks: {', '.join(list_tasks())}. A new task "
        "plugs in with radiologynet.protocol.register_task(TaskSpec(...))."
    )


def list_tasks() -> list[str]:
    """The names of every registered task."""
    _load_builtin()
    return sorted(_TASKS)


def resolve_model(task: TaskSpec, name: str) -> ModelName:
    """What ``task`` makes of the model name ``name`` (its ``resolve_model`` hook, or a
    registry architecture by default).

    Raises:
        UnknownModelError (or the hook's error): a name the task does not know.
    """
    if task.resolve_model is not None:
        return task.resolve_model(name.strip())
    from radiologynet.registry import get_architecture

    arch = get_architecture(name.strip())
    return ModelName(name=arch.name, arch=arch.name, input_size=arch.input_size)

