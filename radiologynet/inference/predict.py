"""Predictions of a trained model on new images: :func:`predict` gives one row per image
(``path``, ``prediction``, one ``score_<class>`` per class, ``error``) and
:meth:`Predictions.write` saves them as CSV, JSON or Parquet. ``radiologynet predict``
is this on the command line."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from radiologynet._atomic import atomic_write, atomic_write_text
from radiologynet._optional import require
from radiologynet.errors import InvalidArgumentError
from radiologynet.inference.loader import SEX_UNKNOWN, Batch, parse_sex, run_batches
from radiologynet.inference.loading import LoadedModel, load
from radiologynet.inference.sources import ImageTable, image_table
from radiologynet.io.windowing import Window

#: Output formats of :meth:`Predictions.write`.
FORMATS = ("csv", "json", "parquet")
#: CSV columns read as the patient's sex (bone age), in this order, any case.
SEX_COLUMNS = ("sex", "male", "patientsex")
#: The score above which a binary or multi-label output counts as its class.
THRESHOLD = 0.5


@dataclass(frozen=True)
class Predictions:
    """One row per image, in the order of the source.

    Attributes:
        columns: ``path``, ``prediction``, ``score_<class>`` per class (classifiers;
            ``sex`` for bone age), ``error``.
        rows: one dict per image keyed by ``columns``; an unreadable image has its
            ``error`` and empty (``None``) prediction and scores.
        loaded: the model that predicted (its weights tag, sha256, class names).
    """

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    loaded: LoadedModel = field(repr=False)

    @property
    def errors(self) -> int:
        """How many images could not be predicted."""
        return sum(1 for row in self.rows if row["error"])

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame."""
        pd = require("pandas", "Predictions.to_frame")
        return pd.DataFrame(self.rows, columns=list(self.columns))

    def write(self, out: str | os.PathLike[str], format: str | None = None) -> Path:
        """Write the rows to ``out`` atomically, as ``format`` (``csv``, ``json``,
        ``parquet``; default: ``out``'s suffix, else CSV). Returns the path.

        Raises:
            InvalidArgumentError: an unknown format.
            MissingDependencyError: Parquet without pyarrow.
        """
        path = Path(out).expanduser()
        kind = output_format(path, format)
        if kind == "csv":
            return atomic_write_text(path, self._csv())
        if kind == "json":
            clean = [{k: _json_value(v) for k, v in row.items()} for row in self.rows]
            return atomic_write_text(path, json.dumps(clean, indent=1) + "\n")
        pa = require("pyarrow", "writing predictions as Parquet")
        parquet = require("pyarrow.parquet", "writing predictions as Parquet")
        table = pa.Table.from_pylist(self.rows, schema=self._schema(pa))
        table = table.replace_schema_metadata({"radiologynet": json.dumps(self._metadata())})
        return atomic_write(path, lambda tmp: parquet.write_table(table, tmp))

    def _csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.columns), lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        return buffer.getvalue()

    def _schema(self, pa: Any) -> Any:
        regression = self.loaded.task_kind == "regression"
        types = {
            "path": pa.string(),
            "prediction": pa.float64() if regression else pa.string(),
            "sex": pa.string(),
            "error": pa.string(),
        }
        return pa.schema([(c, types.get(c, pa.float64())) for c in self.columns])

    def _metadata(self) -> dict[str, Any]:
        loaded = self.loaded
        return {
            "model": loaded.arch,
            "weights": loaded.weights_tag,
            "sha256": loaded.sha256,
            "task_kind": loaded.task_kind,
            "class_names": list(loaded.class_names()),
        }


