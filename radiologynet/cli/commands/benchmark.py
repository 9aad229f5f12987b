"""``radiologynet benchmark``: the paper's protocol as a sweep (or one shard of it).

Example::

    radiologynet benchmark --task btmr --data ~/data/brain-tumor-mri \\
        --models resnet50,mobilenet_v3_small --inits random,imagenet,radiologynet \\
        --lrs 1e-2,1e-3,1e-4,1e-5 --runs 5 --out results/btmr --shard 0/4
"""

from __future__ import annotations

import argparse

from radiologynet.cli.options import add_training_options, run_configuration
from radiologynet.errors import InvalidArgumentError
from radiologynet.paper import PAPER_INITS


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _fractions(text: str) -> list[float]:
    try:
        return [float(f) for f in _csv(text)]
    except ValueError:
        raise InvalidArgumentError(
            f"--fractions {text!r}: expected numbers such as 0.05,0.25,0.5"
        ) from None


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``benchmark`` parser: description, options and ``func``."""
    parser.description = (
        "Run a grid of fine-tunings into one results folder per run. Re-running "
        "skips finished runs and resumes interrupted ones; --shard i/n runs a "
        "deterministic 1/n of the grid (SLURM arrays, several GPUs)."
    )
    parser.add_argument("--task", help="task name (see --list-tasks)")
    parser.add_argument("--data", help="the dataset folder")
    parser.add_argument(
        "--models",
        type=_csv,
        default=None,
        help="comma-separated architectures (default: the paper's for the task)",
    )
    parser.add_argument(
        "--inits",
        type=_csv,
        default=list(PAPER_INITS),
        help="comma-separated: random, imagenet, radiologynet, tags, paths or "
        "name=PATH (default random,imagenet,radiologynet)",
    )
    parser.add_argument(
        "--lrs",
        type=_csv,
        default=None,
        help="comma-separated learning rates (default: the task's, 1e-2,1e-3,1e-4,1e-5)",
    )
    parser.add_argument("--runs", type=int, default=5, help="repetitions per setting")
    parser.add_argument(
        "--fractions",
        type=_fractions,
        default=None,
        help="training fractions for the resource-limited experiment, "
        "e.g. 0.05,0.25,0.5 (default epochs then 10)",
    )
    parser.add_argument("--out", default="results", help="results folder")
    parser.add_argument("--shard", default=None, help="i/n: run share i (0-based) of n")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list this shard's runs and their state, train nothing",
    )
    parser.add_argument("--list-tasks", action="store_true", help="list the tasks and exit")
    parser.add_argument(
        "--task-setting",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="change one of the task's settings for this sweep, e.g. "
        "samples_per_epoch=512 for luna16 (the paper: 300000); "
        "repeatable; docs/protocol.md lists them",
    )
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep; returns the exit code."""
    from pathlib import Path

    from radiologynet.protocol import get_task_spec, list_tasks
    from radiologynet.protocol import run as run_grid
    from radiologynet.protocol.runner import check_output_folder, plan
    from radiologynet.protocol.spec import parse_settings
    from radiologynet.train import distributed as ddp
    from radiologynet.train.runs import DIVERGED, RESULT_NAME

    if args.list_tasks:
        for name in list_tasks():
            spec = get_task_spec(name)
            print(f"{name:12s} {spec.kind:12s} {spec.description}")
        return 0
    if not args.task or not args.data:
        raise InvalidArgumentError("benchmark needs --task and --data (or --list-tasks)")
    for option in ("models", "inits", "lrs", "fractions"):
        if getattr(args, option) == []:
            raise InvalidArgumentError(
                f"--{option} lists nothing; name at least one, or "
                "leave the option out for the default"
            )
    config, settings = run_configuration(args, paper=True)
    task = get_task_spec(args.task)
    task_settings = parse_settings(task, args.task_setting)
    if args.dry_run:
        runs = plan(
            task.name,
            args.models or list(task.models),
            args.inits,
            args.lrs or list(task.lrs),
            args.runs,
            args.fractions,
            args.shard,
        )
        check_output_folder(args.out)
        for spec in runs:
            state = "new"
            folder = Path(args.out) / spec.name
            if (folder / RESULT_NAME).is_file():
                import json

                state = json.loads((folder / RESULT_NAME).read_text()).get("status", "?")
            print(f"{spec.name:50s} {state}")
        print(f"{len(runs)} runs")
        return 0
    ddp.init_from_env()
    results = run_grid(
        task.name,
        args.data,
        config,
        settings,
        models=args.models,
        inits=args.inits,
        lrs=args.lrs,
        runs=args.runs,
        fractions=args.fractions,
        out=args.out,
        shard=args.shard,
        overwrite=args.overwrite,
        task_settings=task_settings,
    )
    if ddp.is_main():
        diverged = sum(r["status"] == DIVERGED for r in results)
        note = f", {diverged} diverged (NaN/inf loss)" if diverged else ""
        print(
            f"{len(results)} runs done in {args.out}{note} "
            f"(analyse them with: radiologynet report {args.out})"
        )
    return 0
