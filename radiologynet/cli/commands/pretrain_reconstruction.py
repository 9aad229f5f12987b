"""``radiologynet pretrain-reconstruction``: the paper's reconstruction pretraining of the
vanilla U-Net, written as a weights folder."""

from __future__ import annotations

import argparse

from radiologynet.cli.commands.pretrain import add_recipe_options, recipe_settings


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``pretrain-reconstruction`` parser: description, options and ``func``."""
    parser.description = (
        "Train the paper's vanilla U-Net (about 118k parameters) to reproduce "
        "the images under --data and write a weights folder that "
        "create_unet(None, weights=FOLDER) loads (--input-size: a multiple of 4). Re-run "
        "the same command to resume; launch with torchrun for several GPUs."
    )
    parser.add_argument("--data", required=True, help="folder of images (PNG/JPEG/DICOM)")
    parser.add_argument("--out", required=True, help="the weights folder to write")
    add_recipe_options(parser)
    parser.add_argument("--in-chans", type=int, default=None, help="default 3")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default=None,
        help="fp32 (the recipe's), bf16 autocast, or auto (bf16 on CUDA)",
    )
    parser.add_argument(
        "--cache",
        default=None,
        help="folder for a memory-mapped decoded-image cache (default: decode every read)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the pretraining; prints the folder written."""
    from radiologynet.pretraining.reconstruction import (
        ReconstructionConfig,
        pretrain_reconstruction,
        reconstruction_config,
    )
    from radiologynet.train import distributed as ddp

    config = reconstruction_config(**recipe_settings(args), precision=args.precision)
    given = {"input_size": args.input_size, "in_chans": args.in_chans, "cache_dir": args.cache}
    reconstruction = ReconstructionConfig(**{k: v for k, v in given.items() if v is not None})
    result = pretrain_reconstruction(args.data, args.out, config, reconstruction)
    if ddp.is_main():
        print(result.out_dir)
    return 0
