"""Pseudo-labelling an unlabelled DICOM archive (the RadiologyNET dataset recipe).

Features per image from the DICOM header, a registry backbone's image embedding and
optional free text (:mod:`~radiologynet.pretraining.pseudolabel.features`); scikit-learn clustering
and a heterogeneity filter (:mod:`~radiologynet.pretraining.pseudolabel.cluster`); de-identified
labels and a report (:mod:`~radiologynet.pretraining.pseudolabel.report`). The synthetic archive
of the tests and the demo is :mod:`radiologynet.demo.synthetic_archive`.
"""

from radiologynet.pretraining.pseudolabel.cluster import (
    DEFAULT_THRESHOLD,
    ClusterResult,
    ClusterSummary,
    cluster_features,
    normalised_entropy,
    summarise_clusters,
)
from radiologynet.pretraining.pseudolabel.features import FeatureWeights, combine, scan_archive
from radiologynet.pretraining.pseudolabel.pipeline import (
    PseudoLabelConfig,
    PseudoLabelResult,
    pseudo_label,
)
from radiologynet.pretraining.pseudolabel.report import path_key

__all__ = [
    "DEFAULT_THRESHOLD",
    "ClusterResult",
    "ClusterSummary",
    "FeatureWeights",
    "PseudoLabelConfig",
    "PseudoLabelResult",
    "cluster_features",
    "combine",
    "normalised_entropy",
    "path_key",
    "pseudo_label",
    "scan_archive",
    "summarise_clusters",
]
