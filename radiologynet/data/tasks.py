"""The registry of task metadata: what each downstream task predicts, the names it
answers to, how to load it (its ``load``), and how the protocol trains it in paper mode
(the code's constants, :class:`PaperProtocol`).

Everything above this layer reads it: a :class:`radiologynet.protocol.TaskSpec` holds a
task's record and adds only the protocol's own parts (how to build the data, the model,
the loss and the metrics); the report matches the paper's published numbers through its
aliases (the paper's ``pba`` and ``luna``). What the paper and the authors' scripts
themselves say, with their sources, is kept apart from these constants
(:func:`radiologynet.paper.protocol_sources`); docs/protocol.md sets the two side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from radiologynet.data.splits import Task
from radiologynet.errors import InvalidArgumentError, UnknownTaskError
from radiologynet.paper import PAPER_INITS

#: What a task predicts.
TASK_KINDS = ("multiclass", "binary", "regression", "segmentation")


@dataclass(frozen=True)
class PaperProtocol:
    """How the protocol trains one task in paper mode: the code's constants, meant to be
    the paper's and the authors' settings (docs/protocol.md compares them with what those
    sources say, :func:`radiologynet.paper.protocol_sources`). A protocol task that is not
    the paper's (the ``folder`` task, a variant such as
    ``luna16-slices``) states how it trains in the same record
    (:attr:`radiologynet.protocol.TaskSpec.protocol`); its defaults are the paper's
    shared protocol.

    Attributes:
        models: the architectures it evaluated (``--models`` names).
        lrs: its learning rates, as written (``"1e-4"``).
        optimizer: ``"adamw"`` or ``"adam"``.
        weight_decay: the optimiser's weight decay.
        scheduler: ``None`` or ``"plateau"`` (ReduceLROnPlateau(0.1, patience 3)).
        batch_size / max_epochs / patience / runs: as in the authors' scripts.
        monitor / mode: the validation metric that picked the reported checkpoint.
        stop_monitor / stop_mode: the validation value early stopping watched when it was
            not ``monitor`` (LUNA16: the full-slice recall); ``None``: ``monitor``.
        inits: the initialisations compared.
        settings: task-specific settings (LUNA16: samples per epoch, crop sizes, ...).
    """

    models: tuple[str, ...]
    lrs: tuple[str, ...] = ("1e-2", "1e-3", "1e-4", "1e-5")
    optimizer: str = "adamw"
    weight_decay: float | None = 1e-3
    scheduler: str | None = None
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 10
    runs: int = 5
    monitor: str = "loss"
    mode: str = "min"
    stop_monitor: str | None = None
    stop_mode: str | None = None
    inits: tuple[str, ...] = PAPER_INITS
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskInfo(Task):
    """One downstream task in the registry: a :class:`radiologynet.data.splits.Task`
    (what it predicts, how to load it) with its other names and the paper's protocol.

    Attributes:
        aliases: other names accepted for it (lower case; the paper's own names too).
        paper: how the paper trained it (``None`` for a task the paper did not have).

    ``kind`` is one of :data:`TASK_KINDS`; ``num_outputs`` 0 means "read from the data"
    (the ``folder`` task). ``load`` returns :class:`~radiologynet.data.splits.Splits` for
    classification and regression, a :class:`radiologynet.data.benchmarks.luna16.LUNA16`
    for ``luna16``.
    """

    aliases: tuple[str, ...] = ()
    paper: PaperProtocol | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {TASK_KINDS}")

    @classmethod
    def from_loader(
        cls, task: Task, *, aliases: tuple[str, ...] = (), paper: PaperProtocol | None = None
    ) -> TaskInfo:
        """The registry record of a loader module's :class:`~radiologynet.data.splits.Task`."""
        base = {f.name: getattr(task, f.name) for f in fields(Task)}
        return cls(**base, aliases=aliases, paper=paper)


#: LUNA16's task-specific paper-mode settings.
LUNA16_PAPER_SETTINGS: Mapping[str, Any] = MappingProxyType(
    {
        "samples_per_epoch": 300_000,
        "crop_size": 96,
        "train_crop": 64,
        "val_crop": 64,
        "validation": "crops",
        "mask_method": "paper",
        "nodules": "auto",
        "augment_flip": True,
        "augment_offset": 0.0,
        "augment_scale": 0.2,
        "augment_rotate": True,
        "augment_noise_hu": 25.0,
    }
)


def _paper_protocols() -> dict[str, PaperProtocol]:
    return {
        "btmr": PaperProtocol(models=("resnet50", "mobilenet_v3_small")),
        "covid19": PaperProtocol(models=("mobilenet_v3_large", "resnet18")),
        "boneage": PaperProtocol(
            models=("efficientnet_b3", "inception_v3"),
            optimizer="adam",
            scheduler="plateau",
        ),
        "grazpedwri": PaperProtocol(models=("densenet121", "resnet34")),
        "luna16": PaperProtocol(
            models=("unet-resnet50", "unet-vgg16", "unet-efficientnet_b4", "unet"),
            lrs=("1e-3", "1e-4", "1e-5"),
            optimizer="adam",
            monitor="crop_iou",
            mode="max",
            stop_monitor="slices_pooled_recall",
            stop_mode="max",
            settings=LUNA16_PAPER_SETTINGS,
        ),
    }


def _load_luna16(root: Any, *, seed: int = 0, fraction: float | None = None, **options: Any) -> Any:
    """:func:`radiologynet.data.benchmarks.luna16.load`, imported when used (it needs
    torch and SimpleITK)."""
    from radiologynet.data.benchmarks.luna16 import load

    return load(root, seed=seed, fraction=fraction, **options)


def _builtin() -> dict[str, TaskInfo]:
    from radiologynet.data.benchmarks import boneage, btmr, covid19, folder, grazpedwri

    paper = _paper_protocols()
    aliases = {
        "btmr": ("brain-tumor-mri",),
        "covid19": ("covid", "covid-19"),
        "boneage": ("pba", "bone-age", "bone_age", "rsna-boneage"),
        "grazpedwri": ("grazpedwri-dx", "graz"),
    }
    records = {
        m.TASK.name: TaskInfo.from_loader(
            m.TASK, aliases=aliases[m.TASK.name], paper=paper[m.TASK.name]
        )
        for m in (btmr, covid19, boneage, grazpedwri)
    }
    records["luna16"] = TaskInfo(
        name="luna16",
        title="LUNA16",
        kind="segmentation",
        classes=("nodule",),
        num_outputs=1,
        input_needs_sex=False,
        download_url="https://luna16.grand-challenge.org/Download/",
        expected_tree="DIR/\n  subset0..subset9/<seriesuid>.mhd (+ .raw)\n  annotations.csv\n",
        load=_load_luna16,
        aliases=("luna",),
        paper=paper["luna16"],
    )
    records["folder"] = TaskInfo.from_loader(folder.TASK)
    return records


_REGISTRY: dict[str, TaskInfo] = _builtin()
_ALIASES: dict[str, str] = {a: t.name for t in _REGISTRY.values() for a in t.aliases}
#: Every registered task by canonical name (read-only view; :func:`register_task_info`
#: adds one).
TASKS: Mapping[str, TaskInfo] = MappingProxyType(_REGISTRY)


def canonical_task_name(name: str) -> str | None:
    """The canonical name of ``name`` (a name or an alias, any case); ``None`` if unknown."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in _REGISTRY else None


def get_task(name: str) -> TaskInfo:
    """The task called ``name`` or one of its aliases (``"covid"``, ``"pba"``, ``"luna"``).

    Raises:
        UnknownTaskError: the message lists the registered tasks.
    """
    key = canonical_task_name(name)
    if key is None:
        raise UnknownTaskError(
            f"Unknown task {name!r}; choose one of: {', '.join(_REGISTRY)} (aliases: "
            f"{', '.join(sorted(_ALIASES))})."
        )
    return _REGISTRY[key]


def register_task_info(info: TaskInfo) -> TaskInfo:
    """Add (or replace) a task record and its aliases; returns it.

    Raises:
        InvalidArgumentError: its name is an alias of another task, or an alias already
            names another task.
    """
    owner = _ALIASES.get(info.name)
    if owner is not None and owner != info.name:
        raise InvalidArgumentError(
            f"task name {info.name!r} is an alias of {owner!r}; register the task under "
            "another name."
        )
    for alias in info.aliases:
        owner = _ALIASES.get(alias)
        if (owner is not None and owner != info.name) or (
            alias in _REGISTRY and alias != info.name
        ):
            raise InvalidArgumentError(
                f"task {info.name!r}: alias {alias!r} already names task "
                f"{owner or alias!r}; choose another alias."
            )
    _REGISTRY[info.name] = info
    for alias in info.aliases:
        _ALIASES[alias] = info.name
    return info
