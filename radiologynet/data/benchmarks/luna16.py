"""LUNA16 for 2-D nodule segmentation, as the paper used it.

Layout (https://luna16.grand-challenge.org/Download/): ``subset0..subset9/<seriesuid>.mhd``
(+ ``.raw``), ``annotations.csv`` (``seriesuid, coordX, coordY, coordZ, diameter_mm``, world
millimetres) and optionally ``candidates.csv`` / ``candidates_V2.csv`` and the authors'
malignancy-matched nodule list (:data:`MALIGNANCY_SHEETS`, used when present:
:func:`read_nodules`).

The pipeline: CT in HU clipped to [-1000, 1000] and scaled ``(HU + 1000) / 2000`` to [0, 1];
nodule centres mapped world -> voxel with the volume's origin, spacing and direction; a
mask per nodule, by default the paper's (a box grown from the centre while voxels stay
above -700 HU, intersected with HU > -700), optionally a sphere of the annotated diameter;
series-level split (sorted series UIDs, every 10th to validation, optionally a held-out
test fold). Training samples are 96 x 96 crops centred on each nodule (cut to a random
64 x 64 and augmented on the device), drawn ``samples_per_epoch`` times per epoch (the
paper: 300,000); the library's Table 2 measure is taken on the central 64 x 64 of each
validation nodule's crop (:meth:`LUNA16.center_crops`), the authors' on a cut at a random
offset (:meth:`LUNA16.offset_crops`); the full slices that contain nodule, on which the
authors' training stopped, are :meth:`LUNA16.slices`. Each series is decoded once into a
small ``.npz`` cache (its nodule slices and crops).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from radiologynet._atomic import atomic_write
from radiologynet.data.splits import (
    check_fraction,
    check_seed,
    read_csv_table,
    require_columns,
    sheet_number,
)
from radiologynet.errors import DatasetFormatError, DatasetNotFoundError, InvalidArgumentError
from radiologynet.io import read_volume

HU_MIN, HU_MAX = -1000.0, 1000.0
#: The paper's threshold for growing and cutting nodule masks (HU).
MASK_THRESHOLD_HU = -700.0
MASK_METHODS = ("paper", "sphere")
CROP_SIZE = 96
#: Bump when the cache layout or its contents change.
CACHE_VERSION = 1
DOWNLOAD_HINT = (
    "Download LUNA16 from https://luna16.grand-challenge.org/Download/ and "
    "extract it so that DIR/subset0/<seriesuid>.mhd and DIR/annotations.csv exist."
)


@dataclass(frozen=True)
class Nodule:
    """One annotated nodule: centre in world millimetres ``(x, y, z)`` and its diameter."""

    seriesuid: str
    center_xyz: tuple[float, float, float]
    diameter_mm: float


def scale_hu(hu: np.ndarray) -> np.ndarray:
    """HU clipped to [-1000, 1000] and scaled to [0, 1] (float32)."""
    return (np.clip(hu.astype(np.float32), HU_MIN, HU_MAX) - HU_MIN) / (HU_MAX - HU_MIN)


def find_series(root: str | Path) -> dict[str, Path]:
    """Every ``subset*/<seriesuid>.mhd`` under ``root``, by series UID.

    Raises:
        DatasetNotFoundError: no ``subset*`` folder with ``.mhd`` files.
    """
    root = Path(root).expanduser()
    series = {p.stem: p for p in sorted(root.glob("subset*/*.mhd"))}
    if not series:
        raise DatasetNotFoundError(
            f"No subset*/<seriesuid>.mhd files under {root}. {DOWNLOAD_HINT}"
        )
    return series


def _read_rows(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a LUNA16 sheet as text, through the datasets' one CSV reader (empty,
    binary, non-UTF-8 and ragged files are one :class:`DatasetFormatError`)."""
    frame = read_csv_table(path, dtype=str, keep_default_na=False)
    require_columns(frame, columns, path)
    return frame.to_dict("records")