def output_format(path: Path, format: str | None) -> str:
    """``format``, or the one ``path``'s suffix names (CSV for any other suffix).

    Raises:
        InvalidArgumentError: a format not in :data:`FORMATS`.
    """
    kind = (format or path.suffix.lstrip(".") or "csv").lower()
    if format is None and kind not in FORMATS:
        kind = "csv"
    if kind not in FORMATS:
        raise InvalidArgumentError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    return kind


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def predict(
    weights: str | os.PathLike[str] | LoadedModel,
    data: str | os.PathLike[str] | ImageTable,
    *,
    arch: str | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    num_workers: int | None = None,
    window: Window = None,
    sex_column: str | None = None,
    progress: bool | None = None,
) -> Predictions:
    """Predict every image of ``data`` with the model of ``weights``.

    Args:
        weights: a run folder, a weights folder, a zoo name (:func:`load`), or a
            :class:`LoadedModel`.
        data: an image, a folder (recursive; DICOM without suffix found), a DICOMDIR, a
            CSV with a ``path`` column (:func:`image_table`), or an :class:`ImageTable`.
        arch: the architecture, for weights that do not name it.
        batch_size: images per forward pass.
        device: where to compute (default: where the model is; ``load`` puts it on the CPU).
        precision: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 on CUDA).
        num_workers: decoding processes (default: one per spare core, at least one).
        window: ``(center, width)`` or a preset name for DICOM/CT inputs.
        sex_column: for bone age, the CSV column holding the sex (default: ``sex``,
            ``male`` or ``PatientSex``); without one the DICOM header's PatientSex is used.
        progress: a progress bar (``None``: only on a terminal).

    Returns:
        :class:`Predictions`: scores are softmax probabilities (multi-class) or sigmoid
        probabilities (binary: both classes, ``p`` and ``1 - p``; multi-label: each
        class, the prediction joining those at 0.5 or above with ``;``); regression gives
        its value (bone age: months).

    Raises:
        InvalidArgumentError: a segmentation model (use ``radiologynet.models.predict_mask``),
            bad settings.
        RadiologyNetError: weights or data that cannot be loaded (see :func:`load`).
    """
    loaded = weights if isinstance(weights, LoadedModel) else load(weights, arch=arch)
    if loaded.task_kind == "segmentation":
        raise InvalidArgumentError(
            f"{loaded.source} is a segmentation model: predict writes one row per image. "
            "Use radiologynet.models.predict_mask(model, images) for masks."
        )
    table = data if isinstance(data, ImageTable) else image_table(data)
    names = loaded.class_names()
    regression = loaded.task_kind == "regression"
    sex = _sex_values(table, sex_column) if regression else None
    rows: list[dict[str, Any]] = []
    for batch, outputs in run_batches(
        loaded,
        table.paths,
        _forward(loaded),
        batch_size=batch_size,
        device=device,
        precision=precision,
        num_workers=num_workers,
        window=window,
        sex=sex,
        sex_from_header=regression and sex is None,
        progress=progress,
        desc="predict",
    ):
        rows.extend(_rows(batch, outputs, table, loaded.task_kind, names))
    columns = ["path", "prediction"]
    columns += ["sex"] if regression else [f"score_{name}" for name in names]
    return Predictions(tuple([*columns, "error"]), rows, loaded)


def _sex_values(table: ImageTable, column: str | None) -> list[float] | None:
    for name in (column,) if column else SEX_COLUMNS:
        values = table.column(name)
        if values is not None:
            return [parse_sex(v) for v in values]
    if column:
        raise InvalidArgumentError(
            f"--sex-column {column!r}: {table.source} has no such column "
            f"(it has {', '.join(table.columns) or 'only path'})."
        )
    return None


def _forward(loaded: LoadedModel):
    model = loaded.model
    if loaded.task_kind == "regression":
        return lambda images, batch, readable: model(images, batch.sex[readable].to(images.device))
    return lambda images, batch, readable: model(images)


def _rows(
    batch: Batch,
    outputs: torch.Tensor | None,
    table: ImageTable,
    kind: str,
    names: Sequence[str],
) -> list[dict[str, Any]]:
    readable = batch.readable.tolist()
    scores = _scores(outputs, kind) if outputs is not None else None
    rows, k = [], 0
    for index, ok, error in zip(batch.indices, readable, batch.errors, strict=True):
        row: dict[str, Any] = {"path": str(table.paths[index]), "prediction": None}
        if kind == "regression":
            sex = float(batch.sex[len(rows)])
            row["sex"] = {1.0: "M", 0.0: "F"}.get(sex)
            if ok and sex == SEX_UNKNOWN:
                error = (
                    "bone age needs the patient's sex: give a CSV with a 'sex' column (M/F) "
                    "or DICOM files with PatientSex"
                )
            elif ok:
                row["prediction"] = float(scores[k, 0])
        else:
            row.update({f"score_{name}": None for name in names})
            if ok:
                row.update(_class_row(scores[k], kind, names))
        k += int(ok)
        row["error"] = error
        rows.append(row)
    return rows


def _scores(outputs: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "multiclass":
        return torch.softmax(outputs, dim=1)
    if kind == "binary":
        positive = torch.sigmoid(outputs.reshape(-1, 1))
        return torch.cat([1 - positive, positive], dim=1)
    if kind == "multilabel":
        return torch.sigmoid(outputs)
    return outputs.reshape(len(outputs), -1)


def _class_row(scores: torch.Tensor, kind: str, names: Sequence[str]) -> dict[str, Any]:
    values = [float(v) for v in scores]
    row: dict[str, Any] = {f"score_{n}": v for n, v in zip(names, values, strict=True)}
    if kind == "multilabel":
        row["prediction"] = ";".join(
            n for n, v in zip(names, values, strict=True) if v >= THRESHOLD
        )
    else:
        row["prediction"] = names[max(range(len(values)), key=values.__getitem__)]
    return row
