"""The run-folder format: one folder per training run (a cell of the protocol grid), named
``<model>-<init>-<lr>-run<k>[-frac<f>]``, holding ``result.json`` (what the run was and
how it ended), ``log.jsonl`` (one line per epoch, written by the trainer), ``model/``
(the best weights), ``split.csv`` (which image went to which split, for tasks read into
:class:`radiologynet.data.Splits`) and ``val_predictions.csv`` / ``test_predictions.csv``
(the best weights' output for every image: :mod:`radiologynet.train.predictions`).

The trainer writes ``log.jsonl``, the protocol runner the rest; the report and the demos
read it, and :mod:`radiologynet.demo.sweep` writes made-up runs in it. Imports nothing but
the standard library (and :mod:`radiologynet.train` loads no torch until a trainer name
is used), so a reader of results loads no framework.
"""

from __future__ import annotations

from typing import Any

RESULT_NAME = "result.json"
#: One JSON object per epoch, appended by :func:`radiologynet.train.fit`.
LOG_NAME = "log.jsonl"
MODEL_DIR = "model"
#: The run's split: ``split, path, target, sex, group`` (``Splits.to_csv``).
SPLIT_NAME = "split.csv"
#: The per-image results of the best weights, per split: ``path, label, prediction,
#: score_<class> ...`` (:mod:`radiologynet.train.predictions`).
PREDICTIONS_NAMES = {"val": "val_predictions.csv", "test": "test_predictions.csv"}
#: A run that has started and not ended (or was interrupted).
RUNNING = "running"
#: A run that trained to its end (early stopping or the epoch budget): its results count.
FINISHED = "finished"
#: A run whose training loss became NaN or inf: listed, never averaged.
DIVERGED = "diverged"
#: A run that stopped on an error before it ended (``result.json`` holds ``error``); a
#: rerun resumes it from its checkpoint, or starts it afresh when it has none.
FAILED = "failed"
#: The statuses of a run that is over (reused as it is by a rerun with the same settings).
DONE = (FINISHED, DIVERGED)


def run_folder_name(model: str, init: str, lr: str, run: int, fraction: float | None = None) -> str:
    """``<model>-<init>-<lr>-run<k>[-frac<f>]``: the folder of one run."""
    name = f"{model}-{init}-{lr}-run{run}"
    return name if fraction is None else f"{name}-frac{fraction:g}"


def started_result(
    *,
    task: str,
    model: str,
    init: str,
    weights: str | None,
    lr: str,
    run: int,
    seed: int,
    fraction: float | None,
    config: dict[str, Any],
    versions: dict[str, str],
) -> dict[str, Any]:
    """The ``result.json`` of a run that has started and not yet trained (every key of
    the format; training fills ``status``, ``best_epoch``, ``epochs_run``, ``val``,
    ``test``, ``emissions`` and, for a diverged run, ``diverged``; a failed run,
    ``error``)."""
    return {
        "task": task,
        "model": model,
        "init": init,
        "weights": weights,
        "lr": lr,
        "run": run,
        "seed": seed,
        "fraction": fraction,
        "status": RUNNING,
        "config": config,
        "versions": versions,
        "best_epoch": None,
        "epochs_run": 0,
        "val": {},
        "test": {},
        "emissions": None,
    }