def _numbers(path: Path, line: int, row: dict[str, str], names: Sequence[str]) -> list[float]:
    """The finite numbers of ``names`` in ``row`` (a diameter > 0): NaN, inf, text and
    empty cells are a :class:`DatasetFormatError` naming the file, line and column."""
    return [
        sheet_number(
            row[name],
            f"{path} line {line}",
            name,
            minimum=0 if name == "diameter_mm" else None,
            strict=True,
        )
        for name in names
    ]


def read_annotations(root: str | Path, name: str = "annotations.csv") -> list[Nodule]:
    """The nodules of ``annotations.csv`` (or of another sheet with its columns, such as
    the malignancy-matched list, ``name``).

    Raises:
        DatasetNotFoundError: no such sheet.
        DatasetFormatError: missing columns or non-numeric values.
    """
    path = Path(root).expanduser() / name
    if not path.is_file():
        hint = DOWNLOAD_HINT if name == "annotations.csv" else MALIGNANCY_HINT
        raise DatasetNotFoundError(f"{path} not found. {hint}")
    columns = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
    nodules = []
    for line, row in enumerate(_read_rows(path, columns), start=2):
        if not row["seriesuid"].strip():
            raise DatasetFormatError(f"{path} line {line}: seriesuid is empty.")
        x, y, z, diameter = _numbers(path, line, row, columns[1:])
        nodules.append(Nodule(row["seriesuid"], (x, y, z), diameter))
    return nodules


#: The malignancy-matched nodule list the authors trained on, by the names it goes by:
#: the authors' (``luna/paths.py``: ``_RADIOLOGYNET_TMP/annotations-with-malignancy.csv``)
#: and the book's (``annotations_with_malignancy.csv``), looked for in the dataset folder.
MALIGNANCY_SHEETS = (
    "annotations_with_malignancy.csv",
    "annotations-with-malignancy.csv",
    "_RADIOLOGYNET_TMP/annotations-with-malignancy.csv",
)
MALIGNANCY_HINT = (
    "The authors' positive nodules are annotations.csv's nodules matched to LIDC-IDRI "
    "reading clusters (pylidc), unmatched ones dropped: the book's "
    "annotations_with_malignancy.csv (Deep Learning with PyTorch, dlwpt-code, "
    "data/part2/luna/; columns seriesuid, coordX, coordY, coordZ, diameter_mm, ...). "
    "Put it in the LUNA16 folder."
)
#: Which nodule list gives the positive nodules: ``"auto"`` (the malignancy-matched list
#: when the folder has it, else ``annotations.csv`` with a warning), ``"malignancy"``
#: (that list, required) or ``"annotations"`` (``annotations.csv``, no warning).
NODULE_LISTS = ("auto", "malignancy", "annotations")
_warned_roots: set[Path] = set()


def read_nodules(root: str | Path, nodules: str = "auto") -> tuple[list[Nodule], str]:
    """The positive nodules of the LUNA16 folder ``root`` and the sheet they came from
    (its path relative to ``root``), by the rule ``nodules`` (:data:`NODULE_LISTS`).

    With ``"auto"`` and no malignancy-matched list, ``annotations.csv`` is used and a
    warning (once per folder) says that the list differs from the authors'.

    Raises:
        InvalidArgumentError: an unknown rule.
        DatasetNotFoundError: the sheet the rule needs is missing.
    """
    if nodules not in NODULE_LISTS:
        raise InvalidArgumentError(f"nodules={nodules!r}: use one of {', '.join(NODULE_LISTS)}.")
    root = Path(root).expanduser()
    if nodules != "annotations":
        found = next((n for n in MALIGNANCY_SHEETS if (root / n).is_file()), None)
        if found is not None:
            return read_annotations(root, found), found
        if nodules == "malignancy":
            return read_annotations(root, MALIGNANCY_SHEETS[0]), MALIGNANCY_SHEETS[0]
        if root not in _warned_roots:
            _warned_roots.add(root)
            warnings.warn(
                f"LUNA16 at {root}: no malignancy-matched nodule list, so the positive "
                "nodules are all of annotations.csv (1,186 in the full dataset), not the "
                "authors' list (a few fewer: annotations without a LIDC-IDRI match were "
                f"dropped). {MALIGNANCY_HINT} (nodules='annotations' silences this.)",
                stacklevel=3,
            )
    return read_annotations(root), "annotations.csv"


