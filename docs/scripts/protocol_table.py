"""Generate the tables of docs/protocol.md: the code's resolved paper-mode settings beside
what the paper and the authors' scripts say (never typed by hand).

For every task of the paper, every protocol setting:

- the value `radiologynet benchmark --task T --data DIR` runs with, resolved as the
  command resolves it (its own parser, ``run_configuration``, the runner's ``run_config``,
  the task spec, the trainer and the registries);
- the paper's value and the authors' value with their sources, read from
  ``radiologynet/resources/paper-protocol.csv`` (:func:`radiologynet.paper.protocol_sources`),
  which is written from the paper's text and the authors' scripts and shares nothing with
  the code's constants.

A code value that differs from a value either source gives is marked **(differs)**; the
sources' note says why. Run `python docs/scripts/protocol_table.py` after changing a
default; tests/test_protocol_table.py fails while docs/protocol.md is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radiologynet._atomic import atomic_write_text
from radiologynet.cli.commands import benchmark
from radiologynet.cli.options import run_configuration
from radiologynet.data.samples import BONE_AGE_AUGMENT, PAPER_AUGMENT
from radiologynet.data.tasks import TASKS, TaskInfo
from radiologynet.models._preprocessing import IMAGENET_MEAN, IMAGENET_STD
from radiologynet.paper import protocol_source
from radiologynet.protocol import get_task_spec, resolve_model
from radiologynet.protocol.runner import RunSpec, preprocessing_for, run_config
from radiologynet.train.heads import task_regularisation
from radiologynet.transforms.augment import AUGMENTATIONS, Augmentation

PROTOCOL_PAGE = Path(__file__).resolve().parents[1] / "protocol.md"
BEGIN, END = "<!-- protocol:begin -->", "<!-- protocol:end -->"
#: What ``radiologynet.train.fit`` tests: the weights of the best validation epoch, which
#: it restores before the test evaluation.
TESTED_WEIGHTS = "best validation epoch"
#: The rows of every task: (setting key of the sources file, label).
COMMON_ROWS = (
    ("models", "models"),
    ("inits", "initialisations"),
    ("lrs", "learning rates"),
    ("runs", "runs per setting"),
    ("max_epochs", "max epochs"),
    ("patience", "early-stopping patience"),
    ("batch_size", "batch size"),
    ("optimizer", "optimiser"),
    ("weight_decay", "weight decay"),
    ("scheduler", "scheduler"),
    ("monitor", "checkpoint selection"),
    ("precision", "precision"),
    ("head", "head / decoder"),
    ("augment_draw", "augmentation draw"),
)
#: The rows of the classification and regression tasks only.
IMAGE_ROWS = (
    ("input_size", "input size"),
    ("imagenet_input", "ImageNet-initialised input"),
    ("regularisation", "dropout / stochastic depth"),
    ("init_scheme", "random weights and new heads"),
    ("augmentation", "augmentation"),
    ("sample_order", "sample order"),
    ("test_weights", "weights tested"),
)


def _fmt(value: Any) -> str:
    if value is None or value == "":
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


def _per_model(archs: tuple[str, ...], what: Callable[[str], str]) -> str:
    return "; ".join(f"{a}: {what(a)}" for a in archs)


def describe_augmentation(aug: Augmentation) -> str:
    """An :class:`Augmentation`'s ranges as the sources file writes them."""
    parts = [f"flip {aug.flip_p:g}", f"rotation +-{aug.degrees:g} deg"]
    if aug.translate:
        parts.append(f"shift {aug.translate:g}")
    if aug.scale != (1.0, 1.0):
        parts.append(f"zoom {aug.scale[0]:g}-{aug.scale[1]:g}")
    for name, bounds in (("brightness", aug.brightness), ("contrast", aug.contrast)):
        if bounds is not None:
            parts.append(f"{name} {bounds[0]:g}-{bounds[1]:g}")
    return ", ".join(parts)


def _imagenet_input(arch: str) -> str:
    pre = preprocessing_for(arch, "imagenet")
    if (pre.mean, pre.std) == (IMAGENET_MEAN, IMAGENET_STD):
        return "ImageNet mean/std"
    if pre.mean == pre.std and len(set(pre.mean or ())) == 1:
        return f"mean = std = {pre.mean[0]:g}"
    return f"mean {pre.mean}, std {pre.std}"


