"""Archive -> features -> clusters -> filtered pseudo-labels + report, in one call."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from radiologynet.errors import ArchiveError, InvalidArgumentError
from radiologynet.models._weights import is_random_init
from radiologynet.pretraining.pseudolabel.cluster import (
    DEFAULT_THRESHOLD,
    ClusterResult,
    ClusterSummary,
    check_method,
    check_threshold,
    cluster_features,
    summarise_clusters,
)
from radiologynet.pretraining.pseudolabel.features import (
    ArchiveScan,
    FeatureWeights,
    combine,
    header_features,
    image_embeddings,
    read_uint8,
    scan_archive,
    text_features,
)
from radiologynet.pretraining.pseudolabel.report import path_key, write_labels, write_report


@dataclass
class PseudoLabelResult:
    """What a pseudo-labelling run produced."""

    labels_csv: Path
    report: dict[str, Path]
    paths: list[str]
    assignments: np.ndarray
    summaries: list[ClusterSummary]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        """How many clusters were kept as classes."""
        return sum(s.kept for s in self.summaries)


@dataclass(frozen=True)
class PseudoLabelConfig:
    """How :func:`pseudo_label` clusters an archive (frozen; checked in ``__post_init__``,
    before any file is read).

    Attributes:
        n_clusters: the number of k-means clusters; ``None`` picks it by silhouette score
            within ``k_range`` (inclusive).
        method: ``"kmeans"`` or ``"hdbscan"``.
        threshold: clusters whose heterogeneity exceeds it are excluded (0..1).
        backbone / backbone_weights / image_size: the registry model that embeds images,
            its weights (``None`` = random init, a tag or a weights folder) and input size.
        feature_weights: how much each feature block counts (default
            :class:`FeatureWeights`).
        hide_paths: leave the ``path`` column empty (rows are then keyed by salted hash).
        samples_per_cluster: thumbnails per cluster in the report.
        batch_size: images per embedding batch.
        seed: k-means, silhouette sampling and the report's thumbnails.
        progress: show progress bars.
    """

    n_clusters: int | None = None
    method: str = "kmeans"
    k_range: tuple[int, int] = (2, 50)
    threshold: float = DEFAULT_THRESHOLD
    backbone: str = "resnet18"
    backbone_weights: str | None = None
    image_size: int = 64
    feature_weights: FeatureWeights = field(default_factory=FeatureWeights)
    hide_paths: bool = False
    samples_per_cluster: int = 6
    batch_size: int = 32
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        check_method(self.method)
        check_threshold(self.threshold)
        minimum = {"image_size": 1, "batch_size": 1, "samples_per_cluster": 0, "seed": 0}
        if self.n_clusters is not None:
            minimum["n_clusters"] = 1
        for name, least in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidArgumentError(
                    f"PseudoLabelConfig {name}={value!r}: use an integer >= {least}."
                )
        low, high = self.k_range
        if not 2 <= low <= high:
            raise InvalidArgumentError(
                f"PseudoLabelConfig k_range={self.k_range!r}: use (low, high) with "
                "2 <= low <= high, e.g. (2, 50)."
            )


def pseudo_label(
    archive: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    config: PseudoLabelConfig | None = None,
    *,
    text_csv: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
) -> PseudoLabelResult:
    """Pseudo-label every DICOM image under ``archive`` and write ``out_csv`` + a report.

    Args:
        archive: the folder of DICOM files (any depth; non-DICOM files are skipped).
        out_csv: the labels CSV to write (``labels.json`` beside it).
        config: the clustering settings (default :class:`PseudoLabelConfig`).
        text_csv: optional CSV with ``path`` and ``text`` columns (e.g. report text).
        cache_dir: where image embeddings are cached (default ``<out_csv stem>.cache``
            beside the CSV); an interrupted run resumes from it.
        report_dir: where the report goes (default ``<out_csv stem>-report``).

    Returns:
        The result, with the paths of everything written.

    Raises:
        ArchiveError: no readable images, or fewer images than clusters.
    """
    config = config if config is not None else PseudoLabelConfig()
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir else out_csv.with_name(out_csv.stem + ".cache")
    report_dir = Path(report_dir) if report_dir else out_csv.with_name(out_csv.stem + "-report")
    pretrained = not is_random_init(config.backbone_weights)
    weights = config.feature_weights.resolved(pretrained)

    scan, embeddings, thumbnails = _scan_and_embed(archive, config, cache_dir)
    features = _combined_features(scan, embeddings, thumbnails, text_csv, weights)
    clusters = cluster_features(
        features, config.n_clusters, method=config.method, k_range=config.k_range, seed=config.seed
    )

    modalities = [h.get("Modality") for h in scan.headers]
    body_parts = [h.get("BodyPartExamined") for h in scan.headers]
    summaries = summarise_clusters(clusters.assignments, modalities, body_parts, config.threshold)
    notes = _notes(scan.headers, scan.skipped, summaries, config.threshold)
    settings = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "archive": Path(archive).name,
        **_cluster_settings(clusters, config),
        "backbone": config.backbone,
        "backbone_weights": config.backbone_weights,
        "image_size": config.image_size,
        "feature_weights": weights.as_dict(),
        "text_csv": Path(text_csv).name if text_csv else None,
        "seed": config.seed,
    }
    outputs = _Outputs(
        out_csv, report_dir, config.hide_paths, config.samples_per_cluster, config.seed
    )
    labels_csv, report = outputs.write(scan, clusters, summaries, settings, notes)
    return PseudoLabelResult(
        labels_csv, report, scan.paths, clusters.assignments, summaries, scan.skipped, notes
    )


@dataclass(frozen=True)
class _Outputs:
    """Where and how the labels CSV and the report are written."""

    out_csv: Path
    report_dir: Path
    hide_paths: bool
    samples_per_cluster: int
    seed: int

    def write(
        self,
        scan: ArchiveScan,
        clusters: ClusterResult,
        summaries: list[ClusterSummary],
        settings: dict[str, object],
        notes: list[str],
    ) -> tuple[Path, Path]:
        """Write the labels (keyed by salted hash when paths are hidden) and the report;
        returns their paths."""
        salt = _salt(self.out_csv)
        labels_csv = write_labels(
            self.out_csv,
            scan.paths,
            clusters.assignments,
            summaries,
            [h.get("Modality") for h in scan.headers],
            [h.get("BodyPartExamined") for h in scan.headers],
            salt=salt,
            hide_paths=self.hide_paths,
            metadata=settings,
        )
        thumbs = _thumbnails(
            scan.root, scan.paths, clusters.assignments, self.samples_per_cluster, self.seed
        )
        skipped = scan.skipped
        if self.hide_paths:
            skipped = [(f"key {path_key(p, salt)}", r) for p, r in scan.skipped]
        report = write_report(
            self.report_dir,
            summaries,
            thumbnails=thumbs,
            skipped=skipped,
            notes=notes,
            settings=settings,
        )
        return labels_csv, report


def _cluster_settings(clusters: ClusterResult, config: PseudoLabelConfig) -> dict[str, object]:
    """How the clusters were made, as the labels' metadata records it."""
    given = config.n_clusters or config.method != "kmeans"
    return {
        "method": clusters.method,
        "n_clusters": clusters.n_clusters,
        "k_chosen_by": "given" if given else "silhouette",
        "silhouette": clusters.silhouette,
        "threshold": config.threshold,
    }


