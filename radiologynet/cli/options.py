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
import math
import os
import stat
import tempfile
import typing
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from radiologynet._atomic import kind_of
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


# --------------------------------------------------------------------------- validation
#
# Every option of every command is checked while the command line is parsed, before the
# command runs: nothing is computed, created or written for a value that is refused.
# ``harden(command, parser)`` (called by ``build_parser`` for the command being run) gives
# each numeric option its bounds from :data:`INT_BOUNDS` / :data:`FLOAT_BOUNDS` (a plain
# ``int`` or ``float`` option not listed gets :data:`DEFAULT_INT_BOUNDS` / finite floats)
# and each path option its kind from :data:`PATH_OPTIONS`. A refusal is one line and exit 2
# (argparse's convention for a bad argument), naming the option.

#: The largest image side an option accepts (the paper's inputs are 224 to 512 pixels).
MAX_IMAGE_SIDE = 4096
#: The largest batch, epoch budget and repetition count an option accepts.
MAX_BATCH_SIZE = 65536
MAX_EPOCHS = 100_000
MAX_RUNS = 1000
#: The least cap on ``--workers`` / ``--threads``; the cap is the CPUs this process may
#: use when there are more (:func:`max_workers`).
MIN_WORKER_CAP = 8
#: The most clusters pseudo-labelling may make.
MAX_CLUSTERS = 100_000
#: Seeds are those numpy takes: 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1
#: Bounds of an integer option this module has no entry for.
DEFAULT_INT_BOUNDS = (0, 2**31 - 1)


def max_workers() -> int:
    """The cap on ``--workers`` and ``--threads``: the CPUs this process may use, or
    :data:`MIN_WORKER_CAP` when that is larger."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(cpus, MIN_WORKER_CAP)


class IntRange:
    """An argparse ``type=``: an integer from ``low`` to ``high``."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not self.low <= value <= self.high:
            raise argparse.ArgumentTypeError(
                f"must be an integer from {self.low} to {self.high}, got {text!r}"
            )
        return value

    def __repr__(self) -> str:  # argparse names the type in some messages
        return f"integer from {self.low} to {self.high}"


class FloatRange:
    """An argparse ``type=``: a finite number in ``[low, high]`` (an end in ``open`` is
    excluded: ``"low"``, ``"high"`` or ``"both"``)."""

    def __init__(
        self, low: float = -math.inf, high: float = math.inf, open: str | None = None
    ) -> None:
        self.low, self.high, self.open = low, high, open or ""

    def accepts(self, value: float) -> bool:
        """Whether ``value`` is finite and within the bounds."""
        above = value > self.low if self.open in ("low", "both") else value >= self.low
        below = value < self.high if self.open in ("high", "both") else value <= self.high
        return math.isfinite(value) and above and below

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            value = math.nan
        if not self.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {self!r}, got {text!r}")
        return value

    def __repr__(self) -> str:
        if math.isinf(self.low) and math.isinf(self.high):
            return "a finite number"
        left = "(" if self.open in ("low", "both") else "["
        right = ")" if self.open in ("high", "both") else "]"
        return f"a finite number in {left}{self.low:g}, {self.high:g}{right}"


def _int_bounds() -> dict[str, tuple[int, int]]:
    workers = (0, max_workers())
    side = (1, MAX_IMAGE_SIDE)
    epochs = (1, MAX_EPOCHS)
    return {
        "--workers": workers,
        "--threads": workers,
        "--size": side,
        "--input-size": side,
        "--image-size": side,
        "--batch-size": (1, MAX_BATCH_SIZE),
        "--max-epochs": epochs,
        "--patience": epochs,
        "--first-epochs": epochs,
        "--runs": (1, MAX_RUNS),
        "--seed": (0, MAX_SEED),
        "--clusters": (2, MAX_CLUSTERS),
        "--max-clusters": (2, MAX_CLUSTERS),
        "--in-chans": (1, 16),
        "--target": (0, MAX_CLUSTERS),
    }


