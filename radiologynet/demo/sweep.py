"""Writing run folders in the run-results format, for demos, docs and tests.

:func:`write_run` writes one run exactly as the protocol runner does (``result.json`` and
``log.jsonl``); :func:`write_demo_sweep` writes a small made-up sweep so that the report,
the statistics and the figures can be tried without training anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from radiologynet._atomic import atomic_write_json, atomic_write_text
from radiologynet.train.runs import FINISHED, LOG_NAME, RESULT_NAME, run_folder_name, started_result


def write_run(
    out: str | Path,
    *,
    task: str,
    model: str,
    init: str,
    lr: str,
    run: int,
    val: Mapping[str, float],
    test: Mapping[str, float] | None,
    best_epoch: int,
    epochs_run: int | None = None,
    log: Sequence[Mapping[str, float]] = (),
    fraction: float | None = None,
    emissions: Mapping[str, float] | None = None,
    status: str = FINISHED,
    seed: int | None = None,
) -> Path:
    """Write one run folder under ``out`` and return it."""
    folder = Path(out) / run_folder_name(model, init, lr, run, fraction)
    result = started_result(
        task=task,
        model=model,
        init=init,
        weights=None if init == "random" else f"{model}.{init}",
        lr=lr,
        run=run,
        seed=run if seed is None else seed,
        fraction=fraction,
        config={"batch_size": 32, "max_epochs": 200, "patience": 10},
        versions={"radiologynet": "demo"},
    )
    result.update(
        status=status,
        best_epoch=best_epoch,
        epochs_run=epochs_run if epochs_run is not None else best_epoch + 10,
        val=dict(val),
        test=dict(test) if test is not None else {},
        emissions=dict(emissions) if emissions is not None else None,
    )
    atomic_write_json(folder / RESULT_NAME, result)
    atomic_write_text(folder / LOG_NAME, "".join(json.dumps(dict(row)) + "\n" for row in log))
    return folder


_DEMO_LEVELS = {"random": 0.93, "imagenet": 0.975, "radiologynet": 0.982}
_DEMO_SMALL_DATA_DROP = {"random": 0.35, "imagenet": 0.15, "radiologynet": 0.12}
_DEMO_LR_BONUS = {"1e-3": -0.02, "1e-4": 0.0, "1e-5": -0.04}


def write_demo_sweep(
    out: str | Path,
    *,
    task: str = "btmr",
    models: Sequence[str] = ("resnet50", "mobilenet_v3_small"),
    runs: int = 5,
    epochs: int = 30,
    fractions: Sequence[float] = (0.05, 0.25, 0.5),
    seed: int = 0,
) -> Path:
    """A made-up classification sweep (three inits x three lrs x ``runs``, plus the
    resource-limited runs at ``fractions`` for the first model); returns ``out``.

    The numbers are synthetic: ImageNet and RadiologyNET converge faster and higher than
    random initialisation, as in the paper, with run-to-run noise.
    """
    rng = np.random.default_rng(seed)
    out = Path(out)
    for model in models:
        for init, level in _DEMO_LEVELS.items():
            for lr, bonus in _DEMO_LR_BONUS.items():
                for run in range(1, runs + 1):
                    _demo_run(out, rng, task, model, init, lr, run, level + bonus, epochs)
    for fraction in fractions:
        for init, level in _DEMO_LEVELS.items():
            for run in range(1, runs + 1):
                drop = _DEMO_SMALL_DATA_DROP[init] * (1 - fraction) ** 2
                _demo_run(
                    out,
                    rng,
                    task,
                    models[0],
                    init,
                    "1e-4",
                    run,
                    level - drop,
                    10,
                    fraction=fraction,
                )
    return out


def _demo_run(
    out: Path,
    rng: np.random.Generator,
    task: str,
    model: str,
    init: str,
    lr: str,
    run: int,
    level: float,
    epochs: int,
    fraction: float | None = None,
) -> Path:
    speed = {"random": 6.0, "imagenet": 2.5, "radiologynet": 2.0}[init]
    curve = level * (1 - np.exp(-np.arange(1, epochs + 1) / speed))
    curve = np.clip(curve + rng.normal(0, 0.006, size=epochs), 0, 1)
    best = int(np.argmax(curve)) + 1
    val_f1 = float(curve[best - 1])
    log = [
        {
            "epoch": e,
            "train_loss": float(1.4 - v),
            "val_loss": float(1.5 - v),
            "val_accuracy": float(min(1.0, v + 0.004)),
            "val_f1": float(v),
            "lr": float(lr),
            "time_s": 12.0,
            "images_per_s": 350.0,
        }
        for e, v in enumerate(curve.tolist(), start=1)
    ]
    test_f1 = float(np.clip(val_f1 + rng.normal(0, 0.005), 0, 1))
    metrics = {
        "f1": test_f1,
        "accuracy": min(1.0, test_f1 + 0.004),
        "precision": min(1.0, test_f1 + 0.002),
        "recall": test_f1,
        "loss": 1.5 - test_f1,
    }
    val = {"f1": val_f1, "accuracy": min(1.0, val_f1 + 0.004), "loss": 1.5 - val_f1}
    energy = 0.002 * best * (1 + rng.uniform(0, 0.1))
    return write_run(
        out,
        task=task,
        model=model,
        init=init,
        lr=lr,
        run=run,
        val=val,
        test=metrics,
        best_epoch=best,
        epochs_run=min(epochs, best + 10),
        log=log,
        fraction=fraction,
        emissions={"energy_kwh": energy, "co2_kg": 0.3 * energy, "duration_s": 12.0 * best},
    )
