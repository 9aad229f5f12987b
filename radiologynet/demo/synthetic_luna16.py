"""A tiny synthetic LUNA16: CT-like volumes with spherical nodules at known world
coordinates, written in the real layout (``subset*/<uid>.mhd`` + ``.raw``,
``annotations.csv``, ``candidates_V2.csv``). For examples, docs and tests; no download."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radiologynet._optional import require

sitk = require("SimpleITK", "writing synthetic CT volumes")


@dataclass(frozen=True)
class SyntheticNodule:
    """A nodule written into a synthetic series: world centre (mm) and diameter (mm)."""

    seriesuid: str
    center_xyz: tuple[float, float, float]
    diameter_mm: float


def synthetic_ct(
    shape_zyx: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    nodules_zyx: list[tuple[float, float, float]],
    diameters_mm: list[float],
    rng: np.random.Generator,
) -> np.ndarray:
    """An int16 HU volume: air outside an elliptic body (40 HU), two lungs (-850 HU),
    spherical nodules (40 HU) and Gaussian noise (20 HU)."""
    z, y, x = np.ogrid[tuple(slice(0, s) for s in shape_zyx)]
    _, height, width = shape_zyx
    cy, cx = (height - 1) / 2, (width - 1) / 2
    hu = np.full(shape_zyx, -1000.0)
    body = ((y - cy) / (0.45 * height)) ** 2 + ((x - cx) / (0.48 * width)) ** 2 <= 1
    hu[np.broadcast_to(body, shape_zyx)] = 40.0
    for side in (-1, 1):
        lung = (
            ((y - cy) / (0.33 * height)) ** 2
            + ((x - cx - side * 0.22 * width) / (0.17 * width)) ** 2
        ) <= 1
        hu[np.broadcast_to(lung, shape_zyx)] = -850.0
    sx, sy, sz = spacing_xyz
    for (nz, ny, nx), diameter in zip(nodules_zyx, diameters_mm, strict=True):
        inside = ((z - nz) * sz) ** 2 + ((y - ny) * sy) ** 2 + ((x - nx) * sx) ** 2
        hu[inside <= (diameter / 2) ** 2] = 40.0
    hu += rng.normal(0.0, 20.0, shape_zyx)
    return np.clip(hu, -1024, 3071).astype(np.int16)


def make_synthetic_luna16(
    root: str | Path,
    num_series: int = 4,
    *,
    shape_zyx: tuple[int, int, int] = (24, 64, 64),
    spacing_xyz: tuple[float, float, float] = (0.75, 0.7, 2.5),
    origin_xyz: tuple[float, float, float] = (-120.5, -80.25, -310.0),
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    nodules_per_series: int = 2,
    seed: int = 0,
    subsets: int = 2,
) -> list[SyntheticNodule]:
    """Write a synthetic LUNA16 under ``root``; returns the nodules written (world mm).

    Nodules (5-9 mm) sit inside the lungs; their centres are converted to world
    coordinates with SimpleITK from the written image's own geometry (``spacing_xyz``,
    ``origin_xyz`` and the row-major 3x3 ``direction``).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    depth, height, width = shape_zyx
    nodules: list[SyntheticNodule] = []
    for i in range(num_series):
        uid = f"1.3.6.1.4.1.14519.5.2.1.6279.6001.{100000 + 7 * i}"
        centres, diameters = [], []
        for k in range(nodules_per_series):
            side = -1 if k % 2 == 0 else 1
            centres.append(
                (
                    float(rng.uniform(0.35, 0.65) * (depth - 1)),
                    float((height - 1) / 2 + rng.uniform(-0.12, 0.12) * height),
                    float((width - 1) / 2 + side * 0.22 * width + rng.uniform(-0.04, 0.04) * width),
                )
            )
            diameters.append(float(rng.uniform(5.0, 9.0)))
        hu = synthetic_ct(shape_zyx, spacing_xyz, centres, diameters, rng)
        image = sitk.GetImageFromArray(hu)
        image.SetSpacing(spacing_xyz)
        image.SetOrigin(origin_xyz)
        image.SetDirection(direction)
        folder = root / f"subset{i % subsets}"
        folder.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(folder / f"{uid}.mhd"))
        for (cz, cy, cx), diameter in zip(centres, diameters, strict=True):
            world = image.TransformContinuousIndexToPhysicalPoint((cx, cy, cz))
            nodules.append(SyntheticNodule(uid, tuple(float(v) for v in world), diameter))
    with (root / "annotations.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        for n in nodules:
            writer.writerow(
                [n.seriesuid, *(f"{v:.4f}" for v in n.center_xyz), f"{n.diameter_mm:.4f}"]
            )
    with (root / "candidates_V2.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "class"])
        for n in nodules:
            writer.writerow([n.seriesuid, *(f"{v:.4f}" for v in n.center_xyz), 1])
            writer.writerow([n.seriesuid, *(f"{v + 20:.4f}" for v in n.center_xyz), 0])
    return nodules