def _scan_and_embed(
    archive: str | os.PathLike[str], config: PseudoLabelConfig, cache_dir: Path
) -> tuple[ArchiveScan, np.ndarray, np.ndarray]:
    """The archive's readable images (those whose pixels fail dropped), their embeddings
    and thumbnails.

    Raises:
        ArchiveError: no decodable image, or fewer images than ``n_clusters``.
    """
    scan = scan_archive(archive, progress=config.progress)
    embeddings, thumbnails, failed = image_embeddings(
        scan.root,
        scan.paths,
        arch=config.backbone,
        weights=config.backbone_weights,
        image_size=config.image_size,
        batch_size=config.batch_size,
        cache_dir=cache_dir,
        progress=config.progress,
    )
    n_clusters = config.n_clusters
    scan.drop(failed)
    if not scan.paths:
        raise ArchiveError(
            f"No image under {archive} could be decoded "
            f"({len(scan.skipped)} skipped); see the reasons in the report."
        )
    if n_clusters is not None and len(scan.paths) < n_clusters:
        raise ArchiveError(
            f"The archive {archive} has {len(scan.paths)} readable image(s), fewer than the "
            f"{n_clusters} clusters asked for; ask for at most {len(scan.paths)} clusters "
            "(a few images per cluster at least), or add images."
        )
    return scan, embeddings, thumbnails


