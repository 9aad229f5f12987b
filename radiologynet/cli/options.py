"""Training settings on the command line: how a :class:`~radiologynet.train.TrainConfig`
setting is spelled as an option (:func:`option`), the options ``finetune`` and
``benchmark`` share (:func:`add_training_options`, built from the config's fields), and the
configuration they make (:func:`run_configuration`: the training settings and the
protocol runner's own, :data:`RUN_SETTINGS`).

Importing this module imports no framework, and neither does building the options
(:mod:`radiologynet.train.config` loads without torch): ``finetune --help`` stays fast.
:func:`run_configuration` imports the protocol runner, and so torch, when called.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import fields
from typing import TYPE_CHECKING

from radiologynet.errors import InvalidArgumentError, InvalidSettingError, RadiologyNetError

if TYPE_CHECKING:
    from radiologynet.protocol.runner import RunSettings
    from radiologynet.train.config import TrainConfig

#: Settings whose option is not the field name with dashes.
_SPELLINGS = {
    "num_workers": "workers",
    "cache_dir": "cache",
    "split_seed": "seed",
    "checkpoint_interval_s": "checkpoint_interval",
}


def option(name: str) -> str:
    """How a setting is spelled on the command line (``batch_size`` -> ``--batch-size``)."""
    return "--" + _SPELLINGS.get(name, name).replace("_", "-")


def error_text(err: RadiologyNetError) -> str:
    """The message the command line prints for ``err``: a bad setting is named by its
    option (``--batch-size must be ...``), as the user typed it."""
    if isinstance(err, InvalidSettingError):
        return f"{option(err.setting)} {err.problem}"
    return str(err)


#: The settings ``finetune`` and ``benchmark`` take as options, in the order ``--help``
#: lists them: ``TrainConfig`` fields, and the runner's :data:`RUN_SETTINGS`.
TRAINING_SETTINGS = (
    "max_epochs",
    "patience",
    "batch_size",
    "input_size",
    "head",
    "precision",
    "init_scheme",
    "augment_draw",
    "sample_order",
    "split_seed",
    "device",
    "num_workers",
    "cache_dir",
    "checkpoint_interval_s",
    "track_emissions",
)
#: The settings of :data:`TRAINING_SETTINGS` that are the protocol runner's
#: (:class:`~radiologynet.protocol.runner.RunSettings`: the model and its data), not
#: ``TrainConfig`` fields, and their value types.
RUN_SETTINGS = {
    "head": str,
    "cache_dir": str,
    "input_size": int,
    "split_seed": int,
    "init_scheme": str,
    "augment_draw": str,
}


def _setting_help() -> dict[str, str]:
    """The help text of each of :data:`TRAINING_SETTINGS`."""
    from radiologynet.train.config import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_MAX_EPOCHS,
        FRACTION_MAX_EPOCHS,
        TrainConfig,
    )

    default = {f.name: f.default for f in fields(TrainConfig)}
    return {
        "max_epochs": f"epoch budget (default {DEFAULT_MAX_EPOCHS}; {FRACTION_MAX_EPOCHS} "
        "with a training fraction)",
        "patience": "early stopping: epochs without a better validation loss "
        f"(default {default['patience']})",
        "batch_size": f"global batch size (default: the task's, else {DEFAULT_BATCH_SIZE})",
        "input_size": "override the input side (default: the weights', e.g. 224)",
        "head": "bone-age head and LUNA16 decoder: 'paper' (the authors' flattened-feature "
        "head / U-Net decoder) or 'pooled' (pooled features / the smp decoder). Default: "
        "paper for benchmark, pooled for finetune",
        "precision": "fp32, bf16 autocast, or auto (bf16 on CUDA). Default: fp32 for "
        "benchmark (the paper's), auto for finetune",
        "init_scheme": "how random weights and new heads start: 'torchvision' (the authors' "
        "runs) or 'timm'. Default: torchvision for benchmark, timm for finetune",
        "augment_draw": "augmentation drawn once per 'batch' (the authors', torchvision's "
        "transforms on the batch) or per 'image'. Default: batch for benchmark, image for "
        "finetune",
        "sample_order": "'shared' (the authors' order, the same for every run) or 'per_run'. "
        "Default: shared for benchmark, per_run for finetune",
        "split_seed": "seed of the train/val/test split; run k of a setting trains with seed "
        "SEED*1000 + k - 1 (default 0)",
        "device": "cpu, cuda, cuda:1 (default: cuda:LOCAL_RANK when available, else cpu)",
        "num_workers": "DataLoader worker processes per training process "
        f"(default {default['num_workers']}: load in the training process)",
        "cache_dir": "folder for a memory-mapped decoded-image cache (reused by later runs "
        "and processes)",
        "checkpoint_interval_s": "seconds between resume checkpoints (default "
        f"{default['checkpoint_interval_s']:g}; also written at the end and on SIGTERM/SIGINT)",
        "track_emissions": "measure energy/CO2 with codecarbon "
        "(pip install 'radiologynet[emissions]')",
    }


def _value_type(annotation: object) -> type:
    """The type of an optional field's values (``int | None`` -> ``int``)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation  # type: ignore[return-value]


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Add the options ``finetune`` and ``benchmark`` share to ``parser``, as one group: one
    per setting of :data:`TRAINING_SETTINGS`, typed from its ``TrainConfig`` field (or
    :data:`RUN_SETTINGS`) and with
    its choices, plus ``--paper``, ``--overwrite`` and ``--no-progress``. Each setting
    defaults to ``None`` (not given), so :func:`run_configuration` leaves the config's own
    default in place."""
    from radiologynet.models._registry import INIT_SCHEMES
    from radiologynet.train.config import (
        AUGMENT_DRAWS,
        HEADS,
        PRECISIONS,
        SAMPLE_ORDERS,
        TrainConfig,
    )

    types = {**typing.get_type_hints(TrainConfig), **RUN_SETTINGS}
    choices = {
        "head": HEADS,
        "precision": PRECISIONS,
        "init_scheme": INIT_SCHEMES,
        "augment_draw": AUGMENT_DRAWS,
        "sample_order": SAMPLE_ORDERS,
    }
    group = parser.add_argument_group("training options")
    help_text = _setting_help()
    for name in TRAINING_SETTINGS:
        kind = _value_type(types[name])
        if kind is bool:
            group.add_argument(
                option(name), dest=name, action="store_true", default=None, help=help_text[name]
            )
            continue
        group.add_argument(
            option(name),
            dest=name,
            type=kind,
            default=None,
            choices=choices.get(name),
            metavar=None if name in choices else option(name)[2:].upper().replace("-", "_"),
            help=help_text[name],
        )
    group.add_argument(
        "--paper",
        action="store_true",
        help="the paper's choices (--head paper, --precision fp32, --init-scheme "
        "torchvision, --augment-draw batch, --sample-order shared); refused together with "
        "an option that contradicts them",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace run folders that hold a run with other settings",
    )
    group.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (the one line per epoch is still printed; without this "
        "option the bars switch themselves off when the output is not a terminal)",
    )


def run_configuration(args: argparse.Namespace, *, paper: bool) -> tuple[TrainConfig, RunSettings]:
    """The :class:`~radiologynet.train.TrainConfig` and the runner's
    :class:`~radiologynet.protocol.runner.RunSettings` of the options of
    :func:`add_training_options` (they validate every value).

    ``paper``: the command's defaults are the paper's (``benchmark``) rather than
    ``finetune``'s; ``--paper`` asks for them explicitly.

    Raises:
        InvalidArgumentError: a value out of range, or ``--paper`` with an option that
            contradicts it.
    """
    from radiologynet.protocol.runner import RunSettings
    from radiologynet.train.config import FINETUNE_DEFAULTS, PAPER_DEFAULTS, TrainConfig

    if args.paper:
        for name, value in PAPER_DEFAULTS.items():
            given = getattr(args, name)
            if given is not None and given != value:
                raise InvalidArgumentError(
                    f"--paper uses {option(name)} {value}, which contradicts "
                    f"{option(name)} {given}: drop --paper or {option(name)} {given}"
                )
    given = {
        name: getattr(args, name) for name in TRAINING_SETTINGS if getattr(args, name) is not None
    }
    chosen = {**(PAPER_DEFAULTS if paper or args.paper else FINETUNE_DEFAULTS), **given}
    run = RunSettings(**{name: chosen.pop(name) for name in RUN_SETTINGS if name in chosen})
    return TrainConfig(**chosen, progress=not args.no_progress), run
