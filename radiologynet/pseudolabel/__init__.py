"""Pseudo-labelling an unlabelled DICOM archive (the RadiologyNET dataset recipe).

Features per image from the DICOM header, a registry backbone's image embedding and
optional free text (:mod:`~radiologynet.pseudolabel.features`); scikit-learn clustering
and a heterogeneity filter (:mod:`~radiologynet.pseudolabel.cluster`); de-identified
labels and a report (:mod:`~radiologynet.pseudolabel.report`); a synthetic archive for
tests and the demo (:mod:`~radiologynet.pseudolabel.synthetic`).
"""

from radiologynet.pseudolabel.cluster import (
    DEFAULT_THRESHOLD,
    ClusterResult,
    ClusterSummary,
    cluster_features,
    normalised_entropy,
    summarise_clusters,
)
from radiologynet.pseudolabel.features import FeatureWeights, combine, scan_archive
from radiologynet.pseudolabel.pipeline import PseudoLabelResult, pseudo_label
from radiologynet.pseudolabel.report import path_key
from radiologynet.pseudolabel.synthetic import (
    DEFAULT_GROUPS,
    MIXED_GROUP,
    SyntheticGroup,
    write_synthetic_archive,
)

__all__ = [
    "DEFAULT_GROUPS",
    "DEFAULT_THRESHOLD",
    "MIXED_GROUP",
    "ClusterResult",
    "ClusterSummary",
    "FeatureWeights",
    "PseudoLabelResult",
    "SyntheticGroup",
    "cluster_features",
    "combine",
    "normalised_entropy",
    "path_key",
    "pseudo_label",
    "scan_archive",
    "summarise_clusters",
    "write_synthetic_archive",
]