#: Bounds of the integer options, by spelling (the same in every command).
INT_BOUNDS = _int_bounds()
#: Bounds of the number options, by spelling; ``--weight-*`` covers pseudo-label's
#: feature weights.
FLOAT_BOUNDS = {
    "--alpha": FloatRange(0, 1, open="both"),
    "--threshold": FloatRange(0, 1),
    "--lr": FloatRange(0, 10, open="low"),
    "--fraction": FloatRange(0, 1, open="low"),
    "--val-fraction": FloatRange(0, 1, open="high"),
    "--test-fraction": FloatRange(0, 1, open="high"),
    "--checkpoint-interval": FloatRange(0, 10**9),
    "--weight-*": FloatRange(0, 1000),
}

#: What each path option of each command is: an output folder (``out_dir``) or file
#: (``out_file``), or an existing input folder (``dir``), file (``file``) or either
#: (``any``). Positional arguments are named by their dest.
PATH_OPTIONS: dict[str, dict[str, str]] = {
    "download": {"--to": "out_dir"},
    "convert": {"src": "file", "--out": "out_dir"},
    "publish": {"folder": "dir"},  # --include names files inside the folder
    "preprocess": {"src": "dir", "--out": "out_dir"},
    "finetune": {"--data": "any", "--out": "out_dir", "--cache": "out_dir"},
    "benchmark": {"--data": "any", "--out": "out_dir", "--cache": "out_dir"},
    "report": {"results": "dir", "--out": "out_dir"},
    "compare": {"results": "dir", "--csv": "out_file"},
    "card-results": {"results": "dir", "--weights-dir": "dir"},
    "gradcam": {"--model": "dir", "--images": "any", "--out": "out_dir"},
    "pseudo-label": {
        "archive": "dir",
        "--out": "out_file",
        "--text-csv": "file",
        "--cache": "out_dir",
        "--report": "out_dir",
    },
    "pretrain": {"--data": "dir", "--labels": "file", "--out": "out_dir"},
    "pretrain-reconstruction": {"--data": "dir", "--out": "out_dir", "--cache": "out_dir"},
    "demo": {"--out": "out_dir"},
    "predict": {"data": "any", "--out": "out_file", "--gradcam": "out_dir"},
    "embed": {"source": "any", "--data": "any", "--out": "out_file"},
    # a bundle is a folder, written whole by the exporter (which refuses what is not ours)
    "export": {"--out": "out_file", "--verify-data": "any"},
    "probe": {"--out": "out_dir"},  # FEATURES may be NAME=FILE: read by the probe
}


def _name_limits(folder: Path) -> tuple[int, int]:
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def _nearest_existing(path: Path) -> Path:
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            return folder
    return Path(".")


