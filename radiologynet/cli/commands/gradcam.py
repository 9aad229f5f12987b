"""``radiologynet gradcam --model RUN_OR_WEIGHTS [--model ...] --images DIR --out DIR``."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``gradcam`` parser: description, options and ``func``."""
    parser.description = (
        "Grad-CAM (pytorch-grad-cam) on the registry's target layer for each "
        "image, drawn over the model's preprocessed input. Give --model several "
        "times (e.g. the random, ImageNet and RadiologyNET runs) to also get a "
        "side-by-side sheet of the same images under each."
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="DIR",
        help="a run folder (result.json + model/) or a weights folder; repeat to compare models",
    )
    parser.add_argument(
        "--images",
        required=True,
        nargs="+",
        help="a folder of images (DICOM, PNG, JPEG...) or image files",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--target",
        type=int,
        default=None,
        help="class index to explain (default: each image's prediction)",
    )
    parser.add_argument(
        "--input-size", type=int, default=None, help="override the model's input size"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the heatmaps (one sub-folder per model) and, for several models, the sheet."""
    from pathlib import Path

    from radiologynet.analysis import explain

    images = explain.list_images(args.images[0] if len(args.images) == 1 else args.images)
    targets = [args.target] * len(images) if args.target is not None else None
    models = {}
    for path in args.model:
        model, label = explain.load_model(path)
        while label in models:
            label = f"{label}'"
        models[label] = model
    out = Path(args.out)
    for label, model in models.items():
        folder = out / label if len(models) > 1 else out
        index = explain.explain_images(
            model, images, folder, label=label, input_size=args.input_size, targets=targets
        )
        print(f"{label}: {len(images)} heatmaps, index {index}")
    if len(models) > 1:
        sheet = explain.comparison_sheet(
            models, images, out / "sheet.png", input_size=args.input_size, targets=targets
        )
        print(f"comparison sheet: {sheet}")
    return 0
