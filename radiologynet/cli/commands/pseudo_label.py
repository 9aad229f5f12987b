"""``radiologynet pseudo-label ARCHIVE --out labels.csv``: cluster an unlabelled DICOM
archive into de-identified pseudo-labels, with a report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radiologynet.pretraining.pseudolabel import (
    DEFAULT_THRESHOLD,
    FeatureWeights,
    PseudoLabelConfig,
    pseudo_label,
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Features per image from the DICOM header, a zoo backbone's image "
        "embedding and optional free text; k-means (k by silhouette when "
        "--clusters is not given) or HDBSCAN; clusters mixing modalities or "
        "body parts above --threshold are excluded. Writes labels.csv "
        "(+ labels.json) and a report folder with a mosaic; no patient names, "
        "IDs or dates. Embeddings are cached, so an interrupted run resumes."
    )
    parser.add_argument("archive", type=Path, help="folder of DICOM files (any depth)")
    parser.add_argument("--out", type=Path, required=True, help="the labels CSV to write")
    parser.add_argument(
        "--clusters",
        type=int,
        default=None,
        help="number of clusters (default: chosen by silhouette score)",
    )
    parser.add_argument(
        "--max-clusters",
        type=int,
        default=50,
        help="largest k tried when --clusters is not given (default 50)",
    )
    parser.add_argument("--method", choices=("kmeans", "hdbscan"), default="kmeans")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="exclude clusters whose heterogeneity exceeds this (0..1, "
        f"default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--backbone",
        default="resnet18",
        help="zoo architecture that embeds the images (default resnet18)",
    )
    parser.add_argument(
        "--backbone-weights",
        default=None,
        help="its weights: a tag (radiologynet), a folder, or none (random)",
    )
    parser.add_argument(
        "--image-size", type=int, default=64, help="input side for the embeddings (default 64)"
    )
    parser.add_argument(
        "--text-csv",
        type=Path,
        default=None,
        help="CSV with columns path,text (e.g. report text) to add as features",
    )
    for block, default in FeatureWeights().as_dict().items():
        shown = default if default is not None else "1 with pretrained weights, 0.1 without"
        parser.add_argument(
            f"--weight-{block}",
            type=float,
            default=default,
            help=f"weight of the {block} features (default {shown})",
        )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="embedding cache folder (default: OUT stem + .cache)",
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="report folder (default: OUT stem + -report)"
    )
    parser.add_argument(
        "--hide-paths",
        action="store_true",
        help="key rows by salted hash only (no relative paths in labels.csv)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    weights = FeatureWeights(
        **{b: getattr(args, f"weight_{b}") for b in FeatureWeights().as_dict()}
    )
    config = PseudoLabelConfig(
        n_clusters=args.clusters,
        method=args.method,
        k_range=(2, args.max_clusters),
        threshold=args.threshold,
        backbone=args.backbone,
        backbone_weights=args.backbone_weights,
        image_size=args.image_size,
        feature_weights=weights,
        hide_paths=args.hide_paths,
        seed=args.seed,
    )
    result = pseudo_label(
        args.archive,
        args.out,
        config,
        text_csv=args.text_csv,
        cache_dir=args.cache,
        report_dir=args.report,
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    excluded = [s for s in result.summaries if not s.kept]
    print(
        f"wrote {result.labels_csv}: {len(result.paths)} images, {len(result.summaries)} "
        f"clusters, {result.n_classes} kept as classes, {len(excluded)} excluded"
    )
    for summary in excluded:
        print(
            f"  excluded cluster {summary.cluster} (n={summary.size}, heterogeneity "
            f"{summary.heterogeneity:.2f}): {dict(summary.modalities)} "
            f"{dict(summary.body_parts)}"
        )
    print(f"report: {result.report['markdown']}")
    return 0
