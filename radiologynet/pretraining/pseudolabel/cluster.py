"""Clustering features into pseudo-labels and dropping incoherent clusters.

The number of k-means clusters, when not given, is the one with the best silhouette score
over a range. A cluster's heterogeneity is the mean of two normalised entropies, of its
modality mix and of its body-part mix (each entropy divided by the log of the number of
values seen in the whole archive, so 0 = one value, 1 = evenly spread over all of them;
missing tags do not count). Clusters above the threshold are excluded, as the RadiologyNET
dataset paper excluded incoherent clusters (50 clusters -> 36 classes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from radiologynet._optional import require
from radiologynet.errors import ArchiveError, InvalidArgumentError

HDBSCAN = require("sklearn.cluster", "pseudo-labelling").HDBSCAN
KMeans = require("sklearn.cluster", "pseudo-labelling").KMeans
silhouette_score = require("sklearn.metrics", "pseudo-labelling").silhouette_score

DEFAULT_THRESHOLD = 0.5
#: The clustering methods of :func:`cluster_features`.
METHODS = ("kmeans", "hdbscan")
NOISE = -1
#: Silhouette scores are computed on at most this many images (the score is quadratic).
SILHOUETTE_SAMPLE = 10_000


@dataclass(frozen=True)
class ClusterResult:
    """Cluster ids per image (``-1`` = HDBSCAN noise), the k used and how it was chosen."""

    assignments: np.ndarray
    n_clusters: int
    method: str
    silhouette: dict[int, float]


def choose_k(
    features: np.ndarray, k_range: tuple[int, int] = (2, 50), seed: int = 0
) -> tuple[int, dict[int, float]]:
    """The k in ``k_range`` (inclusive, capped at n-1) with the best silhouette score
    (on a random sample of at most :data:`SILHOUETTE_SAMPLE` images)."""
    n = len(features)
    low, high = max(2, k_range[0]), min(k_range[1], n - 1)
    if high < low:
        raise ArchiveError(
            f"Only {n} image(s): at least 3 are needed to choose the number "
            "of clusters; pass n_clusters or add images."
        )
    scores = {}
    for k in range(low, high + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(features)
        if len(set(labels)) < 2:
            continue
        scores[k] = float(
            silhouette_score(
                features, labels, random_state=seed, sample_size=min(n, SILHOUETTE_SAMPLE)
            )
        )
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, scores


def cluster_features(
    features: np.ndarray,
    n_clusters: int | None = None,
    *,
    method: str = "kmeans",
    k_range: tuple[int, int] = (2, 50),
    min_cluster_size: int = 5,
    seed: int = 0,
) -> ClusterResult:
    """Cluster the rows of ``features`` with scikit-learn k-means or HDBSCAN.

    Raises:
        ArchiveError: fewer images than clusters.
        InvalidArgumentError: an unknown method or a non-positive cluster count.
    """
    check_method(method)
    n = len(features)
    if method == "kmeans":
        if n_clusters is not None and n_clusters < 1:
            raise InvalidArgumentError(f"n_clusters={n_clusters}: ask for at least 1 cluster.")
        if n_clusters is not None and n < n_clusters:
            raise ArchiveError(
                f"The archive has {n} readable image(s), fewer than the {n_clusters} clusters "
                f"asked for; pass --clusters {max(1, n // 2)} or fewer, or add images."
            )
        scores: dict[int, float] = {}
        if n_clusters is None:
            n_clusters, scores = choose_k(features, k_range, seed)
        labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(features)
        return ClusterResult(labels.astype(int), int(n_clusters), "kmeans", scores)
    if n < min_cluster_size:
        raise ArchiveError(
            f"The archive has {n} readable image(s), fewer than HDBSCAN's "
            f"min_cluster_size={min_cluster_size}; lower it or add images."
        )
    labels = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(features)
    k = len(set(labels) - {NOISE})
    return ClusterResult(labels.astype(int), k, "hdbscan", {})


def check_method(method: str) -> None:
    """Refuse a clustering method other than :data:`METHODS` (``InvalidArgumentError``)."""
    if method not in METHODS:
        raise InvalidArgumentError(
            f"Unknown clustering method {method!r}; use 'kmeans' or 'hdbscan'."
        )


def check_threshold(threshold: float) -> None:
    """Refuse a heterogeneity threshold outside [0, 1] (``InvalidArgumentError``)."""
    if not 0 <= threshold <= 1:
        raise InvalidArgumentError(
            f"threshold={threshold}: heterogeneity is in [0, 1]; "
            "pick a threshold in that range (default 0.5)."
        )


def normalised_entropy(values: Sequence[str | None], n_categories: int) -> float:
    """Entropy of the value mix divided by ``log(n_categories)``; missing values ignored."""
    counts = Counter(v for v in values if v)
    total = sum(counts.values())
    if n_categories < 2 or total == 0:
        return 0.0
    p = np.array(list(counts.values()), dtype=float) / total
    return float(-(p * np.log(p)).sum() / np.log(n_categories))


@dataclass(frozen=True)
class ClusterSummary:
    """One cluster: size, modality and body-part mix, heterogeneity, kept or not."""

    cluster: int
    size: int
    modalities: dict[str, int]
    body_parts: dict[str, int]
    heterogeneity: float
    kept: bool


def summarise_clusters(
    assignments: np.ndarray,
    modalities: Sequence[str | None],
    body_parts: Sequence[str | None],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[ClusterSummary]:
    """Heterogeneity and the keep/exclude decision per cluster (noise is never kept)."""
    check_threshold(threshold)
    n_mod = len({m for m in modalities if m})
    n_body = len({b for b in body_parts if b})
    summaries = []
    for cluster in sorted(set(assignments.tolist())):
        idx = np.flatnonzero(assignments == cluster)
        mods = [modalities[i] for i in idx]
        parts = [body_parts[i] for i in idx]
        terms = [normalised_entropy(x, n) for x, n in ((mods, n_mod), (parts, n_body)) if n > 1]
        het = float(np.mean(terms)) if terms else 0.0
        summaries.append(
            ClusterSummary(
                cluster=int(cluster),
                size=len(idx),
                modalities=dict(Counter(m or "MISSING" for m in mods).most_common()),
                body_parts=dict(Counter(b or "MISSING" for b in parts).most_common()),
                heterogeneity=het,
                kept=cluster != NOISE and het <= threshold,
            )
        )
    return summaries