def read_candidates(root: str | Path) -> list[tuple[str, tuple[float, float, float], int]]:
    """``(seriesuid, (x, y, z), class)`` rows of ``candidates_V2.csv`` (or
    ``candidates.csv``); an empty list when neither exists."""
    root = Path(root).expanduser()
    for name in ("candidates_V2.csv", "candidates.csv"):
        path = root / name
        if path.is_file():
            columns = ("seriesuid", "coordX", "coordY", "coordZ", "class")
            candidates = []
            for line, row in enumerate(_read_rows(path, columns), start=2):
                x, y, z, label = _numbers(path, line, row, columns[1:])
                if label not in (0.0, 1.0):
                    raise DatasetFormatError(f"{path} line {line}: class {label:g} is not 0 or 1.")
                candidates.append((row["seriesuid"], (x, y, z), int(label)))
            return candidates
    return []


def split_series(
    uids: Iterable[str], val_every: int = 10, test_every: int | None = None
) -> dict[str, list[str]]:
    """The paper's series-level split: sorted UIDs, every ``val_every``-th (from the first)
    to validation; with ``test_every``, every ``test_every``-th of the rest to a held-out
    test fold. Returns ``{"train", "val", "test"}`` lists of UIDs (disjoint)."""
    if val_every < 2 or (test_every is not None and test_every < 2):
        raise InvalidArgumentError(
            f"val_every={val_every}, test_every={test_every}: each must be >= 2."
        )
    ordered = sorted(set(uids))
    val = ordered[::val_every]
    rest = [u for i, u in enumerate(ordered) if i % val_every]
    test = rest[::test_every] if test_every else []
    train = [u for u in rest if u not in set(test)]
    return {"train": train, "val": val, "test": test}


def _grow_radius(hu: np.ndarray, centre: tuple[int, int, int], axis: int, threshold: float) -> int:
    radius = 2
    size = hu.shape[axis]
    while True:
        low, high = centre[axis] - radius, centre[axis] + radius
        if low < 0 or high >= size:
            return radius
        lo_idx, hi_idx = list(centre), list(centre)
        lo_idx[axis], hi_idx[axis] = low, high
        if hu[tuple(lo_idx)] <= threshold or hu[tuple(hi_idx)] <= threshold:
            return radius
        radius += 1


