"""``radiologynet finetune``: fine-tune one model on one benchmark (one run of the protocol).

Example::

    radiologynet finetune --task btmr --data ~/data/brain-tumor-mri --model resnet50 \\
        --weights radiologynet --lr 1e-4
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from radiologynet.errors import InvalidArgumentError

if TYPE_CHECKING:
    from radiologynet.protocol.runner import RunSettings
    from radiologynet.train.config import TrainConfig


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options ``finetune`` and ``benchmark`` share (read by :func:`run_configuration`)."""
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="epoch budget (default 200; 10 with --fractions)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=10,
        help="early stopping: epochs without a better validation loss",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="global batch size (default: the task's, 32)"
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="override the input side (default: the weights', e.g. 224)",
    )
    parser.add_argument(
        "--head",
        choices=("pooled", "paper"),
        default=None,
        help="bone-age head and LUNA16 decoder: 'paper' (the authors' "
        "flattened-feature head / U-Net decoder) or 'pooled' (pooled "
        "features / the smp decoder). Default: paper for benchmark, "
        "pooled for finetune",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default=None,
        help="fp32, bf16 autocast, or auto (bf16 on CUDA). Default: fp32 for "
        "benchmark (the paper's), auto for finetune",
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help="the paper's choices (--head paper, --precision fp32); refused "
        "together with an option that contradicts them",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument(
        "--cache",
        default=None,
        help="folder for a memory-mapped decoded-image cache (reused by later runs and processes)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=600.0,
        help="seconds between resume checkpoints (default 600; also written "
        "at the end and on SIGTERM/SIGINT)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace run folders that hold a run with other settings",
    )
    parser.add_argument(
        "--track-emissions",
        action="store_true",
        help="measure energy/CO2 with codecarbon (pip install 'radiologynet[emissions]')",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_configuration(args: argparse.Namespace, *, paper: bool) -> tuple[TrainConfig, RunSettings]:
    """The :class:`~radiologynet.train.TrainConfig` and the
    :class:`~radiologynet.protocol.RunSettings` of the shared options (the one place the
    command line becomes a configuration; they validate every value).

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
                    f"--paper uses --{name} {value}, which contradicts --{name} {given}: "
                    f"drop --paper or --{name} {given}"
                )
    defaults = PAPER_DEFAULTS if paper or args.paper else FINETUNE_DEFAULTS
    chosen = {
        name: getattr(args, name) if getattr(args, name) is not None else default
        for name, default in defaults.items()
    }
    config = TrainConfig(
        max_epochs=args.max_epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        input_size=args.input_size,
        split_seed=args.seed,
        device=args.device,
        num_workers=args.workers,
        checkpoint_interval_s=args.checkpoint_interval,
        progress=not args.no_progress,
        track_emissions=args.track_emissions,
        precision=chosen["precision"],
    )
    return config, RunSettings(head=chosen["head"], cache_dir=args.cache)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` sub-command."""
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune one model on a benchmark or a folder of labelled images",
        description="Fine-tune a zoo model on a task (btmr, covid19, boneage, grazpedwri, "
        "folder, ...) with the paper's protocol; one results folder is written to "
        "--out. Launch with torchrun for several GPUs.",
    )
    parser.add_argument(
        "--task", required=True, help="task name (radiologynet benchmark --list-tasks)"
    )
    parser.add_argument("--data", required=True, help="the dataset folder")
    parser.add_argument("--model", required=True, help="architecture, e.g. resnet50")
    parser.add_argument(
        "--weights",
        default="radiologynet",
        help="random, imagenet, radiologynet, another tag, or a weights "
        "folder/file (default radiologynet)",
    )
    parser.add_argument("--lr", default="1e-4", help="learning rate (default 1e-4)")
    parser.add_argument(
        "--fraction",
        type=float,
        default=None,
        help="keep this share of the training split (class-stratified)",
    )
    parser.add_argument("--seed", type=int, default=0, help="split and training seed")
    parser.add_argument("--out", default="runs", help="results folder (default ./runs)")
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run one fine-tuning and print its test metrics; returns the exit code."""
    from radiologynet.protocol import get_task_spec
    from radiologynet.protocol.runner import check_output_folder, plan, run_one
    from radiologynet.protocol.runs import DIVERGED
    from radiologynet.train import distributed as ddp

    config, settings = run_configuration(args, paper=False)
    task = get_task_spec(args.task)
    (spec,) = plan(
        task.name,
        [args.model],
        [args.weights],
        [args.lr],
        runs=1,
        fractions=[args.fraction] if args.fraction is not None else None,
    )
    check_output_folder(args.out)
    ddp.init_from_env()
    result = run_one(spec, task, args.data, args.out, config, settings, overwrite=args.overwrite)
    if ddp.is_main():
        print(
            json.dumps(
                {
                    "run": spec.name,
                    "status": result["status"],
                    "best_epoch": result["best_epoch"],
                    "val": result["val"],
                    "test": result["test"],
                },
                indent=2,
            )
        )
        if result["status"] == DIVERGED:
            print(f"diverged: {result.get('diverged')}; try a lower --lr", file=sys.stderr)
        print(f"results: {args.out}/{spec.name}/")
    return 0