class PathOption:
    """An argparse ``type=`` for a path: ``kind`` is one of :data:`PATH_KINDS`. An output
    path is refused when something of another kind stands there (a file, FIFO or device
    where a folder is written; a folder, FIFO or device where a file is), when a name in
    it is longer than the file system allows, or when its nearest existing folder is not
    a folder or cannot be written in; an input path when it does not exist or is of
    another kind (a FIFO, device or socket is never an input)."""

    def __init__(self, kind: str, *, text: bool = False) -> None:
        if kind not in PATH_KINDS:
            raise ValueError(f"path kind {kind!r} is not one of {PATH_KINDS}")
        self.kind, self.text = kind, text

    def __repr__(self) -> str:
        return PATH_KINDS[self.kind]

    def __call__(self, text: str) -> Path | str:
        if not isinstance(text, str) or not text or "\0" in text:
            raise argparse.ArgumentTypeError(f"{text!r} is not a path")
        path = Path(text).expanduser()
        problem = (
            self._output_problem(path) if self.kind.startswith("out") else self._input_problem(path)
        )
        if problem:
            raise argparse.ArgumentTypeError(f"{text}: {problem}")
        return text if self.text else path  # type: ignore[return-value]

    def _input_problem(self, path: Path) -> str | None:
        try:
            mode = os.stat(path).st_mode
        except OSError as err:
            return err.strerror or "cannot be read"
        wanted = {"dir": stat.S_ISDIR, "file": stat.S_ISREG}.get(self.kind)
        ok = wanted(mode) if wanted else stat.S_ISDIR(mode) or stat.S_ISREG(mode)
        return None if ok else f"is {kind_of(mode)}, not {PATH_KINDS[self.kind]}"

    def _output_problem(self, path: Path) -> str | None:
        path = path.absolute()
        anchor = _nearest_existing(path if self.kind == "out_dir" else path.parent)
        name_max, path_max = _name_limits(anchor if anchor.is_dir() else anchor.parent)
        long = next((part for part in path.parts if len(os.fsencode(part)) > name_max), None)
        if long is not None:
            return f"the name {long[:40]}... is longer than the {name_max} bytes allowed"
        if len(os.fsencode(str(path))) > path_max:
            return f"the path is longer than the {path_max} bytes allowed"
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as err:
            return err.strerror or "cannot be written"
        wanted = stat.S_ISDIR if self.kind == "out_dir" else stat.S_ISREG
        if mode is not None and not wanted(mode):
            return f"is {kind_of(mode)}, not {PATH_KINDS[self.kind]}; it is not replaced"
        if not anchor.is_dir():
            return f"{anchor} is {kind_of(os.stat(anchor).st_mode)}, not a folder"
        return _unwritable(anchor)


def _unwritable(folder: Path) -> str | None:
    """Why nothing can be created in ``folder`` (``None`` when a probe file can be): the
    permission bits do not tell for root, read-only mounts and /proc, so it is tried."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".radiologynet-probe-"):
            pass
    except OSError as err:
        return f"nothing can be written in {folder} ({err.strerror or err})"
    return None


#: The kinds of path an option takes, and how a refusal names them.
PATH_KINDS = {
    "out_dir": "a folder to write",
    "out_file": "a file to write",
    "dir": "an existing folder",
    "file": "an existing file",
    "any": "an existing file or folder",
}


def _bounded_type(action: argparse.Action) -> object:
    """The validating type of a numeric option (its old type int / float)."""
    spelling = next((s for s in action.option_strings if s.startswith("--")), None)
    if action.type is int:
        low, high = INT_BOUNDS.get(spelling or "", DEFAULT_INT_BOUNDS)
        return IntRange(low, high)
    if spelling and spelling.startswith("--weight-"):
        return FLOAT_BOUNDS["--weight-*"]
    return FLOAT_BOUNDS.get(spelling or "", FloatRange())


def harden(command: str, parser: argparse.ArgumentParser) -> None:
    """Give every option of ``command``'s ``parser`` its validating type: bounds for the
    numbers, kinds for the paths (:data:`PATH_OPTIONS`)."""
    paths = PATH_OPTIONS.get(command, {})
    for action in parser._actions:
        names = action.option_strings or [action.dest]
        kind = next((paths[n] for n in names if n in paths), None)
        if kind is not None:
            # the value keeps its type: a Path where the option made one, else the text
            action.type = PathOption(kind, text=action.type in (None, str))
        elif action.type in (int, float):
            action.type = _bounded_type(action)


_VALIDATORS = (IntRange, FloatRange, PathOption)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line, without the usage block argparse
    prints first: a value one of this module's validators refuses raises
    :class:`~radiologynet.errors.InvalidArgumentError` (the command line prints it as one
    line, exit 1, like every refusal of the library); a malformed command line (an unknown
    option, a missing one) is argparse's ``PROG: error: ...``, exit 2."""

    _refused: str | None = None

    def _get_value(self, action: argparse.Action, arg_string: str) -> object:
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError as err:
            if isinstance(action.type, _VALIDATORS):
                self._refused = str(err)
            raise

    def error(self, message: str) -> typing.NoReturn:
        refused, self._refused = self._refused, None
        if refused is not None:
            raise InvalidArgumentError(" ".join(refused.split()))
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")
