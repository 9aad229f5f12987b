"""``radiologynet pretrain --data ARCHIVE --labels labels.csv --model resnet50 --out DIR``:
your own RadiologyNET-style weights from pseudo-labels."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Classification pretraining on the kept clusters of labels.csv with the "
        "RadiologyNET recipe (AdamW, cross-entropy, oversampled small classes, "
        "flip/rotation/brightness/contrast augmentation, early stopping, the "
        "architecture's input size). Writes a weights folder that "
        "radiologynet.create_model, timm 'local-dir:' and create_unet load. "
        "Re-run the same command to resume; launch with torchrun for several "
        "GPUs."
    )
    parser.add_argument("--data", type=Path, required=True, help="the archive folder")
    parser.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="labels.csv written by `radiologynet pseudo-label`",
    )
    parser.add_argument("--model", default="resnet50", help="zoo architecture (default resnet50)")
    parser.add_argument("--out", type=Path, required=True, help="the weights folder to write")
    parser.add_argument(
        "--modality",
        default=None,
        help="keep only this modality (MR, CT, CR, ...): a single-modality variant",
    )
    parser.add_argument(
        "--init", default=None, help="starting weights (default random, as the paper pretrained)"
    )
    add_recipe_options(parser)
    _add_split_options(parser)
    parser.set_defaults(func=run)


def add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """The settings both pretraining commands take over their recipe: ``--input-size``
    (each command's data configuration) and the ``TrainConfig`` settings read by
    :func:`recipe_settings` (left out, the recipe's value holds)."""
    parser.add_argument(
        "--input-size", type=int, default=None, help="input side (default: the recipe's)"
    )
    parser.add_argument("--lr", type=float, default=None, help="default: the recipe's")
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="epoch budget (default: the recipe's)"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stopping: epochs without a better validation loss (default: the recipe's)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes")
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="start over (and overwrite) even if OUT holds a checkpoint or finished weights",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="training seed, and pretrain's split seed (default 0)",
    )


def recipe_settings(args: argparse.Namespace) -> dict[str, object]:
    """The ``TrainConfig`` keywords of :func:`add_recipe_options`'s arguments (``None``:
    the recipe's value); ``--input-size`` is each command's own."""
    return {
        "lr": args.lr,
        "max_epochs": args.max_epochs,
        "patience": args.patience,
        "batch_size": args.batch_size,
        "device": args.device,
        "num_workers": args.workers,
        "resume": not args.no_resume,
        "seed": args.seed,
    }


def _add_split_options(parser: argparse.ArgumentParser) -> None:
    """The run's splits, oversampling and site (``PretrainConfig`` fields)."""
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.125,
        help="stratified validation share (default 0.125, the authors')",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.125,
        help="stratified test share (default 0.125, the authors'; 0: none)",
    )
    parser.add_argument(
        "--oversampling",
        choices=("replicate", "weighted"),
        default="replicate",
        help="replicate: every class repeated up to the largest (the "
        "authors'); weighted: a WeightedRandomSampler draw per epoch",
    )
    parser.add_argument(
        "--site", default="local", help="short name of the data's origin, for the model card"
    )


def run(args: argparse.Namespace) -> int:
    from radiologynet.pretraining.pretrain import PretrainConfig, pretrain, pretrain_config
    from radiologynet.train import distributed as ddp

    settings = recipe_settings(args)
    config = pretrain_config(args.model, **settings)
    pretraining = PretrainConfig(
        model=args.model,
        weights=args.init,
        modality=args.modality,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        oversampling=args.oversampling,
        site=args.site,
        input_size=args.input_size,
        split_seed=args.seed or 0,
    )
    result = pretrain(args.data, args.labels, args.out, config, pretraining)
    if ddp.is_main():
        fit = result.fit
        print(
            f"wrote {result.out_dir}: {len(result.class_names)} classes, "
            f"{result.n_train} training / {result.n_val} validation images, best epoch "
            f"{fit.best_epoch} of {fit.epochs_run}, validation accuracy "
            f"{fit.val.get('accuracy', float('nan')):.3f}"
        )
        print(
            f"  load with: radiologynet.create_model('{args.model}', "
            f"weights='{result.out_dir}', num_classes=N)"
        )
    return 0
