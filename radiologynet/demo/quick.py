"""``radiologynet demo``: the whole fine-tuning protocol in a few minutes, offline.

The package generates its own small synthetic "radiographs" (no download): a limb-like
body with a bone, and three findings to tell apart (``normal``, ``fracture``: a dark gap
across the bone, ``lesion``: a small bright nodule in soft tissue). It then runs the same
protocol runner and trainer a real benchmark uses, comparing two initialisations:

- ``random``: the paper's baseline;
- ``pretext``: a backbone the demo first pretrains itself on a second synthetic, pseudo-
  labelled "archive" (body part and orientation clusters) - RadiologyNET's recipe in
  miniature. The real RadiologyNET weights cannot be fetched offline, and the demo says so
  instead of pretending.

Then it asks the cheap question too: do the pretext features help without any fine-tuning?
It embeds the findings task with the pretext backbone and with a random one
(:func:`radiologynet.embed`) and probes both (:func:`radiologynet.analysis.probe.probe`):
``probe/`` holds the table, the comparison, the few-shot figure and the summary.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from radiologynet._atomic import atomic_write, atomic_write_json
from radiologynet._optional import require
from radiologynet.errors import InvalidArgumentError, ResultsFormatError
from radiologynet.train.runs import FINISHED, MODEL_DIR

DEMO_CLASSES = ("fracture", "lesion", "normal")
PRETEXT_CLASSES = ("one_bone_h", "one_bone_v", "two_bones_h", "two_bones_v")
IMAGE_SIDE = 64


def _body(
    rng: np.random.Generator, side: int, bones: int, vertical: bool
) -> tuple[np.ndarray, list[tuple[float, float, float, float, float]]]:
    """A soft-tissue silhouette with ``bones`` bright elongated bones; returns the image
    (float, ~0..1) and each bone's (centre y, centre x, half-length, half-width, angle)."""
    ndimage = require("scipy.ndimage", "radiologynet demo")
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    image = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (side, side)), side / 8) * 0.4 + 0.1
    angle = rng.uniform(-0.25, 0.25) + (np.pi / 2 if vertical else 0.0)
    cy, cx = side / 2 + rng.uniform(-4, 4), side / 2 + rng.uniform(-4, 4)
    cos, sin = np.cos(angle), np.sin(angle)
    along = (xx - cx) * cos + (yy - cy) * sin
    across = -(xx - cx) * sin + (yy - cy) * cos
    tissue_half = side * rng.uniform(0.22, 0.3)
    image += 0.25 * (np.abs(across) < tissue_half)
    placed = []
    offsets = [0.0] if bones == 1 else [-tissue_half * 0.45, tissue_half * 0.45]
    for offset in offsets:
        half_width = side * rng.uniform(0.05, 0.08)
        half_length = side * rng.uniform(0.38, 0.46)
        inside = (np.abs(across - offset) < half_width) & (np.abs(along) < half_length)
        cortex = (np.abs(across - offset) > half_width * 0.6) & inside
        image += 0.35 * inside + 0.15 * cortex
        by, bx = cy + offset * cos, cx - offset * sin
        placed.append((by, bx, half_length, half_width, angle))
    return image, placed


def synthetic_radiograph(
    label: str, rng: np.random.Generator, side: int = IMAGE_SIDE
) -> np.ndarray:
    """One synthetic 8-bit radiograph of class ``label`` (a demo or pretext class)."""
    ndimage = require("scipy.ndimage", "radiologynet demo")
    if label in PRETEXT_CLASSES:
        bones = 2 if label.startswith("two") else 1
        image, _ = _body(rng, side, bones, vertical=label.endswith("_v"))
    else:
        image, placed = _body(rng, side, 1, vertical=bool(rng.integers(0, 2)))
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
        by, bx, half_length, half_width, angle = placed[0]
        if label == "fracture":
            along = (xx - bx) * np.cos(angle) + (yy - by) * np.sin(angle)
            across = -(xx - bx) * np.sin(angle) + (yy - by) * np.cos(angle)
            t = rng.uniform(-0.6, 0.6) * half_length
            slope = rng.uniform(-0.6, 0.6)
            gap = (np.abs(along - t - slope * across) < rng.uniform(2.0, 3.0)) & (
                np.abs(across) < half_width * 1.3
            )
            image[gap] -= 0.7
        elif label == "lesion":
            radius = rng.uniform(4.0, 6.0)
            ly = (
                by
                + rng.uniform(-0.5, 0.5) * half_length * np.sin(angle)
                + rng.choice([-1, 1]) * rng.uniform(1.8, 3.0) * half_width * np.cos(angle)
            )
            lx = (
                bx
                + rng.uniform(-0.5, 0.5) * half_length * np.cos(angle)
                - rng.choice([-1, 1]) * rng.uniform(1.8, 3.0) * half_width * np.sin(angle)
            )
            image += 0.7 * np.exp(-((yy - ly) ** 2 + (xx - lx) ** 2) / (2 * radius**2))
    image = ndimage.gaussian_filter(image, 0.5) + rng.normal(0.0, 0.03, image.shape)
    return np.clip(image * 255.0, 0, 255).astype(np.uint8)


