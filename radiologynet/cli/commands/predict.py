"""``radiologynet predict WEIGHTS DATA --out preds.csv``."""

from __future__ import annotations

import argparse

from radiologynet.cli.options import option


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``predict`` parser: description, options and ``func``."""
    parser.description = (
        "Predict every image of DATA with a trained model and write one row per image: "
        "path, prediction (a class name; a value for bone age), one score_<class> column "
        "per class (softmax, or sigmoid for binary and multi-label heads) and error "
        "(unreadable files get a row and the reason). WEIGHTS is a run folder (made by "
        "finetune/benchmark), its model/ folder, any weights folder, or a zoo name with "
        "--num-classes; DATA an image, a folder (searched recursively, DICOM without "
        "suffix and DICOMDIR included) or a CSV with a 'path' column."
    )
    parser.add_argument("weights", metavar="WEIGHTS", help="run folder, weights folder or zoo name")
    parser.add_argument("data", metavar="DATA", help="image, folder, DICOMDIR or CSV of paths")
    parser.add_argument("--out", required=True, help="the file to write (preds.csv)")
    parser.add_argument(
        "--format",
        choices=("csv", "json", "parquet"),
        default=None,
        help="output format (default: from --out's suffix, else csv; parquet needs pyarrow)",
    )
    parser.add_argument("--arch", default=None, help="architecture, for weights that omit it")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="a new head of this size (zoo names)"
    )
    parser.add_argument(
        option("batch_size"), type=int, default=32, help="images per batch (default: 32)"
    )
    parser.add_argument(option("device"), default=None, help="cpu, cuda, cuda:1, mps")
    parser.add_argument(
        option("precision"),
        choices=("fp32", "bf16", "auto"),
        default="fp32",
        help="fp32 (default), bf16 autocast, or auto (bf16 on CUDA)",
    )
    parser.add_argument(
        option("num_workers"),
        type=int,
        default=None,
        help="decoding processes (default: one per spare core, at least one)",
    )
    parser.add_argument("--sex-column", default=None, help="bone age: the CSV column holding M/F")
    parser.add_argument(
        "--gradcam",
        metavar="DIR",
        default=None,
        help="also write Grad-CAM heatmaps of the readable images to DIR (classifiers)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (it is off when piped)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Predict, write the file, print a one-line summary (and the Grad-CAM index)."""
    from pathlib import Path

    from radiologynet.errors import InvalidArgumentError
    from radiologynet.inference.loading import load
    from radiologynet.inference.predict import output_format, predict

    out = Path(args.out)
    kind = output_format(out, args.format)
    if out.is_dir():
        raise InvalidArgumentError(f"--out {out}: this is a folder; name the file to write")
    loaded = load(args.weights, arch=args.arch, num_classes=args.num_classes)
    predictions = predict(
        loaded,
        args.data,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        num_workers=args.workers,
        sex_column=args.sex_column,
        progress=False if args.no_progress else None,
    )
    predictions.write(out, kind)
    print(
        f"{len(predictions.rows)} images, {predictions.errors} unreadable: {out} "
        f"({loaded.weights_tag}, {loaded.task_kind})"
    )
    if args.gradcam:
        _gradcam(loaded, predictions, Path(args.gradcam))
    return 0


def _gradcam(loaded, predictions, out) -> None:
    """Grad-CAM of the readable images (analysis.explain), beside the predictions."""
    from radiologynet.analysis import explain
    from radiologynet.errors import InvalidArgumentError

    if loaded.task_kind not in ("multiclass", "binary", "multilabel"):
        raise InvalidArgumentError(
            f"--gradcam: the model is a {loaded.task_kind} model; Grad-CAM explains classifiers"
        )
    paths = [row["path"] for row in predictions.rows if not row["error"]]
    if paths:
        index = explain.explain_images(loaded.model, paths, out, label=loaded.weights_tag)
        print(f"Grad-CAM: {len(paths)} heatmaps, index {index}")
