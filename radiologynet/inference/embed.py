"""Embeddings: the pooled pre-logits features of a zoo backbone
(``forward_head(forward_features(x), pre_logits=True)``, timm's) for every image of a
source, under the weights' own preprocessing, written as Parquet (or ``.npy``) with what
made them. ``radiologynet embed`` is this on the command line; ``radiologynet probe``
reads the files."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radiologynet._atomic import atomic_write, atomic_write_stream, atomic_write_text
from radiologynet._optional import require
from radiologynet._version import __version__
from radiologynet.errors import InvalidArgumentError, ResultsFormatError
from radiologynet.inference.loader import run_batches
from radiologynet.inference.loading import LoadedModel, load
from radiologynet.inference.sources import ImageTable, image_table
from radiologynet.io.windowing import Window
from radiologynet.models._weights import is_random_init, looks_like_path

#: Output formats: Parquet (pyarrow), or ``.npy`` with a ``.json`` beside it.
FORMATS = ("parquet", "npy")
#: Stored precisions of the embedding column.
DTYPES = ("float32", "float16")
#: The schema-metadata key (Parquet) / top-level key (``.json``) of what made the file.
METADATA_KEY = "radiologynet"
SPLITS = ("train", "val", "test")


@dataclass
class Embeddings:
    """Embeddings of a set of images, one row per image.

    Attributes:
        paths / labels / splits: per image (a label is a class name, a regression value
            as text, or ``""``; a split ``train``/``val``/``test`` or ``""``).
        vectors: ``(N, D)`` float32.
        metadata: the model, weights tag and sha256, preprocessing, library version.
        unreadable: ``(path, reason)`` of the images left out.
        reused: how many rows came from an earlier run into the same file.
    """

    paths: list[str]
    labels: list[str]
    splits: list[str]
    vectors: np.ndarray
    metadata: dict[str, Any]
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    reused: int = 0

    def __len__(self) -> int:
        return len(self.paths)


def load_embedder(
    model: str | None,
    weights: str | os.PathLike[str] | None = None,
    *,
    input_size: int | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """The backbone to embed with: ``weights`` a tag of ``model`` (``radiologynet``,
    ``imagenet``, ``random``), a full weight name, or a folder/run folder (:func:`load`);
    ``input_size`` overrides the weights' input side.

    Raises:
        InvalidArgumentError: neither a model nor weights naming one, or weights that are
            not a timm backbone (a regressor, a U-Net).
    """
    if weights is not None and not is_random_init(weights) and looks_like_path(weights):
        loaded = load(weights, arch=model, device=device)
    elif model is None:
        raise InvalidArgumentError("--model: name the architecture (e.g. resnet50)")
    elif weights is None or is_random_init(weights):
        loaded = load(model, device=device)
    else:
        name = str(weights) if "." in str(weights) else f"{model}.{weights}"
        loaded = load(name, arch=model, device=device)
    if not callable(getattr(loaded.model, "forward_head", None)):
        raise InvalidArgumentError(
            f"{loaded.source} holds a {loaded.task_kind} model, not a timm backbone; embed "
            "a zoo backbone or a fine-tuned classifier's folder."
        )
    if input_size is not None:
        loaded = replace(loaded, preprocessing=replace(loaded.preprocessing, input_size=input_size))
    return loaded


def pre_logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The pooled pre-logits features of a timm model: ``forward_head(forward_features(x),
    pre_logits=True)``, ``(B, D)``."""
    return torch.flatten(model.forward_head(model.forward_features(images), pre_logits=True), 1)


def task_table(task: str, root: str | os.PathLike[str], *, seed: int = 0) -> ImageTable:
    """The images of a benchmark (or ``folder``) task with their labels and splits, as the
    task's loader splits them (:func:`radiologynet.data.load_task`)."""
    from radiologynet.data import get_task, load_task

    if get_task(task).kind == "segmentation":
        raise InvalidArgumentError(f"--task {task}: a segmentation task has no image labels")
    splits = load_task(task, root, seed=seed)
    paths, labels, parts = [], [], []
    for part in SPLITS:
        for sample in getattr(splits, part):
            paths.append(Path(sample.path))
            target = sample.target
            labels.append(splits.classes[int(target)] if splits.classes else f"{target:g}")
            parts.append(part)
    return ImageTable(paths, {"label": labels, "split": parts}, source=Path(root))