def nodule_mask(
    hu: np.ndarray,
    centres_zyx: np.ndarray,
    diameters_mm: Sequence[float],
    spacing_zyx: Sequence[float],
    method: str = "paper",
    threshold_hu: float = MASK_THRESHOLD_HU,
) -> np.ndarray:
    """A boolean mask (same shape as ``hu``, ``[z, y, x]``) of the nodules.

    ``method="paper"``: around each centre a box whose half-size along each axis grows from
    2 voxels while both voxels at that distance stay above ``threshold_hu``; the union of
    boxes is intersected with ``hu > threshold_hu`` (the diameter is not used).
    ``method="sphere"``: the voxels within ``diameter / 2`` mm of the continuous centre.
    """
    if method not in MASK_METHODS:
        raise InvalidArgumentError(f"mask method {method!r}: use one of {', '.join(MASK_METHODS)}.")
    mask = np.zeros(hu.shape, dtype=bool)
    centres = np.atleast_2d(np.asarray(centres_zyx, dtype=np.float64))
    if method == "sphere":
        grids = np.ogrid[tuple(slice(0, s) for s in hu.shape)]
        for centre, diameter in zip(centres, diameters_mm, strict=True):
            distance = sum(
                ((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing_zyx, strict=True)
            )
            mask |= distance <= (diameter / 2) ** 2
        return mask
    for centre in centres:
        index = tuple(int(v) for v in np.clip(np.rint(centre), 0, np.array(hu.shape) - 1))
        radii = [_grow_radius(hu, index, axis, threshold_hu) for axis in range(3)]
        box = tuple(slice(max(c - r, 0), c + r + 1) for c, r in zip(index, radii, strict=True))
        mask[box] = True
    return mask & (hu > threshold_hu)


def _crop(array: np.ndarray, centre_yx: tuple[int, int], size: int, fill: float) -> np.ndarray:
    half = size // 2
    padded = np.pad(array, half, mode="constant", constant_values=fill)
    y, x = centre_yx[0] + half, centre_yx[1] + half
    return padded[y - half : y - half + size, x - half : x - half + size]


@dataclass
class SeriesSamples:
    """What one series contributes: its nodule slices and the crops around each nodule.

    Attributes:
        slice_index: ``(k,)`` z index of each slice that contains nodule.
        slices / slice_masks: ``(k, H, W)`` scaled image (float16) and mask (bool).
        centres_zyx: ``(n, 3)`` continuous voxel centres of the nodules.
        crops / crop_masks: ``(n, 96, 96)`` crops centred on each nodule's slice and pixel.
    """

    slice_index: np.ndarray
    slices: np.ndarray
    slice_masks: np.ndarray
    centres_zyx: np.ndarray
    crops: np.ndarray
    crop_masks: np.ndarray

    def save(self, path: Path) -> None:
        """Write atomically as ``.npz``."""

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez appends no ".npz"
                np.savez(fh, **self.__dict__)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> SeriesSamples:
        """Read a cache file written by :meth:`save`."""
        with np.load(path) as data:
            return cls(**{k: data[k] for k in data.files})


def build_series_samples(
    mhd: Path, nodules: Sequence[Nodule], method: str = "paper", crop_size: int = CROP_SIZE
) -> SeriesSamples:
    """Decode one series and cut its nodule slices and crops."""
    volume = read_volume(mhd)
    hu = volume.array.astype(np.float32)
    if nodules:
        centres = volume.world_to_voxel(np.array([n.center_xyz for n in nodules]))
        centres = np.atleast_2d(centres)
    else:
        centres = np.zeros((0, 3))
    mask = (
        nodule_mask(hu, centres, [n.diameter_mm for n in nodules], volume.spacing_zyx, method)
        if nodules
        else np.zeros(hu.shape, dtype=bool)
    )
    scaled = scale_hu(hu)
    slice_index = np.flatnonzero(mask.any(axis=(1, 2)))
    crops, crop_masks = [], []
    for centre in centres:
        z, y, x = (int(v) for v in np.clip(np.rint(centre), 0, np.array(hu.shape) - 1))
        crops.append(_crop(scaled[z], (y, x), crop_size, 0.0))
        crop_masks.append(_crop(mask[z], (y, x), crop_size, False))
    empty = np.zeros((0, crop_size, crop_size))
    return SeriesSamples(
        slice_index=slice_index,
        slices=scaled[slice_index].astype(np.float16),
        slice_masks=mask[slice_index],
        centres_zyx=centres.astype(np.float64),
        crops=np.stack(crops).astype(np.float16) if crops else empty.astype(np.float16),
        crop_masks=np.stack(crop_masks) if crop_masks else empty.astype(bool),
    )


def default_cache_dir() -> Path:
    """``<radiologynet cache>/luna16`` (``$RADIOLOGYNET_CACHE`` or ``~/.cache/radiologynet``)."""
    from radiologynet.models._hub import cache_dir

    return cache_dir() / "luna16"


class LUNA16:
    """A LUNA16 folder: its series, nodules, split and cached per-series samples.

    Args:
        root: the dataset folder (``subset*/``, ``annotations.csv``).
        mask_method: ``"paper"`` (default) or ``"sphere"``.
        val_every / test_every: the series-level split (:func:`split_series`).
        cache_dir: where the per-series ``.npz`` files go (default
            :func:`default_cache_dir`); keyed by series, mask method, crop size and the
            ``.mhd`` file's size and modification time.
        progress: show a progress bar while series are decoded.
        fraction / seed: the share of the training split's nodule crops kept
            (:meth:`crops`; ``None``: all), drawn with ``seed``. The series split does not
            depend on ``seed``.
        nodules: which list gives the positive nodules (:func:`read_nodules`): by default
            the authors' malignancy-matched list when the folder has it, else
            ``annotations.csv`` with a warning. ``nodule_sheet`` says which was read.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        mask_method: str = "paper",
        val_every: int = 10,
        test_every: int | None = None,
        cache_dir: str | Path | None = None,
        crop_size: int = CROP_SIZE,
        progress: bool = True,
        seed: int = 0,
        fraction: float | None = None,
        nodules: str = "auto",
    ) -> None:
        if mask_method not in MASK_METHODS:
            raise InvalidArgumentError(
                f"mask_method {mask_method!r}: use one of {', '.join(MASK_METHODS)}."
            )
        self.root = Path(root).expanduser()
        self.series = find_series(self.root)
        self.nodules: dict[str, list[Nodule]] = {}
        listed, self.nodule_sheet = read_nodules(self.root, nodules)
        for nodule in listed:
            if nodule.seriesuid in self.series:
                self.nodules.setdefault(nodule.seriesuid, []).append(nodule)
        self.mask_method = mask_method
        self.crop_size = crop_size
        self.splits = split_series(self.series, val_every, test_every)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.progress = progress
        self.seed, self.fraction = check_seed(seed), check_fraction(fraction)

    def _cache_path(self, uid: str) -> Path:
        stat = self.series[uid].stat()
        raw = self.series[uid].with_suffix(".raw")
        raw_stat = (raw.stat().st_size, raw.stat().st_mtime_ns) if raw.exists() else ()
        nodules = [(n.center_xyz, n.diameter_mm) for n in self.nodules.get(uid, [])]
        key = repr(
            (
                CACHE_VERSION,
                stat.st_size,
                stat.st_mtime_ns,
                raw_stat,
                nodules,
                self.mask_method,
                self.crop_size,
            )
        )
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        return self.cache_dir / f"{uid}-{self.mask_method}-{digest}.npz"

    def samples(self, uid: str) -> SeriesSamples:
        """The cached samples of one series (decoded and cached on first use)."""
        path = self._cache_path(uid)
        if path.is_file():
            return SeriesSamples.load(path)
        samples = build_series_samples(
            self.series[uid], self.nodules.get(uid, []), self.mask_method, self.crop_size
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        samples.save(path)
        return samples

    def split_samples(self, split: str) -> list[SeriesSamples]:
        """The samples of every series of ``split`` (``train``, ``val`` or ``test``) that
        has nodules."""
        uids = [u for u in self.splits[split] if u in self.nodules]
        return [
            self.samples(u)
            for u in tqdm(uids, desc=f"LUNA16 {split}", leave=False, disable=not self.progress)
        ]

    def crops(self, split: str = "train", samples_per_epoch: int | None = None) -> LunaCrops:
        """The crops of ``split`` (``crop_size`` around each nodule); of ``train``, the
        ``fraction`` kept with ``seed`` (at least one)."""
        parts = self.split_samples(split)
        images = [p.crops for p in parts if len(p.crops)]
        masks = [p.crop_masks for p in parts if len(p.crops)]
        if not images:
            raise DatasetFormatError(f"{self.root}: no annotated nodule in the {split} split.")
        crops, crop_masks = np.concatenate(images), np.concatenate(masks)
        if split == "train" and self.fraction is not None:
            count = max(1, round(len(crops) * self.fraction))
            order = torch.randperm(len(crops), generator=torch.Generator().manual_seed(self.seed))
            keep = order[:count].sort().values.numpy()
            crops, crop_masks = crops[keep], crop_masks[keep]
        return LunaCrops(crops, crop_masks, samples_per_epoch)

    def center_crops(self, split: str = "val", size: int = 64) -> LunaCrops:
        """The central ``size`` x ``size`` of each nodule crop of ``split``: the library's
        validation crops for the paper's Table 2 measure (fixed, so epochs compare on the
        same pixels; the authors cut theirs at random offsets, :meth:`offset_crops`)."""
        full = self.crops(split)
        if not 0 < size <= full.crops.shape[-1]:
            raise InvalidArgumentError(
                f"center crop size {size} must be in 1..{full.crops.shape[-1]} (the cached "
                "crop size)."
            )
        start = (full.crops.shape[-1] - size) // 2
        window = (slice(None), slice(start, start + size), slice(start, start + size))
        return LunaCrops(full.crops[window].numpy(), full.masks[window].numpy())

    def offset_crops(self, split: str = "val", size: int = 64, seed: int = 0) -> LunaCrops:
        """A ``size`` x ``size`` cut of each nodule crop of ``split`` at a random offset
        (row and column each in ``0 .. crop_size - size - 1``, as the authors'
        ``random.randrange(0, 32)`` for 64 in 96), drawn once with ``seed``: the crops the
        authors' Table 2 evaluation used (they drew new offsets at every visit)."""
        full = self.crops(split)
        side = full.crops.shape[-1]
        if not 0 < size < side:
            raise InvalidArgumentError(
                f"offset crop size {size} must be in 1..{side - 1} (the cached crop size "
                f"is {side})."
            )
        generator = torch.Generator().manual_seed(check_seed(seed))
        offsets = torch.randint(0, side - size, (len(full.crops), 2), generator=generator)
        rows = offsets[:, :1, None] + torch.arange(size)[None, :, None]
        cols = offsets[:, 1:, None] + torch.arange(size)[None, None, :]
        index = torch.arange(len(full.crops))[:, None, None]
        return LunaCrops(
            full.crops[index, rows, cols].numpy(), full.masks[index, rows, cols].numpy()
        )

    def slices(self, split: str = "val") -> LunaSlices:
        """The full slices of ``split`` that contain nodule."""
        parts = [p for p in self.split_samples(split) if len(p.slices)]
        if not parts:
            raise DatasetFormatError(f"{self.root}: no nodule slice in the {split} split.")
        return LunaSlices([p.slices for p in parts], [p.slice_masks for p in parts])