def resolved_values(info: TaskInfo) -> dict[str, Any]:
    """The settings `radiologynet benchmark --task NAME --data DIR` runs the first cell of
    its grid with, resolved as the command resolves them."""
    parser = argparse.ArgumentParser()
    benchmark.register(parser)
    args = parser.parse_args(["--task", info.name, "--data", "."])
    config, settings = run_configuration(args, paper=True)
    spec = get_task_spec(info.name)
    models = tuple(args.models or spec.models)
    lrs = tuple(args.lrs or spec.lrs)
    run = run_config(
        RunSpec(spec.name, models[0], "random", None, lrs[0], 1), spec, config, settings
    )
    values: dict[str, Any] = {
        "models": models,
        "inits": args.inits,
        "lrs": lrs,
        "runs": args.runs,
        "max_epochs": run.max_epochs,
        "patience": run.patience,
        "batch_size": run.batch_size,
        "optimizer": run.optimizer,
        "weight_decay": run.weight_decay,
        "scheduler": run.scheduler,
        "monitor": (
            f"{run.stop_monitor} ({run.stop_mode}) to stop; {run.monitor} ({run.mode}) to pick "
            "the epoch"
            if run.stop_monitor
            else f"{run.monitor} ({run.mode})"
        ),
        "precision": run.precision,
        "head": settings.head,
        "augment_draw": settings.augment_draw,
        **{f"`{k}`": v for k, v in spec.settings.items()},
    }
    if info.kind != "segmentation":
        archs = tuple(a for a in (resolve_model(spec, m).arch for m in models) if a is not None)
        augment = BONE_AGE_AUGMENT if info.kind == "regression" else PAPER_AUGMENT
        values.update(
            input_size=_per_model(archs, lambda a: str(preprocessing_for(a, None).input_size)),
            imagenet_input=_per_model(archs, _imagenet_input),
            regularisation=_per_model(
                archs,
                lambda a: (
                    ", ".join(f"{k} {v:g}" for k, v in task_regularisation(a, info.kind).items())
                    or "none"
                ),
            ),
            init_scheme=settings.init_scheme,
            augmentation=describe_augmentation(AUGMENTATIONS[augment]),
            sample_order=run.sample_order,
            test_weights=TESTED_WEIGHTS,
        )
    return values


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def row(task: str, key: str, label: str, value: Any) -> str:
    """One table row: the code's value (marked where a source differs), the paper's and
    the authors' values, and the sources with the note."""
    source = protocol_source(task, key.strip("`"))
    paper = source.paper if source else ""
    authors = source.authors if source else ""
    shown = _fmt(value)
    differs = any(ref and ref != shown for ref in (paper, authors))
    where = []
    if source and source.paper_source:
        where.append(source.paper_source)
    if source and source.authors_source:
        where.append(source.authors_source)
    if source and source.note:
        where.append(source.note)
    mark = " **(differs)**" if differs else ""
    cells = (label, shown + mark, _fmt(paper), _fmt(authors), "; ".join(where) or "-")
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def task_rows(info: TaskInfo) -> list[str]:
    """The rows of one task's table."""
    values = resolved_values(info)
    keys = list(COMMON_ROWS)
    if info.kind != "segmentation":
        keys += IMAGE_ROWS
    if info.kind not in ("regression", "segmentation"):
        keys.remove(("head", "head / decoder"))
    keys += [(k, k) for k in values if k.startswith("`")]
    return [row(info.name, key, label, values[key]) for key, label in keys]


def tables() -> str:
    """The Markdown generated from the code and the sources file."""
    lines = []
    for info in list(TASKS.values()):
        if info.paper is None:
            continue
        aliases = f" (also: {', '.join(info.aliases)})" if info.aliases else ""
        lines += [
            f"## {info.name}: {info.title}{aliases}",
            "",
            "| setting | `radiologynet benchmark` | paper | authors' scripts | sources, notes |",
            "|---|---|---|---|---|",
            *task_rows(info),
            "",
        ]
    return "\n".join(lines).rstrip("\n")


def render(page: str) -> str:
    """``page`` with the generated block replaced."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _: f"{BEGIN}\n{tables()}\n{END}", page)


if __name__ == "__main__":
    atomic_write_text(PROTOCOL_PAGE, render(PROTOCOL_PAGE.read_text()))
    sys.exit(0)
