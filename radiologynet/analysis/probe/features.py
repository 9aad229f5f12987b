"""Reading feature files and checking they describe the same images.

A feature file is what ``radiologynet embed`` writes: a parquet table with one row per
image (``path``, ``label``, ``split``, ``embedding`` as a fixed-size list of float32 or
float16) and, in the schema metadata under the key ``radiologynet``, JSON saying which
model, weights (tag and sha256), preprocessing and library version made it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from radiologynet._optional import require
from radiologynet.errors import FeatureFileError, ResultsFormatError

#: The columns a feature file must have.
COLUMNS = ("path", "label", "split", "embedding")
#: The schema-metadata key holding what made the embeddings.
METADATA_KEY = "radiologynet"
#: The split names a feature file may use.
SPLITS = ("train", "val", "test")
#: The most bytes of embeddings one file may decode to (float32), unless asked otherwise.
DEFAULT_MAX_BYTES = 8 * 1024**3


@dataclass(frozen=True)
class FeatureSet:
    """One initialisation's embeddings of a set of images.

    Attributes:
        name: what the probe calls it (``radiologynet``, ``imagenet``, ...).
        source: the file read (``""`` for one made in memory).
        paths: one image path per row.
        labels: one label per row (strings for classes, floats for a regression target).
        splits: ``train``/``val``/``test`` per row, or ``None`` when the file has none.
        embeddings: the ``(images, dimensions)`` float32 features.
        metadata: the file's ``radiologynet`` metadata (model, weights, preprocessing...).
    """

    name: str
    paths: np.ndarray
    labels: np.ndarray
    splits: np.ndarray | None
    embeddings: np.ndarray
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])


def _field_is_float(field_type: Any) -> bool:
    pa = require("pyarrow", "reading feature files")
    return bool(pa.types.is_floating(field_type))


def _check_schema(path: Path, schema: Any, max_bytes: int, rows: int) -> int:
    """The embedding's dimension after checking the columns and the memory it will take."""
    pa = require("pyarrow", "reading feature files")
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        raise FeatureFileError(
            f"{path}: not a feature file: no column {', '.join(missing)} (has "
            f"{', '.join(schema.names)}); make it with `radiologynet embed`"
        )
    kind = schema.field("embedding").type
    if not (pa.types.is_fixed_size_list(kind) and _field_is_float(kind.value_type)):
        raise FeatureFileError(
            f"{path}: column embedding is {kind}, not a fixed-size list of floats; "
            "make the file with `radiologynet embed`"
        )
    dimension = int(kind.list_size)
    if rows * dimension * 4 > max_bytes:
        raise FeatureFileError(
            f"{path}: {rows} x {dimension} embeddings need {rows * dimension * 4 / 1e9:.1f} GB, "
            f"over the {max_bytes / 1e9:.1f} GB budget; raise max_bytes or probe fewer images"
        )
    return dimension