def load(
    root: str | Path, *, seed: int = 0, fraction: float | None = None, **options: Any
) -> LUNA16:
    """LUNA16 at ``root`` (the task registry's loader of ``luna16``): :class:`LUNA16` with
    ``fraction`` of the training crops kept with ``seed``; ``options``: its other
    arguments (``mask_method``, ``test_every``, ``cache_dir``, ...)."""
    return LUNA16(root, seed=seed, fraction=fraction, **options)


class LunaCrops(torch.utils.data.Dataset):
    """Nodule crops: items ``(image (1, S, S) float32 in [0, 1], mask (1, S, S) float32)``.

    ``samples_per_epoch`` (the paper: 300,000) is the dataset's length: item ``i`` is crop
    ``i % n``, so an epoch visits every crop about ``samples_per_epoch / n`` times (each
    time cut and augmented differently on the device); ``None``: each crop once.
    """

    def __init__(
        self, crops: np.ndarray, masks: np.ndarray, samples_per_epoch: int | None = None
    ) -> None:
        if samples_per_epoch is not None and (
            isinstance(samples_per_epoch, bool) or int(samples_per_epoch) < 1
        ):
            raise InvalidArgumentError(
                f"samples_per_epoch={samples_per_epoch!r}: use a positive number (the "
                "paper: 300000) or None for one pass over the crops."
            )
        self.crops = torch.from_numpy(np.ascontiguousarray(crops))
        self.masks = torch.from_numpy(np.ascontiguousarray(masks))
        self.length = int(samples_per_epoch) if samples_per_epoch else len(self.crops)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = index % len(self.crops)
        return self.crops[i][None].float(), self.masks[i][None].float()


class LunaSlices(torch.utils.data.Dataset):
    """Full slices containing nodule: items ``(image (1, H, W), mask (1, H, W))``."""

    def __init__(self, slices: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> None:
        self.items = [
            (s, m)
            for series, series_masks in zip(slices, masks, strict=True)
            for s, m in zip(series, series_masks, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.items[index]
        return (
            torch.from_numpy(image.astype(np.float32))[None],
            torch.from_numpy(mask.astype(np.float32))[None],
        )
