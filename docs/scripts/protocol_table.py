"""Generate the tables of docs/protocol.md from the code's own defaults (never typed by hand).

For every task of the paper, every protocol setting: the value `radiologynet benchmark`
uses when no option is given (read from the benchmark command's parser, the task's
spec, the runner, the trainer and the registry), the paper's value and where the paper
says so (from radiologynet.data.tasks). Run `python docs/scripts/protocol_table.py`
after changing a default; tests/test_protocol_table.py fails while docs/protocol.md is
out of date.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from radiologynet import train
from radiologynet._atomic import atomic_write_text
from radiologynet.cli.commands import benchmark
from radiologynet.data.tasks import SOURCE_PROTOCOL, TASKS, TaskInfo
from radiologynet.models._registry import get_architecture
from radiologynet.protocol import get_task_spec, resolve_model
from radiologynet.train.config import DEFAULT_MAX_EPOCHS

PROTOCOL_PAGE = Path(__file__).resolve().parents[1] / "protocol.md"
BEGIN, END = "<!-- protocol:begin -->", "<!-- protocol:end -->"
#: The facts of the paper that are not per task (benchmarks.md, original-release.md).
PAPER_PRECISION = ("fp32", "the authors' scripts (no mixed precision)")
PAPER_HEADS = {
    "boneage": ("paper", "paper, PBA: the challenge winner's head"),
    "luna16": ("paper", "paper, LUNA16: the encoder U-Net's decoder"),
}
DROPOUT_SOURCE = "paper 12.4: the authors' torchvision heads"


def cli_defaults() -> dict[str, Any]:
    """The defaults of `radiologynet benchmark`'s options, from its own parser."""
    command = argparse.ArgumentParser()
    benchmark.register(command)
    defaults = {a.dest: a.default for a in command._actions if a.dest != "help"}
    # options left open on the command line (None) take the benchmark's paper-mode
    # defaults, else TrainConfig's, resolved where the command resolves them
    from radiologynet.train.config import PAPER_DEFAULTS, TrainConfig

    own = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    left_open = {k: PAPER_DEFAULTS.get(k, own.get(k)) for k, v in defaults.items() if v is None}
    return {**defaults, **left_open}


def trainer_default(name: str) -> Any:
    """A training default from where it lives: the trainer's config dataclass when there
    is one, else ``fit``'s signature."""
    config = getattr(train, "TrainConfig", None)
    if config is not None and dataclasses.is_dataclass(config):
        for f in dataclasses.fields(config):
            if f.name == name and f.default is not dataclasses.MISSING:
                return f.default
    parameter = inspect.signature(train.fit).parameters.get(name)
    return None if parameter is None else parameter.default


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (tuple, list)):
        return ", ".join(_fmt(v) for v in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _row(setting: str, value: Any, paper: Any, source: str) -> str:
    mark = "" if _fmt(value) == _fmt(paper) else " **(differs)**"
    return f"| {setting} | {_fmt(value)}{mark} | {_fmt(paper)} | {source} |"


def _per_model(models: tuple[str, ...], what) -> str:
    return "; ".join(f"{m}: {what(m)}" for m in models)


def task_rows(info: TaskInfo, cli: dict[str, Any]) -> list[str]:
    """The rows of one task's table."""
    spec, paper = get_task_spec(info.name), info.paper
    head = cli.get("head")
    precision = cli.get("precision", trainer_default("precision"))
    rows = [
        _row("models", cli.get("models") or spec.models, paper.models, paper.source("models")),
        _row("initialisations", cli.get("inits"), paper.inits, paper.source("inits")),
        _row("learning rates", cli.get("lrs") or spec.lrs, paper.lrs, paper.source("lrs")),
        _row("runs per setting", cli.get("runs"), paper.runs, paper.source("runs")),
        _row(
            "max epochs",
            cli.get("max_epochs") or DEFAULT_MAX_EPOCHS,
            paper.max_epochs,
            paper.source("max_epochs"),
        ),
        _row(
            "early-stopping patience", cli.get("patience"), paper.patience, paper.source("patience")
        ),
        _row(
            "batch size",
            cli.get("batch_size") or spec.batch_size,
            paper.batch_size,
            paper.source("batch_size"),
        ),
        _row("optimiser", spec.optimizer, paper.optimizer, paper.source("optimizer")),
        _row(
            "weight decay",
            trainer_default("weight_decay"),
            paper.weight_decay,
            paper.source("weight_decay"),
        ),
        _row("scheduler", spec.scheduler, paper.scheduler, paper.source("scheduler")),
        _row(
            "checkpoint selection",
            f"{spec.monitor} ({spec.mode})",
            f"{paper.monitor} ({paper.mode})",
            paper.source("monitor"),
        ),
        _row("precision", precision, PAPER_PRECISION[0], PAPER_PRECISION[1]),
    ]
    if info.name in PAPER_HEADS:
        value, source = PAPER_HEADS[info.name]
        rows.append(_row("head / decoder", head, value, source))
    archs = [resolve_model(spec, m).arch for m in paper.models]
    zoo = tuple(a for a in archs if a is not None)
    rows.append(
        _row(
            "input size",
            _per_model(zoo, lambda a: get_architecture(a).input_size),
            _per_model(zoo, lambda a: get_architecture(a).input_size),
            "paper, Evaluation on downstream tasks (224; InceptionV3 299; "
            "EfficientNetB3 300; EfficientNetB4 380)",
        )
    )
    if info.kind != "segmentation":

        def dropout(a: str) -> str:
            regularisation = get_architecture(a).paper_regularisation
            return ", ".join(f"{k} {v:g}" for k, v in regularisation.items()) or "none"

        rows.append(
            _row(
                "dropout / stochastic depth",
                _per_model(zoo, dropout),
                _per_model(zoo, dropout),
                DROPOUT_SOURCE,
            )
        )
    for name, paper_value in paper.settings.items():
        rows.append(_row(f"`{name}`", spec.settings.get(name), paper_value, paper.source(name)))
    return rows


def tables() -> str:
    """The Markdown generated from the code."""
    cli = cli_defaults()
    lines = []
    for info in list(TASKS.values()):
        if info.paper is None:
            continue
        aliases = f" (also: {', '.join(info.aliases)})" if info.aliases else ""
        lines += [
            f"## {info.name}: {info.title}{aliases}",
            "",
            "| setting | `radiologynet benchmark` default | paper | source |",
            "|---|---|---|---|",
            *task_rows(info, cli),
            "",
        ]
    lines.append(f'Source "{SOURCE_PROTOCOL}": the paper\'s shared protocol for all five tasks.')
    return "\n".join(lines)


def render(page: str) -> str:
    """``page`` with the generated block replaced."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _: f"{BEGIN}\n{tables()}\n{END}", page)


if __name__ == "__main__":
    atomic_write_text(PROTOCOL_PAGE, render(PROTOCOL_PAGE.read_text()))
    sys.exit(0)