def _write_png(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def make_image_folder(
    root: str | Path,
    classes: Sequence[str],
    per_split: dict[str, int],
    *,
    seed: int = 0,
    side: int = IMAGE_SIDE,
) -> Path:
    """Write ``ROOT/<split>/<class>/<class>_<i>.png`` synthetic radiographs (``per_split``
    images per class in each split); existing files are kept. Returns ``root``."""
    root = Path(root)
    for split_index, (split, count) in enumerate(sorted(per_split.items())):
        for class_index, label in enumerate(classes):
            rng = np.random.default_rng([seed, split_index, class_index])
            for i in range(count):
                path = root / split / label / f"{label}_{i:04d}.png"
                image = synthetic_radiograph(label, rng, side)
                if not path.exists():
                    _write_png(path, image)
    return root


def make_demo_dataset(
    root: str | Path, *, train: int = 60, val: int = 20, test: int = 30, seed: int = 0
) -> Path:
    """The demo's labelled task (``fracture``/``lesion``/``normal``) as an image folder."""
    return make_image_folder(
        root, DEMO_CLASSES, {"train": train, "val": val, "test": test}, seed=seed
    )


def make_pretext_dataset(
    root: str | Path, *, train: int = 80, val: int = 20, seed: int = 1
) -> Path:
    """The demo's pseudo-labelled pretraining "archive" (body-part/orientation clusters)."""
    return make_image_folder(root, PRETEXT_CLASSES, {"train": train, "val": val}, seed=seed)


def _mean_sd(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


@dataclass(frozen=True)
class InitSummary:
    """One initialisation's runs, as the demos print them (:func:`summarise_runs`)."""

    init: str
    runs: int
    scores: dict[str, list[float]]
    best_epochs: list[float]
    not_averaged: list[str]


def summarise_runs(results: Sequence[dict[str, Any]], metrics: Sequence[str]) -> list[InitSummary]:
    """The runs' ``result.json`` contents grouped by init (in first-seen order).

    The rule: only ``finished`` runs are averaged (their test ``metrics`` and epochs to
    best); every other run (``diverged``, or ``running`` when it was interrupted) is
    listed in ``not_averaged`` as ``"run K (status)"``, never counted as a score.

    Raises:
        ResultsFormatError: a finished run whose test results lack one of ``metrics``.
    """
    summaries = []
    for init in dict.fromkeys(r["init"] for r in results):
        mine = [r for r in results if r["init"] == init]
        finished = [r for r in mine if r.get("status") == FINISHED]
        for r in finished:
            missing = [m for m in metrics if m not in (r.get("test") or {})]
            if missing:
                raise ResultsFormatError(
                    f"run {r.get('run')} of init {init!r} finished without test "
                    f"{', '.join(missing)}; rerun it (the task needs a test split)."
                )
        summaries.append(
            InitSummary(
                init=init,
                runs=len(mine),
                scores={m: [float(r["test"][m]) for r in finished] for m in metrics},
                best_epochs=[float(r["best_epoch"]) for r in finished],
                not_averaged=[
                    f"run {r.get('run')} ({r.get('status')})"
                    for r in mine
                    if r.get("status") != FINISHED
                ],
            )
        )
    return summaries


def init_summary_table(results: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of test accuracy / macro F1 and epochs to best, per init, over
    the finished runs; the others are listed, not averaged (:func:`summarise_runs`)."""
    rows = [("init", "runs", "test accuracy", "test macro F1", "epochs to best", "not averaged")]
    for summary in summarise_runs(results, ("accuracy", "f1")):
        rows.append(
            (
                summary.init,
                str(summary.runs),
                _mean_sd(summary.scores["accuracy"]),
                _mean_sd(summary.scores["f1"]),
                _mean_sd(summary.best_epochs, digits=1),
                ", ".join(summary.not_averaged) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


#: Where the demo's time goes, in the order the breakdown prints them.
PHASES = (
    "import",
    "data generation",
    "setup",
    "pretraining",
    "fine-tuning",
    "evaluation",
    "writing",
    "probe",
    "other",
)
_PHASE_NOTES = {
    "import": "torch, timm and the training stack",
    "data generation": "drawing and writing the synthetic PNGs",
    "setup": "decoding images, building and loading models",
    "pretraining": "training steps on the pseudo-labelled archive",
    "fine-tuning": "training steps on the findings task",
    "evaluation": "validation after each epoch, the test set at the end",
    "writing": "checkpoints, logs, model folders, result files",
    "probe": "embedding the findings task, frozen-feature probes, their figure",
    "other": "the rest",
}
#: the phases that are training compute (forward, backward and optimiser steps)
TRAINING_PHASES = ("pretraining", "fine-tuning")
TIMINGS_NAME = "timings.json"


class DemoTimings:
    """Seconds spent per phase of the demo (:data:`PHASES`), measured with
    ``time.perf_counter``; ``other`` is what the phases do not account for."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def add(self, phase: str, seconds: float) -> None:
        """Count ``seconds`` towards ``phase``."""
        self.seconds[phase] += max(0.0, float(seconds))

    def as_dict(self) -> dict[str, Any]:
        """``{"total_s", "training_s", "training_share", "phases": {phase: s}}``; ``other``
        is filled in as the total minus the measured phases."""
        total = time.perf_counter() - self.started
        phases = dict(self.seconds)
        phases["other"] = max(0.0, total - sum(v for k, v in phases.items() if k != "other"))
        training = sum(phases[k] for k in TRAINING_PHASES)
        return {
            "total_s": round(total, 3),
            "training_s": round(training, 3),
            "training_share": round(training / total, 4) if total > 0 else 0.0,
            "phases": {k: round(v, 3) for k, v in phases.items()},
        }

    def table(self, data: dict[str, Any] | None = None) -> str:
        """The breakdown (``data``, default :meth:`as_dict` now) as text: one line per
        phase, its seconds and share of the total."""
        data = data if data is not None else self.as_dict()
        total = data["total_s"] or 1.0
        lines = [f"Where the {data['total_s']:.1f} s went:"]
        for phase, seconds in data["phases"].items():
            lines.append(
                f"  {phase:16s} {seconds:7.1f} s  {100 * seconds / total:5.1f} %  "
                f"{_PHASE_NOTES[phase]}"
            )
        lines.append(
            f"  training compute (pretraining + fine-tuning): "
            f"{100 * data['training_share']:.0f} % of the wall time"
        )
        return "\n".join(lines)


class _EpochPrinter:
    """A trainer callback for one run: prints one line per epoch and books the trainer's
    own timings (training steps, validation, test, checkpoints) to the demo's phases."""

    def __init__(
        self,
        label: str,
        phase: str,
        max_epochs: int,
        timings: DemoTimings,
        say: Callable[..., None],
        metric: str,
    ) -> None:
        self.label, self.phase, self.max_epochs = label, phase, max_epochs
        self.timings, self.say, self.metric = timings, say, metric
        self.booked = 0.0
        self.fit_ended: float | None = None

    def book(self, phase: str, seconds: float) -> None:
        self.timings.add(phase, seconds)
        self.booked += max(0.0, float(seconds))

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "epoch_end":
            record = info["record"]
            self.book(self.phase, record["time_s"])
            self.book("evaluation", info.get("val_s", 0.0))
            self.book("writing", info.get("checkpoint_s", 0.0))
            score = record.get(f"val_{self.metric}", math.nan)
            self.say(
                f"    {self.label}  epoch {info['epoch']}/{self.max_epochs}  "
                f"train loss {record['train_loss']:.3f}  val {self.metric} {score:.3f}  "
                f"({record['time_s']:.1f} s training)",
                flush=True,
            )
        elif event == "fit_end":
            self.book("evaluation", info.get("test_s", 0.0))
            self.book("writing", info.get("checkpoint_s", 0.0))
            self.fit_ended = time.perf_counter()


def _check_demo_arguments(
    model: str,
    input_size: int,
    runs: int,
    max_epochs: int,
    pretrain_epochs: int,
    per_class: Sequence[int],
    pretext_per_class: Sequence[int],
) -> None:
    for name, value, least in (
        ("--runs", runs, 1),
        ("--max-epochs", max_epochs, 1),
        ("pretrain_epochs", pretrain_epochs, 1),
        ("--input-size", input_size, 32),
    ):
        if not isinstance(value, int) or value < least:
            raise InvalidArgumentError(f"demo: {name} must be an integer >= {least}, got {value!r}")
    if (
        len(per_class) != 3
        or len(pretext_per_class) != 2
        or min(*per_class, *pretext_per_class) < 1
    ):
        raise InvalidArgumentError(
            f"demo: per_class needs 3 counts (train, val, test) and pretext_per_class 2 "
            f"(train, val), each >= 1; got {tuple(per_class)} and {tuple(pretext_per_class)}"
        )
    if not model:
        raise InvalidArgumentError("demo: --model is empty; name an architecture, e.g. resnet18")


def run_demo(
    out_dir: str | Path,
    *,
    model: str = "resnet18",
    input_size: int = 48,
    runs: int = 3,
    lr: str = "1e-3",
    max_epochs: int = 6,
    pretrain_epochs: int = 3,
    extra_inits: Sequence[str] = (),
    per_class: tuple[int, int, int] = (48, 16, 30),
    pretext_per_class: tuple[int, int] = (64, 16),
    batch_size: int = 16,
    probe: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Generate the data, pretrain the ``pretext`` backbone, run the random-vs-pretext
    grid through the protocol runner (:func:`radiologynet.protocol.run_one`), print one
    line per epoch, the results and where the time went; return the results.

    Everything lands in ``out_dir``: ``data/`` (the images), ``pretext/`` (the pretraining
    run; its ``model/`` is the second initialisation), ``results/`` (one folder per run,
    in the format ``radiologynet report`` reads) and ``timings.json`` (seconds per phase,
    :class:`DemoTimings`). Re-running reuses finished runs. ``per_class`` is the images
    per class in train/val/test, ``pretext_per_class`` in the archive's train/val. With
    ``probe``, ``probe/`` gets the frozen-feature probe of the pretext backbone against a
    random one (``probe.csv``, ``comparison.csv``, ``probe.png``, ``summary.txt``).

    Raises:
        InvalidArgumentError: an argument out of range, before any work is done.
    """
    timings = DemoTimings()
    _check_demo_arguments(
        model, input_size, runs, max_epochs, pretrain_epochs, per_class, pretext_per_class
    )
    say = print if progress else (lambda *a, **k: None)
    mark = time.perf_counter()
    from radiologynet.protocol import RunSettings, get_task_spec, plan, run_one
    from radiologynet.train import TrainConfig

    timings.add("import", time.perf_counter() - mark)
    out = Path(out_dir)
    # the whole grid is checked (model name, learning rate, runs) before any work
    pretext_plan = plan("folder", [model], ["random"], [lr], runs=1)
    weights = out / "pretext" / pretext_plan[0].name / MODEL_DIR
    finetune_plan = plan(
        "folder", [model], ["random", f"pretext={weights}", *extra_inits], [lr], runs=runs
    )
    _say_demo_intro(say, model, input_size)
    data, archive = _make_demo_data(out, per_class, pretext_per_class, timings)
    settings = RunSettings(input_size=input_size)
    one_run = _DemoRunner(run_one, get_task_spec("folder"), settings, timings, say)
    base = TrainConfig(batch_size=batch_size, progress=False, log_epochs=False)
    pretext_config = replace(base, max_epochs=pretrain_epochs, patience=pretrain_epochs)
    finetune_config = replace(base, max_epochs=max_epochs, patience=max(3, max_epochs // 2))
    say(f"1/3 pretraining the pretext backbone on {archive} ({pretrain_epochs} epochs) ...")
    pretext = one_run(
        pretext_plan[0], archive, out / "pretext", pretext_config, "pretext", "pretraining"
    )
    say(f"    pseudo-label accuracy {pretext['val']['accuracy']:.3f} on held-out archive images")
    say(
        f"2/3 fine-tuning on {data} (random vs pretext, {runs} runs each, up to "
        f"{max_epochs} epochs) ..."
    )
    results = [
        one_run(spec, data, out / "results", finetune_config, _run_label(spec, runs), "fine-tuning")
        for spec in finetune_plan
    ]
    summary = _probe_features(out, data, model, weights, input_size, timings, say) if probe else ""
    _say_demo_results(say, out, results, timings, summary)
    return results


def _probe_features(
    out: Path,
    data: Path,
    model: str,
    weights: Path,
    input_size: int,
    timings: DemoTimings,
    say: Callable[..., None],
) -> str:
    """Embed the findings task with the pretext backbone and a random one and probe both
    (``out/probe``); returns the probe's summary. Timed as the ``probe`` phase."""
    mark = time.perf_counter()
    import torch

    from radiologynet.analysis.probe import probe
    from radiologynet.inference.embed import embed

    say("3/3 probing frozen features: pretext vs random backbone, no fine-tuning ...")
    files = []
    for name, source in (("pretext", weights), ("random", "random")):
        path = out / "probe" / f"{name}.parquet"
        with torch.random.fork_rng():  # the same random backbone every time, RNG untouched
            torch.manual_seed(0)
            embed(
                task="folder",
                root=data,
                model=model,
                weights=source,
                input_size=input_size,
                out=path,
                num_workers=0,
                progress=False,
            )
        files.append(path)
    result = probe(files, out / "probe", names=["pretext", "random"], progress=False)
    timings.add("probe", time.perf_counter() - mark)
    return f"{result.summary}\n\nProbe: {out / 'probe'} (probe.csv, comparison.csv, probe.png)."


def _say_demo_intro(say: Callable[..., None], model: str, input_size: int) -> None:
    say(
        "radiologynet demo: synthetic radiographs (fracture / lesion / normal), "
        f"{model} at {input_size} px, CPU-sized."
    )
    say(
        "  The RadiologyNET weights need a download, so this offline demo compares random "
        "initialisation\n  with a backbone it pretrains itself on a synthetic pseudo-labelled "
        "archive ('pretext')."
    )


def _make_demo_data(
    out: Path,
    per_class: Sequence[int],
    pretext_per_class: Sequence[int],
    timings: DemoTimings,
) -> tuple[Path, Path]:
    """The findings task and the pretext archive under ``out/data``, timed as data
    generation; returns their folders."""
    mark = time.perf_counter()
    train, val, test = per_class
    data = make_demo_dataset(out / "data" / "findings", train=train, val=val, test=test)
    archive = make_pretext_dataset(
        out / "data" / "archive", train=pretext_per_class[0], val=pretext_per_class[1]
    )
    timings.add("data generation", time.perf_counter() - mark)
    return data, archive


def _run_label(spec: Any, runs: int) -> str:
    return f"{spec.init} run {spec.run}/{runs}"


@dataclass
class _DemoRunner:
    """Runs one cell of the demo's grid through the protocol runner (``run_one``),
    printing its epochs and booking its time to the demo's phases."""

    run_one: Callable[..., dict[str, Any]]
    task: Any
    settings: Any
    timings: DemoTimings
    say: Callable[..., None]

    def __call__(
        self, spec: Any, root: Path, results: Path, config: Any, label: str, phase: str
    ) -> dict[str, Any]:
        metric = "accuracy" if phase == "pretraining" else "f1"
        printer = _EpochPrinter(label, phase, config.epochs, self.timings, self.say, metric)
        started = time.perf_counter()
        result = self.run_one(
            spec, self.task, root, results, config, self.settings, callbacks=[printer]
        )
        ended = time.perf_counter()
        if printer.fit_ended is not None:  # after fit: the model folder and result.json
            printer.book("writing", ended - printer.fit_ended)
        self.timings.add("setup", ended - started - printer.booked)
        return result


def _say_demo_results(
    say: Callable[..., None],
    out: Path,
    results: list[dict[str, Any]],
    timings: DemoTimings,
    probe_summary: str = "",
) -> None:
    """Print the results table, the probe's summary and the time breakdown; write
    ``timings.json``."""
    say("")
    say(init_summary_table(results))
    say("")
    say(f"Results: {out / 'results'} (one folder per run: result.json, log.jsonl, model/).")
    if probe_summary:
        say("")
        say(probe_summary)
    say(
        "Tiny synthetic data and few epochs: read the numbers as a smoke test of the "
        "pipeline, not as evidence about RadiologyNET."
    )
    summary = timings.as_dict()
    atomic_write_json(out / TIMINGS_NAME, summary)
    say("")
    say(timings.table(summary))
