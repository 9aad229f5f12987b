"""The paper in miniature, offline: ``radiologynet demo --full``.

1. a synthetic unlabelled DICOM "archive" (CT, MR, CR, DX; several body regions; real
   headers with invented patient data) -- :mod:`radiologynet.demo.synthetic_archive`;
2. pseudo-labels: header + image features, k-means, the heterogeneity filter;
3. pretraining a small zoo model on the kept clusters (your own foundation model);
4. a downstream task (brain MR: no tumour / peripheral / central lesion, like BTMR)
   fine-tuned from those weights and from random initialisation over a few seeds with
   the protocol runner;
5. the statistics and the report of the analysis module.

Everything is tiny (32 px inputs, a few epochs) so it finishes in minutes on two CPU
cores; the numbers show the plumbing, not the paper's effect sizes.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radiologynet.demo.synthetic_archive import SOP_CLASS, save_dicom, write_synthetic_archive
from radiologynet.pretraining.pseudolabel import PseudoLabelConfig, pseudo_label

DOWNSTREAM_CLASSES = ("no_tumour", "peripheral", "central")


@dataclass(frozen=True)
class DemoSettings:
    """The sizes of the miniature study (defaults fit ~10 minutes on 2 CPU cores).

    Batches stay small on purpose: with a few dozen images, batches of 16 leave the
    BatchNorm running statistics too few updates to follow the weights, and the model
    then predicts one class in evaluation although it fits the training batches.
    """

    archive_images: int = 96
    n_clusters: int = 7
    model: str = "resnet18"
    input_size: int = 32
    pretrain_epochs: int = 6
    downstream_per_class: int = 32
    finetune_epochs: int = 12
    lr: str = "1e-3"
    seeds: int = 5
    batch_size: int = 8


def write_downstream_task(
    root: str | os.PathLike[str], per_class: int = 32, *, seed: int = 0
) -> Path:
    """A small brain-MR classification task as DICOM files in the ``folder`` layout
    (``ROOT/{train,val,test}/<class>/``): no tumour, a peripheral or a central lesion."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits = {"train": 0.5, "val": 0.25, "test": 0.25}
    for label, name in enumerate(DOWNSTREAM_CLASSES):
        counts = {s: max(2, round(per_class * f)) for s, f in splits.items()}
        for split, count in counts.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                save_dicom(_brain_slice(label, rng), folder / f"IM{i:04d}.dcm")
    return root


def _brain_slice(label: int, rng: np.random.Generator) -> Dataset:
    rows, cols = (int(rng.integers(48, 72)) for _ in range(2))
    y, x = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij")
    img = np.zeros((rows, cols))
    img[(y / 0.8) ** 2 + (x / 0.65) ** 2 <= 1] = 900.0
    img[(y / 0.65) ** 2 + (x / 0.5) ** 2 <= 1] = 500.0
    if label:
        angle = rng.uniform(0, 2 * np.pi)
        radius = rng.uniform(0.55, 0.65) if label == 1 else rng.uniform(0.0, 0.1)
        cy, cx = radius * np.sin(angle) * 0.8, radius * np.cos(angle) * 0.65
        size = rng.uniform(0.2, 0.25)
        img[(y - cy) ** 2 + (x - cx) ** 2 <= size**2] = 1600.0
    img = np.clip(img + rng.normal(0, 25, img.shape), 0, 4095).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS["MR"]
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Modality, ds.BodyPartExamined = "MR", "BRAIN"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = img.tobytes()
    return ds


