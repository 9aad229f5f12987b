"""``TrainConfig``: the training settings of one run, validated once, recorded with it.

:func:`radiologynet.train.fit` trains with one; the ``finetune`` and ``benchmark`` commands
and :func:`radiologynet.protocol.run` build one (the commands from their arguments, in
:func:`radiologynet.cli.options.run_configuration`) and write it into each run's
``result.json`` and checkpoint, so a run folder always says how it was made and a rerun
with a different configuration is refused instead of mixing the two
(:func:`config_changes`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from radiologynet.errors import InvalidArgumentError, InvalidSettingError

if TYPE_CHECKING:  # torch loads when a device is resolved, not for --help
    import torch

#: The epoch budget and batch size when neither the caller nor the task gives one.
DEFAULT_MAX_EPOCHS = 200
#: The epoch budget of the paper's resource-limited runs (a training fraction).
FRACTION_MAX_EPOCHS = 10
DEFAULT_BATCH_SIZE = 32
OPTIMIZERS = ("adamw", "adam")
SCHEDULERS = (None, "plateau")
PRECISIONS = ("auto", "fp32", "bf16")
HEADS = ("pooled", "paper")
#: The paper's choices: ``radiologynet benchmark``'s defaults (and ``finetune --paper``'s);
#: ``head`` is the protocol's (:class:`radiologynet.protocol.RunSettings`).
PAPER_DEFAULTS = {"head": "paper", "precision": "fp32"}
#: ``finetune``'s defaults on a user's own data (docs/fine-tuning.md says why), also
#: ``TrainConfig``'s and ``RunSettings``'.
FINETUNE_DEFAULTS = {"head": "pooled", "precision": "auto"}

#: The ``TrainConfig`` fields that may differ between a run and its resumption: where and
#: how fast it runs, not what it computes.
RESUMABLE_FIELDS = frozenset(
    {
        "device",
        "num_workers",
        "progress",
        "eval_batch_size",
        "checkpoint_interval_s",
        "keep_checkpoint",
        "resume",
        "track_emissions",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings (frozen; checked in ``__post_init__``).

    Optimisation (what the run computes):
        lr, weight_decay, optimizer (``adamw``/``adam``), scheduler (``None`` or
        ``"plateau"``: ReduceLROnPlateau(0.1, patience 3) on the validation loss);
        max_epochs (``None``: 200, or the protocol's 10 with training fractions) and
        patience (early stopping on ``monitor``/``mode``); batch_size (global, split
        across DDP ranks; ``None``: the task's, else 32); seed (sample order,
        augmentation, dropout); kind (``multiclass``, ``binary``, ``regression``, or a
        task's own with its loss and metrics) and num_classes (default: the model's);
        precision: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 on CUDA, fp32 on CPU).

    Running (may change on resume, :data:`RESUMABLE_FIELDS`):
        device (``None``: ``cuda:LOCAL_RANK`` when available, else CPU), num_workers,
        eval_batch_size, checkpoint_interval_s (resume state is written when this many
        seconds passed since the last write, at the end, and on SIGTERM/SIGINT),
        resume, keep_checkpoint, progress, track_emissions.
    """

    lr: float = 1e-4
    max_epochs: int | None = None
    patience: int = 10
    batch_size: int | None = None
    seed: int = 0
    optimizer: str = "adamw"
    weight_decay: float = 1e-3
    scheduler: str | None = None
    kind: str = "multiclass"
    num_classes: int | None = None
    monitor: str = "loss"
    mode: str = "min"
    precision: str = "auto"
    device: str | None = None
    num_workers: int = 0
    eval_batch_size: int | None = None
    checkpoint_interval_s: float = 600.0
    resume: bool = True
    keep_checkpoint: bool = False
    progress: bool = True
    track_emissions: bool = False

    def __post_init__(self) -> None:
        check_lr(self.lr)
        _check_number("weight_decay", self.weight_decay, minimum=0.0, integer=False)
        for name in ("max_epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) is not None:
                _check_number(name, getattr(self, name), minimum=1)
        _check_number("patience", self.patience, minimum=1)
        for name in ("seed", "num_workers"):
            _check_number(name, getattr(self, name), minimum=0)
        if self.num_classes is not None:
            _check_number("num_classes", self.num_classes, minimum=1)
        _check_number(
            "checkpoint_interval_s", self.checkpoint_interval_s, minimum=0.0, integer=False
        )
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("scheduler", self.scheduler, SCHEDULERS)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("mode", self.mode, ("min", "max"))
        if self.device is not None:
            check_device(self.device)

    @property
    def epochs(self) -> int:
        """The epoch budget (``max_epochs``, or 200)."""
        return self.max_epochs if self.max_epochs is not None else DEFAULT_MAX_EPOCHS

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict (what ``result.json`` records)."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of the settings."""
        return tuple(f.name for f in fields(cls))


def check_lr(lr: Any, name: str = "--lr") -> float:
    """``lr`` as a float: a learning rate must be a positive finite number.

    Raises:
        InvalidArgumentError: ``0``, a negative number, NaN, infinity or not a number
            (``name``: how the caller spells the argument in the message).
    """
    try:
        value = float(lr) if not isinstance(lr, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(
            f"{name} {lr!r}: a learning rate must be a positive finite number (e.g. 1e-4)"
        )
    return value


def check_data_settings(input_size: int | None, in_chans: int, split_seed: int = 0) -> None:
    """Check the data settings that the protocol runner and pretraining hold beside a
    ``TrainConfig``: ``input_size`` (``None``: the model's) and ``in_chans`` at least 1,
    ``split_seed`` at least 0.

    Raises:
        InvalidSettingError: naming the setting and the value.
    """
    if input_size is not None:
        _check_number("input_size", input_size, minimum=1)
    _check_number("in_chans", in_chans, minimum=1)
    _check_number("split_seed", split_seed, minimum=0)


def _check_number(
    name: str, value: Any, *, minimum: float, integer: bool = True, hint: str = ""
) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value < minimum:
        kind = "an integer" if integer else "a finite number"
        raise InvalidSettingError(
            name, f"must be {kind} >= {minimum:g}, got {value!r}" + (f" ({hint})" if hint else "")
        )


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        shown = ", ".join("None" if c is None else str(c) for c in choices)
        raise InvalidSettingError(name, f"must be one of {shown}, got {value!r}")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The mixed-precision context of ``precision`` (:data:`PRECISIONS`) on ``device``:
    bf16 autocast for ``"bf16"`` (and ``"auto"`` on CUDA), none otherwise. Training,
    evaluation and inference all compute under it."""
    import torch

    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to train on: ``device`` checked by :func:`check_device`, or, for
    ``None``, ``cuda:LOCAL_RANK`` where CUDA is available, else the CPU."""
    from radiologynet.train import distributed as ddp

    return check_device(device) if device is not None else ddp.default_device()


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, refusing names torch does not know and
    accelerators this machine does not have.

    Raises:
        InvalidArgumentError: ``--device banana``, ``--device cuda`` without a GPU ...
    """
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise InvalidArgumentError(
            f"--device {device!r}: not a device name; use cpu, cuda, cuda:1 or mps"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidArgumentError(
                f"--device {device}: this machine has no CUDA GPU "
                "(torch sees none); use --device cpu"
            )
        if parsed.index is not None and parsed.index >= count:
            raise InvalidArgumentError(
                f"--device {device}: this machine has {count} CUDA "
                f"GPU(s) (cuda:0 to cuda:{count - 1})"
            )
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise InvalidArgumentError(
                f"--device {device}: MPS is not available here; use --device cpu"
            )
    elif parsed.type != "cpu":
        raise InvalidArgumentError(f"--device {device}: use cpu, cuda, cuda:N or mps")
    return parsed


def config_changes(
    saved: dict[str, Any], new: dict[str, Any], resumable: Collection[str] = RESUMABLE_FIELDS
) -> list[str]:
    """The settings (outside ``resumable``) whose values differ between a recorded
    configuration and a new one, as ``"name: old -> new"`` lines; empty when the new run
    may continue or reuse the recorded one. Settings a record made by an older version
    lacks cannot be compared and are not reported."""
    changes = []
    for name in sorted(set(saved) | set(new)):
        if name in resumable or name not in saved:
            continue
        if _normalised(saved.get(name)) != _normalised(new.get(name)):
            changes.append(f"{name}: {saved.get(name)!r} -> {new.get(name)!r}")
    return changes


def _normalised(value: Any) -> Any:
    # JSON turns tuples into lists; compare the recorded and the live form alike
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    return value