def _combined_features(
    scan: ArchiveScan,
    embeddings: np.ndarray,
    thumbnails: np.ndarray,
    text_csv: str | os.PathLike[str] | None,
    weights: FeatureWeights,
) -> np.ndarray:
    """Header, image, thumbnail (and text) feature blocks, weighted and combined."""
    blocks = header_features(scan.headers)
    blocks["image"] = embeddings
    blocks["thumbnail"] = thumbnails
    if text_csv is not None:
        blocks["text"] = text_features(text_csv, scan.paths)
    return combine(blocks, weights)


def _salt(out_csv: Path) -> str:
    meta = out_csv.with_suffix(".json")
    if meta.is_file():
        try:
            return str(json.loads(meta.read_text())["salt"])
        except (KeyError, ValueError):
            pass
    return secrets.token_hex(8)


def _notes(
    headers: list[dict[str, object]],
    skipped: list[tuple[str, str]],
    summaries: list[ClusterSummary],
    threshold: float,
) -> list[str]:
    """What the report should say about the archive and the clusters."""
    notes = []
    n = len(headers)
    if skipped:
        reasons = Counter(r.split(":")[0] if r.startswith("Cannot") else r for _, r in skipped)
        notes.append(
            f"{len(skipped)} file(s) skipped: "
            + "; ".join(f"{c} x {r}" for r, c in reasons.most_common())
        )
    modalities = {h.get("Modality") for h in headers} - {None}
    if len(modalities) == 1:
        notes.append(
            f"Only one modality ({next(iter(modalities))}) in the archive: "
            "heterogeneity is measured over body part only."
        )
    for tag in (
        "Modality",
        "BodyPartExamined",
        "StudyDescription",
        "SeriesDescription",
        "ProtocolName",
    ):
        missing = sum(h.get(tag) is None for h in headers)
        if missing:
            notes.append(
                f"{tag} missing in {missing} of {n} images (encoded as MISSING; "
                "not counted in heterogeneity)."
            )
    shapes = {(h.get("Rows"), h.get("Columns")) for h in headers}
    if len(shapes) > 1:
        rows = [h.get("Rows") or 0 for h in headers]
        cols = [h.get("Columns") or 0 for h in headers]
        notes.append(
            f"{len(shapes)} different image sizes (rows {min(rows):.0f}-"
            f"{max(rows):.0f}, columns {min(cols):.0f}-{max(cols):.0f}): every "
            "image is letterboxed to a square."
        )
    if not any(s.kept for s in summaries):
        notes.append(
            f"Every cluster is above the heterogeneity threshold {threshold}: "
            "no classes; raise --threshold or ask for more clusters."
        )
    return notes


def _thumbnails(
    root: Path,
    paths: list[str],
    assignments: np.ndarray,
    per_cluster: int,
    seed: int,
    size: int = 64,
) -> dict[int, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    thumbs: dict[int, list[np.ndarray]] = {}
    for cluster in sorted(set(assignments.tolist())):
        idx = np.flatnonzero(assignments == cluster)
        chosen = rng.choice(idx, size=min(per_cluster, len(idx)), replace=False)
        images = []
        for i in sorted(chosen.tolist()):
            try:
                picture = read_uint8(root / paths[i], size)[0].numpy()
            except ArchiveError as err:  # decoded once already; report and carry on
                print(f"radiologynet pseudo-label: thumbnail skipped: {err}", file=sys.stderr)
                continue
            images.append(picture)
        thumbs[cluster] = images
    return thumbs
