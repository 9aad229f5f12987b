"""Loading a sweep's results folder (the run-results format) into pandas.

A results folder holds one sub-folder per run, ``<model>-<init>-<lr>-run<k>[-frac<f>]/``,
with ``result.json`` and ``log.jsonl`` (see ``docs/development.md``). The folder given may
be one task's folder or a parent holding several tasks; every ``result.json`` below it is
read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from radiologynet._optional import require
from radiologynet.analysis.report.names import PRIMARY_METRICS
from radiologynet.errors import ResultsFormatError
from radiologynet.models._weights import MODALITY_VARIANTS, RANDOM_INIT, is_random_init
from radiologynet.paper import PAPER_INITS
from radiologynet.train.runs import DIVERGED, FINISHED, RESULT_NAME

pd = require("pandas", "sweep reports")

#: Metrics where lower is better; every other metric is better higher.
LOWER_IS_BETTER = frozenset(
    {
        "loss",
        "mae",
        "rmse",
        "mse",
        "epochs",
        "best_epoch",
        "epochs_run",
        "energy_kwh",
        "co2_kg",
        "duration_s",
    }
)
#: Metrics recorded once per run rather than per split (``compare --metric best_epoch``:
#: epochs to convergence, the paper's supplementary table).
RUN_METRICS = ("best_epoch", "epochs_run")
#: The order initialisations are shown in: each of the paper's (:data:`PAPER_INITS`)
#: followed by its reconstruction-pretrained variant, then the modality variants. Run
#: statuses (:mod:`radiologynet.train.runs`): ``finished`` runs enter tables and tests;
#: ``diverged`` runs (loss became NaN/inf) are listed as such; others are unfinished.
INIT_ORDER = (
    PAPER_INITS[0],
    *(name for init in PAPER_INITS[1:] for name in (init, f"{init}-recon")),
    *MODALITY_VARIANTS,
)
#: The columns identifying a run.
RUN_KEYS = ("task", "model", "init", "lr", "fraction", "run")
_REQUIRED = ("model", "init", "lr", "run")


def normalise_init(init: object) -> str:
    """An initialisation name as result folders spell it: every spelling of random
    initialisation (:data:`radiologynet.models._weights.RANDOM_TAGS`, ``None``) -> ``"random"``."""
    return RANDOM_INIT if is_random_init(init) else str(init).strip().lower()


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` (``"f1"``, ``"test_mae"``...) are better."""
    name = metric.split("_", 1)[1] if metric.startswith(("val_", "test_")) else metric
    return name not in LOWER_IS_BETTER


def init_sort_key(init: str) -> tuple[int, str]:
    """Sort key putting initialisations in the paper's order (random, ImageNet, RNet)."""
    return (INIT_ORDER.index(init) if init in INIT_ORDER else len(INIT_ORDER), init)


