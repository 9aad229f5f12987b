"""``radiologynet preprocess SRC_DIR --weights W --out CACHE``: decode a folder of images
once into the cache training reads quickly."""

from __future__ import annotations

import argparse
from pathlib import Path

from radiologynet.data.cache import build_cache
from radiologynet.errors import DatasetNotFoundError
from radiologynet.io import IMAGE_SUFFIXES, list_image_files
from radiologynet.models._weights import Preprocessing, get_weights


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``preprocess`` parser: description, options and ``func``."""
    parser.description = (
        "Decode every image under SRC_DIR (DICOM, PNG, JPEG, ...) to 8-bit "
        "grayscale, letterbox it to the size the weights expect and store it in "
        "CACHE (images.npy + index.json). Class subfolders become labels."
    )
    parser.add_argument("src", type=Path, metavar="SRC_DIR", help="folder of images")
    parser.add_argument(
        "--weights",
        default="resnet50.radiologynet",
        help="weight whose preprocessing to use (default: %(default)s)",
    )
    parser.add_argument(
        "--size", type=int, default=None, help="letterbox side instead of the weight's input size"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="CACHE", help="cache folder to write"
    )
    parser.add_argument(
        "--window",
        default=None,
        help="DICOM window: a preset (lung, mediastinum, bone, brain, abdomen) or CENTER,WIDTH",
    )
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave unreadable files out (they are listed) instead of failing",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if current")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads decoding images (default 0: decode in the main thread)",
    )
    parser.set_defaults(func=run)


def _window(text: str | None) -> str | tuple[float, float] | None:
    if text is None or "," not in text:
        return text
    center, width = text.split(",", 1)
    return float(center), float(width)


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the cache; prints what it holds. Returns the exit code."""
    src: Path = args.src
    if not src.is_dir():
        raise DatasetNotFoundError(f"{src}: no such folder.")
    preprocessing = get_weights(args.weights).preprocessing
    if args.size is not None:
        preprocessing = Preprocessing(
            input_size=args.size,
            interpolation=preprocessing.interpolation,
            letterbox=preprocessing.letterbox,
        )
    paths = list_image_files(src)
    if not paths:
        raise DatasetNotFoundError(
            f"{src}: no images found (suffixes {', '.join(IMAGE_SUFFIXES)} or DICOM files)."
        )
    classes = sorted(
        {p.relative_to(src).parts[0] for p in paths if len(p.relative_to(src).parts) > 1}
    )
    labels = None
    if classes and all(len(p.relative_to(src).parts) > 1 for p in paths):
        labels = [p.relative_to(src).parts[0] for p in paths]
    cache = build_cache(
        paths,
        args.out,
        preprocessing,
        labels=labels,
        window=_window(args.window),
        skip_unreadable=args.skip_unreadable,
        rebuild=args.rebuild,
        num_workers=args.threads,
    )
    size = cache.size
    print(
        f"{args.out}: {len(cache)} images, {size}x{size} uint8"
        + (f", {len(set(labels))} classes" if labels else "")
        + (f", {len(cache.unreadable)} unreadable skipped" if cache.unreadable else "")
    )
    for path, reason in cache.unreadable:
        print(f"  skipped {path}: {reason}")
    return 0
