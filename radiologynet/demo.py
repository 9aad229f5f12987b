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
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from radiologynet._optional import require
from radiologynet.train.checkpoint import atomic_write_bytes

ndimage = require("scipy.ndimage", "the demo")

DEMO_CLASSES = ("fracture", "lesion", "normal")
PRETEXT_CLASSES = ("one_bone_h", "one_bone_v", "two_bones_h", "two_bones_v")
IMAGE_SIDE = 64


def _body(rng: np.random.Generator, side: int, bones: int, vertical: bool
          ) -> tuple[np.ndarray, list[tuple[float, float, float, float, float]]]:
    """A soft-tissue silhouette with ``bones`` bright elongated bones; returns the image
    (float, ~0..1) and each bone's (centre y, centre x, half-length, half-width, angle)."""
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


def synthetic_radiograph(label: str, rng: np.random.Generator, side: int = IMAGE_SIDE
                         ) -> np.ndarray:
    """One synthetic 8-bit radiograph of class ``label`` (a demo or pretext class)."""
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
            gap = (np.abs(along - t - slope * across) < rng.uniform(2.0, 3.0)) & \
                (np.abs(across) < half_width * 1.3)
            image[gap] -= 0.7
        elif label == "lesion":
            radius = rng.uniform(4.0, 6.0)
            ly = by + rng.uniform(-0.5, 0.5) * half_length * np.sin(angle) \
                + rng.choice([-1, 1]) * rng.uniform(1.8, 3.0) * half_width * np.cos(angle)
            lx = bx + rng.uniform(-0.5, 0.5) * half_length * np.cos(angle) \
                - rng.choice([-1, 1]) * rng.uniform(1.8, 3.0) * half_width * np.sin(angle)
            image += 0.7 * np.exp(-((yy - ly) ** 2 + (xx - lx) ** 2) / (2 * radius**2))
    image = ndimage.gaussian_filter(image, 0.5) + rng.normal(0.0, 0.03, image.shape)
    return np.clip(image * 255.0, 0, 255).astype(np.uint8)


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda fh: Image.fromarray(array).save(fh, format="PNG"))


def make_image_folder(root: str | Path, classes: Sequence[str],
                      per_split: dict[str, int], *, seed: int = 0, side: int = IMAGE_SIDE
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


def make_demo_dataset(root: str | Path, *, train: int = 60, val: int = 20, test: int = 30,
                      seed: int = 0) -> Path:
    """The demo's labelled task (``fracture``/``lesion``/``normal``) as an image folder."""
    return make_image_folder(root, DEMO_CLASSES, {"train": train, "val": val, "test": test},
                             seed=seed)


def make_pretext_dataset(root: str | Path, *, train: int = 80, val: int = 20,
                         seed: int = 1) -> Path:
    """The demo's pseudo-labelled pretraining "archive" (body-part/orientation clusters)."""
    return make_image_folder(root, PRETEXT_CLASSES, {"train": train, "val": val}, seed=seed)


def _mean_sd(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def results_table(results: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of test accuracy / macro F1 and epochs to best, per init."""
    rows = [("init", "runs", "test accuracy", "test macro F1", "epochs to best")]
    for init in dict.fromkeys(r["init"] for r in results):
        mine = [r for r in results if r["init"] == init]
        rows.append((init, str(len(mine)),
                     _mean_sd([r["test"]["accuracy"] for r in mine]),
                     _mean_sd([r["test"]["f1"] for r in mine]),
                     _mean_sd([float(r["best_epoch"]) for r in mine], digits=1)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_demo(out_dir: str | Path, *, model: str = "resnet18", input_size: int = 64,
             runs: int = 2, lr: str = "1e-3", max_epochs: int = 8, pretrain_epochs: int = 4,
             extra_inits: Sequence[str] = (), per_class: tuple[int, int, int] = (48, 16, 30),
             pretext_per_class: tuple[int, int] = (64, 16), progress: bool = True
             ) -> list[dict[str, Any]]:
    """Generate the data, pretrain the ``pretext`` backbone, run the random-vs-pretext
    grid through :func:`radiologynet.protocol.run`, print and return the results.

    Everything lands in ``out_dir``: ``data/`` (the images), ``pretext/`` (the pretraining
    run; its ``model/`` is the second initialisation) and ``results/`` (one folder per run,
    in the format ``radiologynet report`` reads). Re-running reuses finished runs.
    ``per_class`` is the images per class in train/val/test, ``pretext_per_class`` in the
    archive's train/val.
    """
    from radiologynet.protocol import run
    from radiologynet.train import TrainConfig

    out = Path(out_dir)
    say = print if progress else (lambda *a, **k: None)
    say("radiologynet demo: synthetic radiographs (fracture / lesion / normal), "
        f"{model} at {input_size} px, CPU-sized.")
    say("  The RadiologyNET weights need a download, so this offline demo compares random "
        "initialisation\n  with a backbone it pretrains itself on a synthetic pseudo-labelled "
        "archive ('pretext').")
    train, val, test = per_class
    data = make_demo_dataset(out / "data" / "findings", train=train, val=val, test=test)
    archive = make_pretext_dataset(out / "data" / "archive", train=pretext_per_class[0],
                                   val=pretext_per_class[1])
    say(f"1/2 pretraining the pretext backbone on {archive} ...")
    pretext = run("folder", archive,
                  TrainConfig(max_epochs=pretrain_epochs, patience=pretrain_epochs,
                              batch_size=16, input_size=input_size, progress=False),
                  models=[model], inits=["random"], lrs=[lr], runs=1,
                  out=out / "pretext")[0]
    weights = out / "pretext" / f"{model}-random-{lr}-run1" / "model"
    say(f"    pseudo-label accuracy {pretext['val']['accuracy']:.3f} on held-out archive "
        "images")
    say(f"2/2 fine-tuning on {data} (random vs pretext, {runs} runs each) ...")
    results = run("folder", data,
                  TrainConfig(max_epochs=max_epochs, patience=max(3, max_epochs // 2),
                              batch_size=16, input_size=input_size, progress=False),
                  models=[model], inits=["random", f"pretext={weights}", *extra_inits],
                  lrs=[lr], runs=runs, out=out / "results")
    say("")
    say(results_table(results))
    say("")
    say(f"Results: {out / 'results'} (one folder per run: result.json, log.jsonl, model/).")
    say("Tiny synthetic data and few epochs: read the numbers as a smoke test of the "
        "pipeline, not as evidence about RadiologyNET.")
    return results