def read_features(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> FeatureSet:
    """Read one feature file written by ``radiologynet embed`` (Parquet, or ``.npy`` with
    its ``.json``), through :func:`radiologynet.inference.embed.read_embeddings`.

    Args:
        path: the file.
        name: what to call these features; default the weights named in its metadata
            (``radiologynet``, ``imagenet``, ``random``...), else the file's stem.
        max_bytes: refuse a Parquet file whose embeddings would take more memory than this
            (checked from its footer, before anything is decoded).

    Returns:
        A :class:`FeatureSet` (embeddings as float32, rows in file order; an empty label
        is ``None``).

    Raises:
        FeatureFileError: a missing or unreadable file, missing columns, null or
            non-finite embeddings, duplicate paths, or unknown split names.
    """
    from radiologynet.inference.embed import read_embeddings

    path = Path(path)
    if not path.is_file():
        raise FeatureFileError(f"{path}: no such feature file; make it with `radiologynet embed`")
    if path.suffix.lower() != ".npy":
        _check_parquet(path, max_bytes)
    try:
        embeddings = read_embeddings(path)
    except ResultsFormatError as err:
        raise FeatureFileError(f"{path}: not a feature file ({err})") from err
    vectors = np.asarray(embeddings.vectors, dtype=np.float32)
    _check_finite(path, vectors)
    features = FeatureSet(
        name=name or _default_name(embeddings.metadata, path),
        source=str(path),
        paths=np.asarray([str(p) for p in embeddings.paths], dtype=object),
        labels=_labels(embeddings.labels),
        splits=_splits(path, embeddings.splits),
        embeddings=vectors,
        metadata=dict(embeddings.metadata),
    )
    _check_rows(features)
    return features


def _check_parquet(path: Path, max_bytes: int) -> None:
    pq = require("pyarrow.parquet", "reading feature files")
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise FeatureFileError(f"{path}: not a readable parquet file ({err})") from err
    _check_schema(path, parquet.schema_arrow, max_bytes, parquet.metadata.num_rows)
    if parquet.schema_arrow.metadata is None or (
        METADATA_KEY.encode() not in parquet.schema_arrow.metadata
    ):
        raise FeatureFileError(
            f"{path}: no {METADATA_KEY!r} schema metadata saying which weights made it; "
            "make it with `radiologynet embed`"
        )


def _default_name(metadata: dict[str, Any], path: Path) -> str:
    """The weights' short name from the metadata (``resnet50.radiologynet@1`` ->
    ``radiologynet``), else the file's stem."""
    for key in ("weights_tag", "weights", "tag"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            short = value.split("@")[0]
            return short.rsplit(".", 1)[-1] if "." in short and "/" not in short else short
    return path.stem


def _labels(values: list[Any]) -> np.ndarray:
    """Labels as stored: class names (str) or numbers; an empty one is ``None``."""
    return np.asarray([None if v is None or v == "" else v for v in values], dtype=object)


def _splits(path: Path, values: list[Any]) -> np.ndarray | None:
    present = [v for v in values if v not in (None, "")]
    if not present:
        return None
    unknown = sorted({str(v) for v in present} - set(SPLITS))
    if unknown or len(present) != len(values):
        what = f"split names {unknown}" if unknown else "rows without a split"
        raise FeatureFileError(
            f"{path}: {what}; a feature file's split is train, val or test on every row, "
            "or empty on every row (the probe then makes a seeded stratified split)"
        )
    return np.asarray(values, dtype=object)


def _check_finite(path: Path, matrix: np.ndarray) -> None:
    if not np.isfinite(matrix).all():
        bad = int((~np.isfinite(matrix)).any(axis=1).sum())
        raise FeatureFileError(
            f"{path}: {bad} embeddings hold NaN or infinite values; embed those images again"
        )


def _check_rows(features: FeatureSet) -> None:
    unique, counts = np.unique(features.paths.astype(str), return_counts=True)
    if (counts > 1).any():
        raise FeatureFileError(
            f"{features.source}: {int((counts > 1).sum())} paths appear more than once "
            f"(e.g. {unique[counts > 1][0]}); one row per image"
        )
    if len(features) == 0:
        raise FeatureFileError(f"{features.source}: holds no images")


def align(feature_sets: list[FeatureSet]) -> list[FeatureSet]:
    """The feature sets with their rows in the first one's order, after checking that
    they describe the same images with the same labels and splits.

    Raises:
        FeatureFileError: one line naming the two files and what differs (images only in
            one, a label or a split that differs, repeated names).
    """
    if not feature_sets:
        raise FeatureFileError("no feature files given; pass one per initialisation")
    names = [f.name for f in feature_sets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise FeatureFileError(
            f"two feature files are both called {repeated[0]!r}; name them on the command "
            "line as NAME=FILE (e.g. imagenet=imagenet.parquet)"
        )
    first = feature_sets[0]
    aligned = [first]
    for other in feature_sets[1:]:
        aligned.append(_aligned_to(first, other))
    return aligned


def _describe(features: FeatureSet) -> str:
    return features.source or features.name


def _aligned_to(first: FeatureSet, other: FeatureSet) -> FeatureSet:
    a, b = _describe(first), _describe(other)
    index = {p: i for i, p in enumerate(other.paths.astype(str))}
    only_first = [p for p in first.paths.astype(str) if p not in index]
    only_other = len(other) - (len(first) - len(only_first))
    if only_first or only_other:
        example = (
            only_first[0]
            if only_first
            else next(p for p in other.paths.astype(str) if p not in set(first.paths.astype(str)))
        )
        raise FeatureFileError(
            f"{a} and {b} are for different image sets ({len(first)} vs {len(other)} images, "
            f"{len(only_first)} only in the first, {only_other} only in the second, e.g. "
            f"{example}); embed the same images with each weights"
        )
    order = np.asarray([index[p] for p in first.paths.astype(str)])
    moved = replace(
        other,
        paths=other.paths[order],
        labels=other.labels[order],
        splits=None if other.splits is None else other.splits[order],
        embeddings=other.embeddings[order],
    )
    _same(a, b, "label", first.labels, moved.labels, first.paths)
    if (first.splits is None) != (moved.splits is None):
        raise FeatureFileError(
            f"{a} and {b}: one has a split column and the other not; embed both from the same data"
        )
    if first.splits is not None:
        _same(a, b, "split", first.splits, moved.splits, first.paths)
    return moved


def _same(a: str, b: str, what: str, x: np.ndarray, y: np.ndarray, paths: np.ndarray) -> None:
    if x.dtype.kind == "f" and y.dtype.kind == "f":
        differ = ~((x == y) | (np.isnan(x) & np.isnan(y)))
    else:
        differ = np.asarray([u != v for u, v in zip(x, y, strict=True)], dtype=bool)
    if differ.any():
        i = int(np.flatnonzero(differ)[0])
        raise FeatureFileError(
            f"{a} and {b} have mismatched {what}s on {int(differ.sum())} images (e.g. "
            f"{paths[i]}: {x[i]!r} vs {y[i]!r}); embed both from the same data"
        )
