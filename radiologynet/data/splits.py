"""The contract every benchmark loader returns: samples, deterministic splits, and the
helpers that make them (seeded per-class cuts, training-only data fractions, the
"dataset not found" error).

A loader lists files and labels; it never decodes images (that is ``radiologynet.io``).
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from radiologynet._atomic import atomic_write_text
from radiologynet._optional import require
from radiologynet.errors import DatasetFormatError, DatasetNotFoundError, InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

KINDS = ("multiclass", "binary", "regression")
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One image of a benchmark.

    Attributes:
        path: absolute path of the image file.
        target: class index (``int``) for classification, months (``float``) for bone age.
        sex: bone age only: 1 male, 0 female; ``None`` elsewhere.
        group: the patient id where the dataset has one (GRAZPEDWRI-DX), else ``None``.
    """

    path: str
    target: int | float
    sex: int | None = None
    group: str | None = None


@dataclass(frozen=True)
class Splits:
    """A benchmark's train/validation/test samples, reproducible from ``seed``.

    Attributes:
        task: ``"btmr"``, ``"covid19"``, ``"boneage"`` or ``"grazpedwri"``.
        kind: ``"multiclass"``, ``"binary"`` or ``"regression"``.
        classes: class names in index order (``()`` for regression).
        train, val, test: the samples of each split, sorted by path.
        seed: the seed the splits (and the fraction) were drawn with.
        fraction: the share of the training split kept (``None``: all of it).
        root: the dataset folder the paths live under (for relative paths in CSVs).
    """

    task: str
    kind: str
    classes: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...]
    seed: int
    fraction: float | None
    root: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgumentError(f"Splits.kind must be one of {KINDS}, got {self.kind!r}")

    def split(self, name: str) -> tuple[Sample, ...]:
        """The samples of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLIT_NAMES:
            raise InvalidArgumentError(f"split must be one of {SPLIT_NAMES}, got {name!r}")
        return getattr(self, name)

    def relative_path(self, path: str) -> str:
        """``path`` relative to :attr:`root` (POSIX separators) when it lies under it,
        else as it is."""
        if self.root:
            try:
                return Path(path).relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path

    def to_csv_text(self) -> str:
        """The splits as CSV text: ``split, path, target, sex, group``, one row per sample;
        paths relative to ``root`` where they lie under it."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["split", "path", "target", "sex", "group"])
        for name in SPLIT_NAMES:
            for s in self.split(name):
                writer.writerow(
                    [
                        name,
                        self.relative_path(s.path),
                        s.target,
                        "" if s.sex is None else s.sex,
                        "" if s.group is None else s.group,
                    ]
                )
        return buffer.getvalue()

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_csv_text` to ``path`` atomically (temp file, then rename)."""
        atomic_write_text(Path(path), self.to_csv_text())

    def counts(self) -> dict[str, Counter]:
        """Per split, how many samples each class (name) has; for regression the key is
        ``"all"``."""
        out: dict[str, Counter] = {}
        for name in SPLIT_NAMES:
            if self.kind == "regression":
                out[name] = Counter({"all": len(self.split(name))})
            else:
                out[name] = Counter(self.classes[int(s.target)] for s in self.split(name))
        return out

    def summary(self) -> str:
        """A short human-readable table: counts per split and class (regression: count,
        mean and range of the target, and the male share)."""
        frac = "all" if self.fraction is None else f"{self.fraction:g}"
        lines = [f"{self.task} ({self.kind}), seed {self.seed}, training fraction {frac}"]
        for name in SPLIT_NAMES:
            samples = self.split(name)
            if self.kind == "regression":
                t = np.array([s.target for s in samples], dtype=float)
                sexes = [s.sex for s in samples if s.sex is not None]
                stats = (
                    f"target mean {t.mean():.1f}, range {t.min():g}-{t.max():g}" if len(t) else ""
                )
                male = f", male {np.mean(sexes):.0%}" if sexes else ""
                lines.append(f"  {name:<5} {len(samples):>6}  {stats}{male}")
            else:
                c = self.counts()[name]
                per = ", ".join(f"{cls} {c.get(cls, 0)}" for cls in self.classes)
                lines.append(f"  {name:<5} {len(samples):>6}  ({per})")
        return "\n".join(lines)


@dataclass(frozen=True)
class Task:
    """A benchmark as the trainer and CLI see it: what it predicts and how to load it.

    Attributes:
        name: the task id (``"btmr"``).
        title: the dataset's public name.
        kind: ``"multiclass"``, ``"binary"`` or ``"regression"``.
        classes: class names in index order (``()`` for regression).
        num_outputs: the head's output count (classes for multiclass, 1 otherwise).
        input_needs_sex: whether the model takes the sex input (bone age).
        download_url: where to get the dataset.
        expected_tree: the folder layout the loader reads (shown in errors and docs).
        load: ``load(root, *, seed=0, fraction=None) -> Splits``.
    """

    name: str
    title: str
    kind: str
    classes: tuple[str, ...]
    num_outputs: int
    input_needs_sex: bool
    download_url: str
    expected_tree: str
    load: Callable[..., Splits] = field(repr=False, compare=False)

    @classmethod
    def from_module(cls, module: ModuleType) -> Task:
        """The task a loader module describes with its constants (``NAME``, ``TITLE``,
        ``KIND``, ``CLASSES``, ``NUM_OUTPUTS``, ``INPUT_NEEDS_SEX``, ``DOWNLOAD_URL``,
        ``EXPECTED_TREE``) and its ``load`` function."""
        return cls(
            name=module.NAME,
            title=module.TITLE,
            kind=module.KIND,
            classes=module.CLASSES,
            num_outputs=module.NUM_OUTPUTS,
            input_needs_sex=module.INPUT_NEEDS_SEX,
            download_url=module.DOWNLOAD_URL,
            expected_tree=module.EXPECTED_TREE,
            load=module.load,
        )

    def make_splits(
        self,
        train: Sequence[Sample],
        val: Sequence[Sample],
        test: Sequence[Sample],
        *,
        seed: int,
        fraction: float | None,
        root: str | None,
    ) -> Splits:
        """This task's :class:`Splits`: every split sorted by path, then ``fraction`` of
        the training split kept with ``seed`` (validation and test stay whole)."""
        return Splits(
            task=self.name,
            kind=self.kind,
            classes=self.classes,
            train=subsample_training(sorted_samples(train), fraction, seed, self.kind),
            val=sorted_samples(val),
            test=sorted_samples(test),
            seed=seed,
            fraction=fraction,
            root=root,
        )


def check_seed(seed: int) -> int:
    """Validate a split seed (a non-negative integer) and return it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_fraction(fraction: float | None) -> float | None:
    """Validate a training-data fraction (``None`` or in (0, 1]) and return it."""
    if fraction is None:
        return None
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise InvalidArgumentError(
            f"fraction must be in (0, 1] (e.g. 0.05, 0.25, 0.5) or None, got {fraction!r}"
        )
    return value


def cut_sizes(n: int, ratios: Sequence[float]) -> list[int]:
    """Sizes of consecutive parts of ``n`` items in ``ratios`` (summing to 1): every part
    but the last rounded, the last takes the rest (3616 in 0.75/0.125/0.125 ->
    2712/452/452)."""
    sizes = [int(round(n * r)) for r in ratios[:-1]]
    sizes.append(n - sum(sizes))
    return sizes


def split_per_class(
    items: Sequence[T],
    labels: Sequence[Hashable],
    ratios: Sequence[float],
    rng: np.random.Generator,
) -> list[list[T]]:
    """Split ``items`` into ``len(ratios)`` parts, each class in the same ratios.

    Classes are visited in sorted order and each is shuffled with ``rng``, so the result
    depends only on the items' order, the labels and the generator's seed. Returns one
    list per ratio.
    """
    parts: list[list[T]] = [[] for _ in ratios]
    labels = list(labels)
    for label in sorted(set(labels)):
        members = [item for item, lab in zip(items, labels, strict=True) if lab == label]
        order = rng.permutation(len(members))
        start = 0
        for part, size in zip(parts, cut_sizes(len(members), ratios), strict=True):
            part.extend(members[i] for i in order[start : start + size])
            start += size
    return parts


#: The grouped split's folds: 8, of which fold 0 is test, fold 1 validation and the other
#: six training (75/12.5/12.5), as GRAZPEDWRI-DX's patient-level split.
GROUPED_FOLDS = 8


def grouped_split(
    labels: Sequence[Hashable],
    groups: Sequence[Hashable],
    seed: int,
    *,
    what: str = "the data",
) -> list[str]:
    """The split (``"train"``, ``"val"`` or ``"test"``) of each item, so that no group
    (patient) has items on two sides and each split has about the same class shares:
    scikit-learn's ``StratifiedGroupKFold`` (:data:`GROUPED_FOLDS` folds, shuffled with
    ``seed``; fold 0 test, fold 1 validation, the rest training).

    Raises:
        DatasetFormatError: fewer groups than folds (``what`` names the data).
    """
    StratifiedGroupKFold = require(
        "sklearn.model_selection", "patient-grouped splits"
    ).StratifiedGroupKFold
    groups = np.asarray([str(g) for g in groups])
    if len(np.unique(groups)) < GROUPED_FOLDS:
        raise DatasetFormatError(
            f"{what}: the images come from {len(np.unique(groups))} patients; a "
            f"patient-level 75/12.5/12.5 split needs at least {GROUPED_FOLDS}"
        )
    folds = StratifiedGroupKFold(n_splits=GROUPED_FOLDS, shuffle=True, random_state=seed)
    names = ["train"] * len(groups)
    encoded = np.unique(np.asarray([str(x) for x in labels]), return_inverse=True)[1]
    for fold, (_, held_out) in enumerate(folds.split(np.zeros(len(groups)), encoded, groups)):
        for index in held_out:
            names[int(index)] = "test" if fold == 0 else "val" if fold == 1 else "train"
    return names


def stratify_labels(samples: Sequence[Sample], kind: str, bins: int = 10) -> list[Hashable]:
    """The labels to stratify on: the class for classification, the target's quantile bin
    (``bins`` bins) for regression."""
    targets = np.array([s.target for s in samples], dtype=float)
    if kind != "regression":
        return [int(t) for t in targets]
    if len(targets) == 0:
        return []
    edges = np.unique(np.quantile(targets, np.linspace(0, 1, bins + 1)[1:-1]))
    return [int(b) for b in np.digitize(targets, edges)]


def subsample_training(
    samples: Sequence[Sample], fraction: float | None, seed: int, kind: str
) -> tuple[Sample, ...]:
    """Keep ``fraction`` of the training samples, per class (classification) or per
    target decile (regression), at least one per stratum.

    The draw depends on ``seed`` but not on ``fraction``: each stratum is shuffled once and
    its first ``round(fraction * n)`` samples kept, so a 5 % subset lies inside the 25 %
    subset of the same seed. Returns the kept samples sorted by path.
    """
    fraction = check_fraction(fraction)
    if fraction is None or fraction == 1.0:
        return tuple(samples)
    rng = np.random.default_rng([seed, 0xF4AC])  # a stream separate from the split's
    labels = stratify_labels(samples, kind)
    kept: list[Sample] = []
    for label in sorted(set(labels)):
        members = [s for s, lab in zip(samples, labels, strict=True) if lab == label]
        order = rng.permutation(len(members))
        count = max(1, int(round(fraction * len(members))))
        kept.extend(members[i] for i in order[:count])
    return tuple(sorted(kept, key=lambda s: s.path))


def sorted_samples(samples: Sequence[Sample]) -> tuple[Sample, ...]:
    """``samples`` sorted by path (the canonical order inside a split)."""
    return tuple(sorted(samples, key=lambda s: s.path))


def describe_found(root: Path, limit: int = 12) -> str:
    """A short listing of what is at ``root`` (for "not found" errors)."""
    if not root.exists():
        return f"{root} does not exist"
    if not root.is_dir():
        return f"{root} is a file, not a folder"
    entries = sorted(root.iterdir(), key=lambda p: p.name)
    if not entries:
        return f"{root} is empty"
    shown = [f"  {p.name}{'/' if p.is_dir() else ''}" for p in entries[:limit]]
    if len(entries) > limit:
        shown.append(f"  ... and {len(entries) - limit} more")
    return f"{root} holds:\n" + "\n".join(shown)


def dataset_not_found(
    title: str, root: Path, download_url: str, expected_tree: str, problem: str
) -> DatasetNotFoundError:
    """The error for a missing or mis-laid dataset: what is wrong, where to download it,
    the layout expected and what was found instead."""
    return DatasetNotFoundError(
        f"{title}: {problem}\n"
        f"Download it from {download_url} and pass the folder laid out as:\n"
        f"{expected_tree.rstrip()}\n"
        f"Found instead: {describe_found(root)}"
    )


def find_dataset_dir(root: Path, is_dataset: Callable[[Path], bool]) -> Path | None:
    """``root`` itself, or the one sub-folder of it (an archive's top folder), for which
    ``is_dataset`` holds; ``None`` when neither does."""
    if is_dataset(root):
        return root
    if root.is_dir():
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            if is_dataset(child):
                return child
    return None


def class_folders(root: Path) -> list[str]:
    """The class names of a class-per-subfolder tree (``root/<class>/<image>``): the
    names of ``root``'s sub-folders, sorted, hidden ones (``.ipynb_checkpoints``,
    ``.Trash``) left out.

    Raises:
        DatasetNotFoundError: ``root`` is not a folder.
    """
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: no such folder.")
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def sheet_integer(value: object, where: str, name: str = "id") -> int:
    """A sheet's integer value (an image id): an int, or a float or text that is a whole
    number (``1377``, ``1377.0``, ``"1377"``).

    Raises:
        DatasetFormatError: naming ``where`` (file and row) for anything else (``1377.9``,
            ``inf``, ``nan``, an empty cell, text).
    """
    if isinstance(value, (bool, np.bool_)):
        number = None
    elif isinstance(value, (int, np.integer)):
        return int(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            number = None
    if number is None or not np.isfinite(number) or number != int(number):
        raise DatasetFormatError(
            f"{where}: {name} {value!r} is not a whole number; use the sheet as published."
        )
    return int(number)


def sheet_number(
    value: object, where: str, name: str, *, minimum: float | None = None, strict: bool = False
) -> float:
    """A sheet's finite number (``strict``: above ``minimum``, else at least it).

    Raises:
        DatasetFormatError: naming ``where`` for text, an empty cell, NaN, inf or a value
            out of range.
    """
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else value
    except ValueError:
        number = float("nan")
    low_ok = minimum is None or (number > minimum if strict else number >= minimum)
    if isinstance(value, bool) or not np.isfinite(number) or not low_ok:
        wanted = "a finite number" + (
            f" {'>' if strict else '>='} {minimum:g}" if minimum is not None else ""
        )
        raise DatasetFormatError(
            f"{where}: {name} is {value!r}, not {wanted}; use the sheet as published."
        )
    return float(number)


def refuse_duplicates(
    keys: Sequence[Hashable], source: Path, name: str, first_row: int = 2
) -> None:
    """Raise :class:`DatasetFormatError` naming ``source`` and both rows when a key
    (an image id, a file stem) appears twice: a sheet whose rows would be used twice.
    Row numbers count from ``first_row`` (the line after the header)."""
    seen: dict[Hashable, int] = {}
    for row, key in enumerate(keys, start=first_row):
        if key in seen:
            raise DatasetFormatError(
                f"{source}, row {row}: {name} {key!r} is already on row {seen[key]}; each "
                "image is listed once in the published sheet."
            )
        seen[key] = row


def require_rows(count: int, source: Path, split: str) -> None:
    """Raise :class:`DatasetFormatError` when the sheet ``source`` gives ``split`` no
    sample (a header-only sheet, every row filtered out)."""
    if count == 0:
        raise DatasetFormatError(
            f"{source}: no {split} sample (the sheet holds a header and no row?); use the "
            "sheet as published."
        )


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: Path) -> None:
    """Raise :class:`DatasetFormatError` unless ``frame`` has all ``columns``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DatasetFormatError(
            f"{source}: missing column(s) {missing}; found {list(frame.columns)}. "
            "Use the file as published, unmodified."
        )


def read_csv_table(path: Path, nrows: int | None = None, **options: object) -> pd.DataFrame:
    """A dataset's CSV sheet as a DataFrame, or one :class:`DatasetFormatError` naming the
    file and the cause: empty, binary, not UTF-8 (the releases are UTF-8; a BOM is
    stripped), an unterminated quote, or a row with another field count than the header.

    ``options`` go to ``pandas.read_csv`` (``dtype``, ...).
    """
    pd = require("pandas", "reading dataset sheets")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DatasetFormatError(f"{path}: cannot be read ({err.strerror or err}).") from err
    if not raw.strip():
        raise DatasetFormatError(f"{path}: the file is empty; use the sheet as published.")
    nul = raw.find(b"\0", 0, 65536)
    if nul >= 0:
        raise DatasetFormatError(
            f"{path}: binary data, not a CSV text file (a NUL byte at "
            f"offset {nul}); use the sheet as published."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetFormatError(
            f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "re-save it as UTF-8 (the published sheets are)."
        ) from err
    _check_csv_rows(text, path, nrows)
    try:
        return pd.read_csv(io.StringIO(text), nrows=nrows, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        reason = " ".join(str(err).split())
        raise DatasetFormatError(f"{path}: not a readable CSV ({reason}).") from err


def _check_csv_rows(text: str, path: Path, nrows: int | None) -> None:
    """Every row has the header's field count and every quote is closed."""
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        width = None
        for row in reader:
            if width is None:
                width = len(row)
            elif row and len(row) != width:
                raise DatasetFormatError(
                    f"{path}, line {reader.line_num}: {len(row)} fields where the header has "
                    f"{width}; use the sheet as published."
                )
            if nrows is not None and reader.line_num > nrows + 1:
                break
    except csv.Error as err:
        raise DatasetFormatError(
            f"{path}, line {reader.line_num}: {err} (an unterminated "
            "quote?); use the sheet as published."
        ) from err
