"""``radiologynet embed DATA --model ARCH --weights W --out FILE.parquet``."""

from __future__ import annotations

import argparse

from radiologynet.cli.options import option


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``embed`` parser: description, options and ``func``."""
    parser.description = (
        "Embed images with a zoo backbone: the pooled pre-logits features (timm's "
        "forward_head(forward_features(x), pre_logits=True)) under the weights' own "
        "preprocessing, written as Parquet (path, label, split, embedding; the model, "
        "weights tag and sha256, preprocessing and library version in the schema "
        "metadata) or .npy. DATA is an image, a folder, a DICOMDIR or a CSV with a 'path' "
        "(and optional 'label', 'split') column; or give --task with --data ROOT for a "
        "benchmark's labels and splits. Unreadable files are skipped and counted; a rerun "
        "into the same file embeds only the images it does not hold yet."
    )
    parser.add_argument("source", nargs="?", metavar="DATA", help="image, folder, DICOMDIR, CSV")
    parser.add_argument("--task", default=None, help="btmr, covid19, boneage, grazpedwri, folder")
    parser.add_argument("--data", default=None, metavar="ROOT", help="the task's dataset folder")
    parser.add_argument("--model", default=None, help="architecture (e.g. resnet50)")
    parser.add_argument(
        "--weights",
        default=None,
        help="radiologynet, imagenet, random (default), another tag, or a weights/run folder",
    )
    parser.add_argument("--out", required=True, help="FILE.parquet (or FILE.npy)")
    parser.add_argument("--format", choices=("parquet", "npy"), default=None)
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument(
        option("batch_size"), type=int, default=32, help="images per batch (default: 32)"
    )
    parser.add_argument(
        option("input_size"), type=int, default=None, help="another input side than the weights'"
    )
    parser.add_argument(option("device"), default=None, help="cpu, cuda, cuda:1, mps")
    parser.add_argument(
        option("precision"), choices=("fp32", "bf16", "auto"), default="fp32", help="fp32 default"
    )
    parser.add_argument(option("num_workers"), type=int, default=None, help="decoding processes")
    parser.add_argument(option("split_seed"), type=int, default=0, help="--task split seed")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an --out made with other weights"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Embed, write the file, print a one-line summary."""
    from radiologynet.errors import InvalidArgumentError
    from radiologynet.inference.embed import embed

    if args.task is not None and args.data is None:
        raise InvalidArgumentError(f"--task {args.task} needs --data ROOT (the dataset folder)")
    if args.task is None and args.data is not None and args.source is None:
        args.source = args.data
    result = embed(
        args.source,
        model=args.model,
        weights=args.weights,
        task=args.task,
        root=args.data,
        out=args.out,
        format=args.format,
        dtype=args.dtype,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        num_workers=args.workers,
        input_size=args.input_size,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
    )
    meta = result.metadata
    print(
        f"{len(result)} embeddings ({len(result) - result.reused} new, {result.reused} "
        f"already there), {len(result.unreadable)} unreadable skipped: {args.out} "
        f"({meta['model']} {meta['weights']}, {result.vectors.shape[1] if len(result) else 0}-d)"
    )
    return 0
