"""``radiologynet pretrain-reconstruction``: the paper's reconstruction pretraining of the
vanilla U-Net, written as a weights folder."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``pretrain-reconstruction`` parser: description, options and ``func``."""
    parser.description = (
        "Train the paper's vanilla U-Net (about 118k parameters) to reproduce "
        "the images under --data and write a weights folder that "
        "create_unet(None, weights=FOLDER) loads."
    )
    parser.add_argument("--data", required=True, help="folder of images (PNG/JPEG/DICOM)")
    parser.add_argument("--out", required=True, help="the weights folder to write")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--size", type=int, default=224, help="letterbox side (pixels)")
    parser.add_argument("--in-chans", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the pretraining; prints the folder written."""
    from radiologynet.pretraining.reconstruction import pretrain_reconstruction

    out = pretrain_reconstruction(
        args.data,
        args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        size=args.size,
        in_chans=args.in_chans,
        seed=args.seed,
        device=args.device,
    )
    print(out)
    return 0