def find_result_files(results_dir: str | Path) -> list[Path]:
    """Every ``result.json`` under ``results_dir``, sorted.

    Raises:
        ResultsFormatError: the folder does not exist or holds no ``result.json``.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsFormatError(
            f"Results folder {str(root)!r} does not exist. Pass the --out folder of "
            "`radiologynet benchmark` (one sub-folder per run, each with result.json)."
        )
    files = sorted(root.rglob(RESULT_NAME))
    if not files:
        raise ResultsFormatError(
            f"No result.json found under {str(root)!r}. Expected one folder per run "
            "(<model>-<init>-<lr>-run<k>/result.json); is this the sweep's output folder?"
        )
    return files


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsFormatError(
            f"Cannot read {str(path)!r} ({err}). Re-run that run or delete its folder."
        ) from err
    if not isinstance(data, dict) or any(key not in data for key in _REQUIRED):
        raise ResultsFormatError(
            f"{str(path)!r} is not a run result: it needs the keys {', '.join(_REQUIRED)} "
            "(see the run-results format in docs/development.md)."
        )
    return data


def _fraction(path: Path, value: object) -> float:
    if value is None:
        return math.nan
    fraction = float(value)  # type: ignore[arg-type]
    if not 0.0 < fraction <= 1.0:
        raise ResultsFormatError(
            f"{str(path)!r} has 'fraction' {value!r}; a training fraction is in (0, 1] "
            "(null or no 'fraction' for the full training set). Fix or delete that run."
        )
    return fraction


def full_data(frame: pd.DataFrame) -> pd.Series:
    """Which rows of ``frame`` (runs, logs or a table) are on the full training set: the
    runs trained without a training fraction, whose ``fraction`` is NaN.

    A run with ``fraction`` 1.0 (``--fractions 1``, folder ``-frac1``) is not one of
    them: it belongs to the resource-limited experiment (all the training data, its 10
    epochs), and keeps its fraction everywhere (tables group with ``dropna=False``).
    """
    return frame["fraction"].isna()


def _row(path: Path, data: dict) -> dict[str, object]:
    emissions = data.get("emissions") or {}
    row: dict[str, object] = {
        "task": str(data.get("task") or path.parent.parent.name),
        "model": str(data["model"]),
        "init": normalise_init(data["init"]),
        "weights": data.get("weights"),
        "lr": str(data["lr"]),
        "lr_value": float(data["lr"]),
        "run": int(data["run"]),
        "seed": data.get("seed"),
        "fraction": _fraction(path, data.get("fraction")),
        "status": data.get("status", FINISHED),
        "best_epoch": data.get("best_epoch"),
        "epochs_run": data.get("epochs_run"),
        "energy_kwh": emissions.get("energy_kwh"),
        "co2_kg": emissions.get("co2_kg"),
        "duration_s": emissions.get("duration_s"),
        "path": str(path.parent),
    }
    for split in ("val", "test"):
        for metric, value in (data.get(split) or {}).items():
            if isinstance(value, (list, dict)):  # the confusion matrix, per-class AUROCs
                continue
            row[f"{split}_{metric}"] = None if value is None else float(value)
    return row


def load_results(results_dir: str | Path, *, include_unfinished: bool = False) -> pd.DataFrame:
    """One row per run of a sweep.

    Columns: ``task, model, init, weights, lr`` (as written, e.g. ``"1e-4"``),
    ``lr_value, run, seed, fraction`` (NaN for the full training set, see
    :func:`full_data`), ``status,
    best_epoch, epochs_run, energy_kwh, co2_kg, duration_s, path`` and one
    ``val_<metric>`` / ``test_<metric>`` column per number (the confusion matrix and the
    per-class AUROCs of ``test`` are not columns). ``init`` is normalised
    (``baseline`` -> ``random``).

    Args:
        include_unfinished: keep runs whose status is not ``"finished"`` (dropped by
            default: their metrics are not final; :func:`diverged_runs` lists the
            diverged ones).

    Raises:
        ResultsFormatError: no results, or a ``result.json`` that is not one.
    """
    rows = []
    for path in find_result_files(results_dir):
        try:
            rows.append(_row(path, _read_json(path)))
        except (TypeError, ValueError) as err:
            raise ResultsFormatError(
                f"{str(path)!r} has a value of the wrong type ({err}); 'lr' must be a "
                "number like \"1e-4\", 'run' an integer and metrics numbers."
            ) from err
    frame = pd.DataFrame(rows)
    if not include_unfinished:
        statuses = ", ".join(sorted(set(frame["status"].astype(str))))
        frame = frame[frame["status"] == FINISHED]
        if frame.empty:
            raise ResultsFormatError(
                f"No finished run under {str(results_dir)!r} (the runs' statuses: "
                f"{statuses}). Wait for the sweep, re-run diverged runs with a lower "
                "learning rate, or pass include_unfinished=True."
            )
    numeric = ["best_epoch", "epochs_run", "energy_kwh", "co2_kg", "duration_s"]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    frame = frame.assign(_init_rank=frame["init"].map(lambda i: init_sort_key(i)[0]))
    frame = frame.sort_values(
        ["task", "model", "fraction", "_init_rank", "init", "lr_value", "run"], na_position="first"
    )
    return frame.drop(columns="_init_rank").reset_index(drop=True)


def diverged_runs(results_dir: str | Path) -> pd.DataFrame:
    """The runs of a sweep whose status is ``diverged`` (their loss became NaN or
    infinite): ``task, model, init, lr, fraction, run, epochs_run, path``; empty when none
    did."""
    frame = load_results(results_dir, include_unfinished=True)
    columns = ["task", "model", "init", "lr", "fraction", "run", "epochs_run", "path"]
    return frame.loc[frame["status"] == DIVERGED, columns].reset_index(drop=True)


def load_logs(results: pd.DataFrame) -> pd.DataFrame:
    """The per-epoch logs (``log.jsonl``) of the runs in ``results``, in one long frame.

    Columns: the run keys (``task, model, init, lr, fraction, run``) then the log's own
    (``epoch, train_loss, val_loss, val_<metric>..., lr, time_s``; the scheduler's learning
    rate is renamed ``epoch_lr``). Runs without a log are skipped.

    Raises:
        ResultsFormatError: a log line that is not JSON.
    """
    frames = []
    for _, run in results.iterrows():
        log_path = Path(str(run["path"])) / "log.jsonl"
        if not log_path.is_file():
            continue
        records = []
        for number, line in enumerate(log_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ResultsFormatError(
                    f"{str(log_path)!r} line {number} is not JSON ({err}); the run was "
                    "probably interrupted while writing. Delete that line or re-run."
                ) from err
        if not records:
            continue
        log = pd.DataFrame(records).rename(columns={"lr": "epoch_lr"})
        for key in RUN_KEYS:
            log.insert(RUN_KEYS.index(key), key, run[key])
        frames.append(log)
    if not frames:
        return pd.DataFrame(columns=[*RUN_KEYS, "epoch"])
    return pd.concat(frames, ignore_index=True)


def metric_columns(results: pd.DataFrame, split: str = "test") -> list[str]:
    """The metric names with values in ``split`` (``"test"`` or ``"val"``), loss last."""
    prefix = f"{split}_"
    names = [
        c[len(prefix) :]
        for c in results.columns
        if c.startswith(prefix) and results[c].notna().any()
    ]
    return sorted(names, key=lambda m: (m == "loss", _metric_rank(m)))


def _metric_rank(metric: str) -> int:
    order = (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "mae",
        "rmse",
        "crop_dice",
        "crop_iou",
        "dice",
        "iou",
        "pooled_dice",
        "pooled_iou",
    )
    return order.index(metric) if metric in order else len(order)


def primary_metric(results: pd.DataFrame, split: str = "val") -> str:
    """The metric a task is judged by: F1 (classification), MAE (regression) or Dice
    (segmentation: the paper's mean crop Dice where recorded), whichever the runs
    recorded first in that order."""
    available = set(metric_columns(results, split))
    for metric in PRIMARY_METRICS:
        if metric in available:
            return metric
    raise ResultsFormatError(
        f"The runs recorded no {split} metric (looked for {', '.join(PRIMARY_METRICS)}); "
        f"their result.json '{split}' objects are empty."
    )
