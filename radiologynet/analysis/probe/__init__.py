"""Do these weights help on my data? Frozen-feature probes of several initialisations.

Given one feature file per initialisation (``radiologynet embed``'s parquet, the same
images each time), :func:`probe` trains small models on the frozen features (DINOv2's
logistic regression and weighted k-NN, a few-shot curve, ridge regression for a
continuous label), scores them on the same test images with bootstrap intervals, compares
the initialisations with the paper's statistics and says what it found in words.

Needs ``pip install "radiologynet[probe]"``.
"""

from radiologynet.analysis.probe.features import FeatureSet, align, read_features
from radiologynet.analysis.probe.methods import (
    DEFAULT_C_VALUES,
    DINOV2_C_VALUES,
    Scores,
    Split,
    fewshot,
    knn,
    logreg,
    ridge,
)
from radiologynet.analysis.probe.run import METHODS, ProbeResult, assign_splits, probe

__all__ = [
    "DEFAULT_C_VALUES",
    "DINOV2_C_VALUES",
    "METHODS",
    "FeatureSet",
    "ProbeResult",
    "Scores",
    "Split",
    "align",
    "assign_splits",
    "fewshot",
    "knn",
    "logreg",
    "probe",
    "read_features",
    "ridge",
]
