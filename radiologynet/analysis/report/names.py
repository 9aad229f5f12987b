"""The names a sweep's results are read by, without pandas: which metric judges a task,
and how the commands' ``--metric`` help says it (``report --help`` and ``compare --help``
load no analysis package)."""

from __future__ import annotations

#: The metric each kind of task is judged by, in order of preference (the paper's
#: statistics use F1, MAE and Dice).
PRIMARY_METRICS = (
    "f1",
    "mae",
    "crop_dice",
    "dice",
    "pooled_dice",
    "slice_dice",
    "accuracy",
    "rmse",
    "crop_iou",
    "iou",
    "loss",
)
#: How the commands' ``--metric`` help states the default (from :data:`PRIMARY_METRICS`).
DEFAULT_METRIC_HELP = f"default: the first of {', '.join(PRIMARY_METRICS)} that the runs recorded"