def run_full_demo(
    out_dir: str | os.PathLike[str], settings: DemoSettings | None = None, *, progress: bool = True
) -> int:
    """Run the miniature study into ``out_dir`` and print a summary; returns 0.

    ``out_dir`` receives ``archive/``, ``labels.csv`` (+ ``labels-report/``),
    ``weights/<model>.demo-site/``, ``downstream/``, ``results/`` and ``report/``. Steps
    whose output exists are not redone (the runner and the trainer resume), so an
    interrupted demo continues where it stopped.
    """
    from radiologynet.analysis.report import build_report
    from radiologynet.pretraining.pretrain import PretrainConfig, pretrain, pretrain_config
    from radiologynet.protocol import RunSettings
    from radiologynet.protocol import run as run_protocol
    from radiologynet.train import TrainConfig

    s = settings or DemoSettings()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    step = _step_printer(time.perf_counter(), progress)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom on the invented IS values
        archive = out / "archive"
        if not archive.is_dir():
            step(f"1/5 writing a synthetic archive of {s.archive_images} DICOM images")
            _write_demo_archive(archive, s)
        step("2/5 pseudo-labelling it (header + image features, k-means, heterogeneity)")
        clustering = PseudoLabelConfig(
            n_clusters=s.n_clusters, image_size=s.input_size, progress=False
        )
        labels = pseudo_label(archive, out / "labels.csv", clustering)
        step(
            f"    {labels.n_classes} of {len(labels.summaries)} clusters kept; report in "
            f"{labels.report['markdown']}"
        )
        weights = out / "weights" / f"{s.model}.demo-site"
        if not (weights / "config.json").is_file():
            step(f"3/5 pretraining {s.model} at {s.input_size} px on the pseudo-labels")
            config = pretrain_config(
                s.model,
                lr=float(s.lr),
                max_epochs=s.pretrain_epochs,
                patience=s.pretrain_epochs,
                batch_size=s.batch_size,
                progress=False,
            )
            pretraining = PretrainConfig(model=s.model, site="demo-site", input_size=s.input_size)
            pretrain(archive, labels.labels_csv, weights, config, pretraining)
        downstream = out / "downstream"
        if not downstream.is_dir():
            write_downstream_task(downstream, s.downstream_per_class, seed=1)
        step(f"4/5 fine-tuning on the downstream task: random vs demo-site init, {s.seeds} seeds")
        settings = RunSettings(input_size=s.input_size)
        _fine_tune(run_protocol, TrainConfig, settings, s, downstream, weights, out / "results")
        step("5/5 statistics and report")
        report = _fresh_report(build_report, out / "results", out / "report")
    step(f"done: {report.markdown}")
    if progress:
        _print_summary(out / "results")
    return 0


def _step_printer(started: float, progress: bool) -> Callable[[str], None]:
    """Prints a step's line with the seconds since ``started`` (nothing without
    ``progress``)."""

    def step(text: str) -> None:
        if progress:
            print(f"[{time.perf_counter() - started:6.1f} s] {text}", flush=True)

    return step


def _write_demo_archive(archive: Path, s: DemoSettings) -> None:
    write_synthetic_archive(
        archive,
        s.archive_images,
        include_mixed=True,
        missing_tag_fraction=0.05,
        n_unreadable=1,
        seed=0,
    )


def _fine_tune(
    run_protocol: Callable[..., Any],
    train_config: Callable[..., Any],
    settings: Any,
    s: DemoSettings,
    downstream: Path,
    weights: Path,
    results: Path,
) -> None:
    """The protocol runner on the downstream task: random vs demo-site init, ``s.seeds``
    runs each (``run_protocol`` is :func:`radiologynet.protocol.run`, ``train_config``
    :class:`radiologynet.train.TrainConfig`, ``settings`` the
    :class:`radiologynet.protocol.RunSettings` at the demo's input size)."""
    config = train_config(
        max_epochs=s.finetune_epochs,
        patience=s.finetune_epochs,
        batch_size=s.batch_size,
        progress=False,
        log_epochs=False,
    )
    run_protocol(
        "folder",
        downstream,
        config,
        settings,
        models=[s.model],
        inits=["random", f"demo-site={weights}"],
        lrs=[s.lr],
        runs=s.seeds,
        out=results,
    )


def _fresh_report(build_report: Callable[..., Any], results: Path, report_dir: Path) -> Any:
    """The analysis report of ``results``, written into an emptied ``report_dir``
    (``build_report`` is :func:`radiologynet.analysis.report.build_report`)."""
    if report_dir.exists():
        shutil.rmtree(report_dir)
    return build_report(
        results,
        report_dir,
        title="RadiologyNET in miniature: your own foundation model",
    )


def _print_summary(results: Path) -> None:
    """Test F1 per init over the finished runs; the others listed (:func:`summarise_runs`)."""
    import json

    from radiologynet.demo.quick import summarise_runs

    runs = [json.loads(f.read_text()) for f in sorted(results.glob("*/result.json"))]
    for summary in summarise_runs(runs, ("f1",)):
        values = summary.scores["f1"]
        mean = f"{np.mean(values):.3f}" if values else "-"
        line = (
            f"    test F1 ({summary.init}): mean {mean} over {len(values)} finished runs "
            f"({', '.join(f'{v:.3f}' for v in values)})"
        )
        if summary.not_averaged:
            line += f"; not averaged: {', '.join(summary.not_averaged)}"
        print(line)
