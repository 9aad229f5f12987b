"""``radiologynet finetune``: fine-tune one model on one benchmark (one run of the protocol).

Example::

    radiologynet finetune --task btmr --data ~/data/brain-tumor-mri --model resnet50 \\
        --weights radiologynet --lr 1e-4
"""

from __future__ import annotations

import argparse
import json

from radiologynet.errors import InvalidArgumentError


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options ``finetune`` and ``benchmark`` share."""
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="epoch budget (default 200; 10 with --fractions)")
    parser.add_argument("--patience", type=int, default=10,
                        help="early stopping: epochs without a better validation loss")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="global batch size (default: the task's, 32)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="override the input side (default: the weights', e.g. 224)")
    parser.add_argument("--head", choices=("pooled", "paper"), default="pooled",
                        help="bone-age head: pooled features (default) or the paper's "
                             "flattened feature map")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--cache", default=None,
                        help="folder for a memory-mapped decoded-image cache (reused by "
                             "later runs and processes)")
    parser.add_argument("--track-emissions", action="store_true",
                        help="measure energy/CO2 with codecarbon "
                             "(pip install 'radiologynet[emissions]')")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` sub-command."""
    parser = subparsers.add_parser(
        "finetune", help="fine-tune one model on a benchmark or a folder of labelled images",
        description="Fine-tune a zoo model on a task (btmr, covid19, boneage, grazpedwri, "
                    "folder, ...) with the paper's protocol; one results folder is written to "
                    "--out. Launch with torchrun for several GPUs.")
    parser.add_argument("--task", required=True, help="task name (radiologynet benchmark "
                                                      "--list-tasks)")
    parser.add_argument("--data", required=True, help="the dataset folder")
    parser.add_argument("--model", required=True, help="architecture, e.g. resnet50")
    parser.add_argument("--weights", default="radiologynet",
                        help="random, imagenet, radiologynet, another tag, or a weights "
                             "folder/file (default radiologynet)")
    parser.add_argument("--lr", default="1e-4", help="learning rate (default 1e-4)")
    parser.add_argument("--fraction", type=float, default=None,
                        help="keep this share of the training split (class-stratified)")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed")
    parser.add_argument("--out", default="runs", help="results folder (default ./runs)")
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run one fine-tuning and print its test metrics; returns the exit code."""
    from radiologynet.protocol import get_task_spec
    from radiologynet.protocol.runner import plan, run_one
    from radiologynet.train import distributed as ddp

    if args.seed < 0:
        raise InvalidArgumentError(f"--seed must be >= 0, got {args.seed}")
    ddp.init_from_env()
    task = get_task_spec(args.task)
    (spec,) = plan(task.name, [args.model], [args.weights], [args.lr], runs=1,
                   fractions=[args.fraction] if args.fraction is not None else None)
    max_epochs = args.max_epochs or (10 if args.fraction is not None else 200)
    result = run_one(spec, task, args.data, args.out, split_seed=args.seed,
                     max_epochs=max_epochs, patience=args.patience,
                     batch_size=args.batch_size, input_size=args.input_size, head=args.head,
                     device=args.device, num_workers=args.workers,
                     progress=not args.no_progress, track_emissions=args.track_emissions,
                     cache_dir=args.cache)
    if ddp.is_main():
        print(json.dumps({"run": spec.name, "best_epoch": result["best_epoch"],
                          "val": result["val"], "test": result["test"]}, indent=2))
        print(f"results: {args.out}/{spec.name}/")
    return 0