def embed(
    data: str | os.PathLike[str] | ImageTable | None = None,
    *,
    model: str | None = None,
    weights: str | os.PathLike[str] | LoadedModel | None = None,
    task: str | None = None,
    root: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    format: str | None = None,
    dtype: str = "float32",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    num_workers: int | None = None,
    input_size: int | None = None,
    window: Window = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Embeddings:
    """Embed every image of ``data`` (or of ``task`` under ``root``) with a backbone.

    Args:
        data: an image, a folder, a DICOMDIR, or a CSV with ``path`` (and optionally
            ``label`` and ``split``) columns (:func:`image_table`).
        model / weights: the architecture and its weights (a tag such as
            ``radiologynet``, ``imagenet`` or ``random``, a weights or run folder), or a
            :class:`LoadedModel` as ``weights``.
        task / root: instead of ``data``, a task (``btmr``, ``covid19``, ``boneage``,
            ``grazpedwri``, ``folder``) and its dataset folder: labels and splits as the
            task's loader makes them (split ``seed``).
        out: the file to write (``.parquet``, or ``.npy`` + ``.json``); an existing file
            made with the same weights and preprocessing is extended: its images are not
            embedded again.
        format: ``parquet`` or ``npy`` (default: ``out``'s suffix, else Parquet).
        dtype: ``float32`` or ``float16`` storage of the embedding column.
        input_size: another input side than the weights' (same geometry otherwise).
        overwrite: replace an ``out`` made with other weights or preprocessing.
        progress: a progress bar (``None``: only on a terminal).

    Returns:
        :class:`Embeddings` (all rows of ``out`` when it was extended). Unreadable
        images are left out and listed in ``unreadable``.

    Raises:
        InvalidArgumentError: no data or both data and a task, unknown format or dtype,
            an ``out`` made with other weights (without ``overwrite``).
    """
    if (data is None) == (task is None):
        raise InvalidArgumentError("give DATA or --task with --data ROOT (one of the two)")
    if dtype not in DTYPES:
        raise InvalidArgumentError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    kind = _format(out, format)
    if isinstance(weights, LoadedModel):
        loaded = weights
    else:
        loaded = load_embedder(model, weights, input_size=input_size)
    if task is not None:
        table = task_table(task, root if root is not None else ".", seed=seed)
    else:
        table = data if isinstance(data, ImageTable) else image_table(data)
    metadata = _metadata(loaded, dtype)
    earlier = _earlier(out, kind, metadata, overwrite)
    done = set(earlier.paths) if earlier is not None else set()
    todo = [i for i, p in enumerate(table.paths) if str(p) not in done]
    fresh = _compute(
        loaded, table, todo, batch_size, device, precision, num_workers, window, progress
    )
    fresh.metadata = metadata
    result = _merge(earlier, fresh, metadata)
    if out is not None:
        write_embeddings(result, out, kind, dtype)
    return result


def _format(out: str | os.PathLike[str] | None, format: str | None) -> str:
    suffix = Path(out).suffix.lstrip(".").lower() if out is not None else ""
    kind = (format or (suffix if suffix in FORMATS else "parquet")).lower()
    if kind not in FORMATS:
        raise InvalidArgumentError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    if out is not None and Path(out).is_dir():
        raise InvalidArgumentError(f"--out {out}: this is a folder; name the file to write")
    return kind


def _metadata(loaded: LoadedModel, dtype: str) -> dict[str, Any]:
    return {
        "model": loaded.arch,
        "weights": loaded.weights_tag,
        "sha256": loaded.sha256,
        "preprocessing": asdict(loaded.preprocessing),
        "version": __version__,
        "features": "forward_head(forward_features(x), pre_logits=True)",
        "dtype": dtype,
    }


def _same_source(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two files' rows came from the same weights under the same preprocessing."""
    keys = ("model", "weights", "sha256", "preprocessing")
    return all(json.dumps(a.get(k)) == json.dumps(b.get(k)) for k in keys)


def _earlier(
    out: str | os.PathLike[str] | None, kind: str, metadata: dict[str, Any], overwrite: bool
) -> Embeddings | None:
    if out is None or not Path(out).exists() or overwrite:
        return None
    earlier = read_embeddings(out, kind)
    if not _same_source(earlier.metadata, metadata):
        raise InvalidArgumentError(
            f"--out {out} holds embeddings of {earlier.metadata.get('model')} "
            f"{earlier.metadata.get('weights')} (sha256 {str(earlier.metadata.get('sha256'))[:12]}"
            ") or another preprocessing; choose another --out, or pass --overwrite"
        )
    return earlier


def _compute(
    loaded: LoadedModel,
    table: ImageTable,
    todo: list[int],
    batch_size: int,
    device: str | torch.device | None,
    precision: str,
    num_workers: int | None,
    window: Window,
    progress: bool | None,
) -> Embeddings:
    labels = table.column("label") or [""] * len(table)
    splits = table.column("split") or [""] * len(table)
    result = Embeddings([], [], [], np.zeros((0, 0), np.float32), {})
    chunks: list[np.ndarray] = []
    paths = [table.paths[i] for i in todo]
    model = loaded.model
    for batch, outputs in run_batches(
        loaded,
        paths,
        lambda images, batch, readable: pre_logits(model, images),
        batch_size=batch_size,
        device=device,
        precision=precision,
        num_workers=num_workers,
        window=window,
        progress=progress,
        desc="embed",
    ):
        for index, error in zip(batch.indices, batch.errors, strict=True):
            row = todo[index]
            if error:
                result.unreadable.append((str(table.paths[row]), error))
                continue
            result.paths.append(str(table.paths[row]))
            result.labels.append(str(labels[row]))
            result.splits.append(str(splits[row]).strip().lower())
        if outputs is not None:
            chunks.append(outputs.numpy().astype(np.float32, copy=False))
    if chunks:
        result.vectors = np.concatenate(chunks)
    return result


def _merge(earlier: Embeddings | None, fresh: Embeddings, metadata: dict[str, Any]) -> Embeddings:
    if earlier is None or not len(earlier):
        return fresh
    if not len(fresh):
        return replace(earlier, unreadable=fresh.unreadable, reused=len(earlier), metadata=metadata)
    if earlier.vectors.shape[1] != fresh.vectors.shape[1]:
        raise ResultsFormatError(
            f"the earlier file holds {earlier.vectors.shape[1]}-d embeddings, these are "
            f"{fresh.vectors.shape[1]}-d; pass --overwrite"
        )
    return Embeddings(
        earlier.paths + fresh.paths,
        earlier.labels + fresh.labels,
        earlier.splits + fresh.splits,
        np.concatenate([earlier.vectors.astype(np.float32), fresh.vectors]),
        metadata,
        fresh.unreadable,
        reused=len(earlier),
    )


def write_embeddings(
    embeddings: Embeddings,
    out: str | os.PathLike[str],
    format: str = "parquet",
    dtype: str = "float32",
) -> Path:
    """Write ``embeddings`` atomically: Parquet with columns ``path``, ``label``,
    ``split`` and ``embedding`` (a fixed-size list of ``dtype``) and the metadata as JSON
    under the schema-metadata key ``radiologynet``; or ``.npy`` (the ``(N, D)`` matrix)
    with a ``.json`` beside it (the metadata and the other columns). Returns the path."""
    path = Path(out).expanduser()
    vectors = embeddings.vectors.astype(np.float16 if dtype == "float16" else np.float32)
    meta = {
        **embeddings.metadata,
        "dtype": dtype,
        "dim": int(vectors.shape[1]) if vectors.size else 0,
    }
    if format == "npy":
        columns = {"path": embeddings.paths, "label": embeddings.labels, "split": embeddings.splits}
        atomic_write_stream(path, lambda fh: np.save(fh, vectors))
        atomic_write_text(_sidecar(path), json.dumps({METADATA_KEY: meta, **columns}) + "\n")
        return path
    pa = require("pyarrow", "writing embeddings as Parquet")
    parquet = require("pyarrow.parquet", "writing embeddings as Parquet")
    width = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.size else 0
    values = pa.array(
        vectors.reshape(-1), type=pa.float16() if dtype == "float16" else pa.float32()
    )
    table = pa.table(
        {
            "path": pa.array(embeddings.paths, pa.string()),
            "label": pa.array(embeddings.labels, pa.string()),
            "split": pa.array(embeddings.splits, pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(values, width),
        }
    ).replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    return atomic_write(path, lambda tmp: parquet.write_table(table, tmp))


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_embeddings(path: str | os.PathLike[str], format: str | None = None) -> Embeddings:
    """Read a file :func:`write_embeddings` wrote (vectors as float32).

    Raises:
        ResultsFormatError: a file without the ``radiologynet`` metadata or columns.
    """
    path = Path(path).expanduser()
    kind = _format(None, format or (path.suffix.lstrip(".") if path.suffix == ".npy" else None))
    if kind == "npy":
        try:
            side = json.loads(_sidecar(path).read_text(encoding="utf-8"))
            vectors = np.load(path, allow_pickle=False).astype(np.float32)
            return Embeddings(
                side["path"], side["label"], side["split"], vectors, side[METADATA_KEY]
            )
        except (OSError, ValueError, KeyError) as err:
            raise ResultsFormatError(
                f"{path}: not an embeddings .npy with its {_sidecar(path).name} ({err})"
            ) from err
    parquet = require("pyarrow.parquet", "reading embeddings")
    try:
        table = parquet.read_table(path)
        meta = json.loads((table.schema.metadata or {})[METADATA_KEY.encode()])
        column = table.column("embedding").combine_chunks()
        width = column.type.list_size
        flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        return Embeddings(
            table.column("path").to_pylist(),
            table.column("label").to_pylist(),
            table.column("split").to_pylist(),
            flat.reshape(len(table), width),
            meta,
        )
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise ResultsFormatError(
            f"{path}: not an embeddings file written by radiologynet embed ({err})"
        ) from err
