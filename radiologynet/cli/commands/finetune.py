"""``radiologynet finetune``: fine-tune one model on one benchmark (one run of the protocol).

Example::

    radiologynet finetune --task btmr --data ~/data/brain-tumor-mri --model resnet50 \\
        --weights radiologynet --lr 1e-4
"""

from __future__ import annotations

import argparse
import json
import sys

from radiologynet.cli.options import add_training_options, run_configuration


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``finetune`` parser: description, options and ``func``."""
    parser.description = (
        "Fine-tune a zoo model on a task (btmr, covid19, boneage, grazpedwri, "
        "folder, ...) with the paper's protocol; one results folder is written to "
        "--out. Launch with torchrun for several GPUs."
    )
    parser.add_argument(
        "--task", required=True, help="task name (radiologynet benchmark --list-tasks)"
    )
    parser.add_argument(
        "--data",
        required=True,
        help="the dataset folder (for --task folder: ROOT/<class>/, "
        "ROOT/{train,val[,test]}/<class>/, or a CSV path,label[,split][,patient])",
    )
    parser.add_argument("--model", required=True, help="architecture, e.g. resnet50")
    parser.add_argument(
        "--weights",
        default="radiologynet",
        help="random, imagenet, radiologynet, another tag, or a weights "
        "folder/file (default radiologynet)",
    )
    parser.add_argument(
        "--lr",
        default="1e-4",
        help="learning rate, kept as written: it names the run folder, "
        "<data>-<model>-<weights>-<lr>-run1, e.g. wrist-resnet50-radiologynet-1e-4-run1 "
        "(default 1e-4)",
    )
    parser.add_argument(
        "--fraction",
        type=float,
        default=None,
        help="keep this share of the training split (class-stratified)",
    )
    parser.add_argument("--out", default="runs", help="results folder (default ./runs)")
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run one fine-tuning and print its test metrics; returns the exit code."""
    from dataclasses import replace

    from radiologynet.protocol import get_task_spec
    from radiologynet.protocol.runner import check_output_folder, data_label, plan, run_one
    from radiologynet.train import distributed as ddp
    from radiologynet.train.runs import DIVERGED

    config, settings = run_configuration(args, paper=False)
    task = get_task_spec(args.task)
    (planned,) = plan(
        task.name,
        [args.model],
        [args.weights],
        [args.lr],
        runs=1,
        fractions=[args.fraction] if args.fraction is not None else None,
    )
    spec = replace(planned, prefix=data_label(args.data))  # runs on other data: other folders
    check_output_folder(args.out)
    ddp.init_from_env()
    result = run_one(spec, task, args.data, args.out, config, settings, overwrite=args.overwrite)
    if ddp.is_main():
        test = result["test"]
        numbers = {k: v for k, v in test.items() if not isinstance(v, (list, dict))}
        print(
            json.dumps(
                {
                    "run": spec.name,
                    "status": result["status"],
                    "best_epoch": result["best_epoch"],
                    "val": result["val"],
                    "test": numbers,
                },
                indent=2,
            )
        )
        if "confusion_matrix" in test:  # one row per true class, as result.json has it
            print("test confusion matrix (rows: true, columns: predicted):")
            width = max(len(str(c)) for c in test["classes"])
            for name, row in zip(test["classes"], test["confusion_matrix"], strict=True):
                print(f"  {name:>{width}}  " + " ".join(f"{n:5d}" for n in row))
        if result["status"] == DIVERGED:
            print(f"diverged: {result.get('diverged')}; try a lower --lr", file=sys.stderr)
        print(
            f"results: {args.out}/{spec.name}/ (per-image: test_predictions.csv, "
            "val_predictions.csv; the model: model/)"
        )
    return 0
