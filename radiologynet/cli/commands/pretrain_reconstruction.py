"""``radiologynet pretrain-reconstruction``: the paper's reconstruction pretraining of the
vanilla U-Net, written as a weights folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain-reconstruction`` sub-command."""
    parser = subparsers.add_parser(
        "pretrain-reconstruction",
        help="pretrain the vanilla U-Net to reconstruct its input (the paper's)",
        description="Train the paper's vanilla U-Net (about 118k parameters) to reproduce "
        "the images under --data and write a weights folder that "
        "create_unet(None, weights=FOLDER) loads. Re-run the same command to resume; "
        "launch with torchrun for several GPUs.",
    )
    parser.add_argument("--data", required=True, help="folder of images (PNG/JPEG/DICOM)")
    parser.add_argument("--out", required=True, help="the weights folder to write")
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="epoch budget (default: the recipe's 10)"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stopping: epochs without a lower reconstruction loss (default 10)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's 32")
    parser.add_argument("--lr", type=float, default=None, help="default: the recipe's 1e-3")
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="letterbox side in pixels, a multiple of 4 (default 224)",
    )
    parser.add_argument("--in-chans", type=int, default=None, help="default 3")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default=None,
        help="fp32 (default, the recipe's), bf16 autocast, or auto (bf16 on CUDA)",
    )
    parser.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes")
    parser.add_argument(
        "--cache",
        default=None,
        help="folder for a memory-mapped decoded-image cache (default: decode every read)",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="start over (and overwrite) even if OUT holds a checkpoint or finished weights",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the pretraining; prints the folder written."""
    from radiologynet.pretraining.reconstruction import (
        pretrain_reconstruction,
        reconstruction_config,
    )
    from radiologynet.train import distributed as ddp

    config = reconstruction_config(
        max_epochs=args.max_epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        lr=args.lr,
        input_size=args.input_size,
        in_chans=args.in_chans,
        precision=args.precision,
        seed=args.seed,
        device=args.device,
        num_workers=args.workers,
        cache_dir=args.cache,
        resume=not args.no_resume,
    )
    result = pretrain_reconstruction(args.data, args.out, config)
    if ddp.is_main():
        print(result.out_dir)
    return 0
