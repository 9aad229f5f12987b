"""Export a model to ONNX, TorchScript or a ``torch.export`` program, with its
preprocessing inside the file and its outputs verified against PyTorch on real images.

:func:`export_module` is the core (an ``nn.Module``, the weight's
:class:`~radiologynet.Preprocessing` and a metadata dict in, a verified file out);
:func:`export` resolves anything :func:`radiologynet.inference.load` takes and builds the
model with timm's ``exportable=True``. The metadata travels with the file
(:func:`export_metadata`; read it back with :func:`read_metadata`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.layers import set_layer_config
from torch import nn

from radiologynet._atomic import atomic_path
from radiologynet._version import __version__
from radiologynet.errors import ExportError, ExportVerificationError, InvalidArgumentError
from radiologynet.inference.export_formats import (
    DEFAULT_OPSET,
    INPUT_NAME,
    OUTPUT_NAME,
    RUNNERS,
    WRITERS,
    check_format,
)
from radiologynet.inference.loading import LoadedModel, load
from radiologynet.io import WINDOW_PRESETS, list_image_files
from radiologynet.models._folder import read_config
from radiologynet.models._preprocessing import Preprocessing, channel_mean_std
from radiologynet.transforms import BatchTransform, decode_uint8, model_in_chans

__all__ = [
    "ATOL",
    "RTOL",
    "ExportResult",
    "Verification",
    "export_metadata",
    "export",
    "export_module",
    "load_exportable",
    "loaded_metadata",
    "verification_batch",
    "with_preprocessing",
]

#: The tolerance an export is verified at (fp32), as ``numpy.allclose`` applies it.
RTOL = 1e-3
ATOL = 1e-5
INPUT_DTYPES = ("float32", "uint8")

#: How DICOM and other wide-range images become the 8-bit grey images every weight takes
#: (:func:`radiologynet.io.to_radiologynet_uint8`), for a deployment outside this library.
DICOM_WINDOWING_RULE = (
    "an explicit window (center, width) or preset if one is given; else the file's VOI LUT "
    "or first WindowCenter/WindowWidth (after RescaleSlope/Intercept); else 8-bit images as "
    "they are and wider ones min-max scaled to 0..255; MONOCHROME1 inverted; colour to grey "
    "with the ITU-R 601 weights; then divided by 255"
)


@dataclass(frozen=True)
class Verification:
    """How an exported file's outputs compared with PyTorch eager on the same batch.

    Attributes:
        images: the batch size compared.
        max_abs / max_rel: the largest absolute and relative difference.
        agreement: the share of predictions that agree (argmax over classes; the sign
            of the logit for one output channel), per image or per pixel.
        passed: every value within ``atol + rtol * |eager|``.
        rtol / atol: the tolerance used.
    """

    images: int
    max_abs: float
    max_rel: float
    agreement: float
    passed: bool
    rtol: float = RTOL
    atol: float = ATOL

    def summary(self) -> str:
        """One line: the differences and the agreement."""
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"verified on {self.images} images: max abs diff {self.max_abs:.3g}, max rel diff "
            f"{self.max_rel:.3g}, argmax agreement {self.agreement:.1%} "
            f"(rtol {self.rtol:g}, atol {self.atol:g}): {verdict}"
        )


@dataclass(frozen=True)
class ExportResult:
    """An exported file, its format, the metadata inside it and its verification."""

    path: Path
    format: str
    metadata: dict[str, Any] = field(repr=False)
    verification: Verification


def export_metadata(
    preprocessing: Preprocessing,
    *,
    in_chans: int = 3,
    label_names: Sequence[str] = (),
    task_kind: str | None = None,
    arch: str | None = None,
    weights_tag: str | None = None,
    sha256: str | None = None,
    license: str | None = None,
    preprocessing_in_graph: bool = False,
    input_dtype: str = "float32",
) -> dict[str, Any]:
    """The JSON an exported file carries (ONNX ``metadata_props["radiologynet"]``, the
    TorchScript / pt2 extra file ``radiologynet.json``): everything a deployment needs to
    feed the file the tensor the weights expect and to name its outputs.

    Keys: ``input`` (name, shape, dtype, value range, size, the letterbox or crop rule,
    interpolation, and whether normalisation is inside the graph), ``mean`` / ``std``
    (per model channel, ``None`` for none), ``channels`` (the channel rule),
    ``dicom_windowing`` (the rule and the named presets), ``label_names``, ``task_kind``,
    ``arch``, ``weights`` (tag), ``sha256``, ``license``, ``preprocessing`` (the weight's
    :class:`~radiologynet.Preprocessing` fields) and ``radiologynet_version``.
    """
    size = int(preprocessing.input_size)
    stats = channel_mean_std(preprocessing.mean, preprocessing.std, in_chans)
    graph_chans = 1 if preprocessing_in_graph else in_chans
    unit = input_dtype == "uint8" and preprocessing_in_graph
    geometry = (
        "letterbox: the longest side resized to input_size (aspect kept), centred zero "
        "padding, the odd pixel bottom/right"
        if preprocessing.letterbox
        else "resize the shorter side to floor(input_size / crop_pct), centre crop input_size"
    )
    return {
        "format_version": 1,
        "radiologynet_version": __version__,
        "arch": arch,
        "weights": weights_tag,
        "sha256": sha256,
        "license": license,
        "task_kind": task_kind,
        "label_names": list(label_names),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", graph_chans, size, size],
            "dtype": "uint8" if unit else "float32",
            "range": [0, 255] if unit else [0.0, 1.0],
            "size": [size, size],
            "resize": "letterbox" if preprocessing.letterbox else "resize_center_crop",
            "resize_rule": geometry,
            "interpolation": preprocessing.interpolation,
            "crop_pct": preprocessing.crop_pct,
            "preprocessing_in_graph": preprocessing_in_graph,
        },
        "output": {"name": OUTPUT_NAME, "kind": task_kind},
        "mean": list(stats[0]) if stats is not None else None,
        "std": list(stats[1]) if stats is not None else None,
        "channels": {
            "in_chans": in_chans,
            "rule": f"one grey channel repeated to {in_chans}"
            + (" (inside the graph)" if preprocessing_in_graph else ""),
        },
        "dicom_windowing": {
            "rule": DICOM_WINDOWING_RULE,
            "presets": {name: list(value) for name, value in WINDOW_PRESETS.items()},
        },
        "preprocessing": asdict(preprocessing),
    }


def with_preprocessing(
    model: nn.Module, preprocessing: Preprocessing, in_chans: int | None = None
) -> nn.Module:
    """``model`` behind the weight's own batch transform (:class:`BatchTransform`,
    evaluation mode, no resizing): a ``(B, 1, S, S)`` grey batch, uint8 or float in
    [0, 1], in; the logits out. Channel expansion and mean/std are in the graph."""
    chans = model_in_chans(model) if in_chans is None else in_chans
    transform = BatchTransform(
        preprocessing, train=False, in_chans=chans, augment=None, resize=False
    )
    return nn.Sequential(transform, model).eval()


def _paths(verify_data: str | os.PathLike[str] | Sequence[Any]) -> list[Path]:
    if isinstance(verify_data, (str, os.PathLike)):
        root = Path(verify_data)
        if root.is_dir():
            paths = list_image_files(root)
            if not paths:
                raise InvalidArgumentError(f"--verify-data {root} holds no image files")
            return paths
        return [root]
    return [Path(p) for p in verify_data]


def verification_batch(
    preprocessing: Preprocessing,
    verify_data: str | os.PathLike[str] | Sequence[Any] | None = None,
    *,
    in_chans: int = 3,
    preprocessing_in_graph: bool = False,
    input_dtype: str = "float32",
    limit: int = 16,
) -> torch.Tensor:
    """Real images, decoded and preprocessed as the exported file takes them: the
    shipped samples (:func:`radiologynet.data.sample_image_paths`) or ``verify_data`` (a
    folder, searched recursively, a file, or a list of files; at most ``limit`` used).

    Returns ``(B, in_chans, S, S)`` float (normalised), or with ``preprocessing_in_graph``
    the ``(B, 1, S, S)`` grey batch (uint8, or float in [0, 1]).
    """
    if verify_data is None:
        from radiologynet.data.sample_images import sample_image_paths

        paths = sample_image_paths()
    else:
        paths = _paths(verify_data)
    grey = torch.stack([decode_uint8(path, preprocessing) for path in paths[:limit]])
    if preprocessing_in_graph:
        return grey if input_dtype == "uint8" else grey.float() / 255.0
    transform = BatchTransform(preprocessing, train=False, in_chans=in_chans, augment=None)
    return transform(grey)


def compare(
    exported: np.ndarray, eager: np.ndarray, rtol: float = RTOL, atol: float = ATOL
) -> Verification:
    """A :class:`Verification` of ``exported`` against ``eager`` (same shape)."""
    if exported.shape != eager.shape:
        raise ExportVerificationError(
            f"the exported model gives outputs of shape {exported.shape}, PyTorch {eager.shape}"
        )
    exported, eager = exported.astype(np.float64), eager.astype(np.float64)
    diff = np.abs(exported - eager)
    finite = bool(np.isfinite(exported).all())
    rel = diff / np.maximum(np.abs(eager), np.finfo(np.float32).tiny)
    if eager.ndim >= 2 and eager.shape[1] > 1:
        agree = exported.argmax(axis=1) == eager.argmax(axis=1)
    else:
        agree = (exported > 0) == (eager > 0)
    return Verification(
        images=int(eager.shape[0]),
        max_abs=float(diff.max()) if finite else float("inf"),
        max_rel=float(rel.max()) if finite else float("inf"),
        agreement=float(agree.mean()),
        passed=finite and bool((diff <= atol + rtol * np.abs(eager)).all()),
        rtol=rtol,
        atol=atol,
    )


def _example(batch: torch.Tensor) -> torch.Tensor:
    """A batch of two that is not the verification data: what the file is traced on, so
    a graph that froze its example's values cannot pass the check."""
    generator = torch.Generator().manual_seed(0)
    shape = (2, *batch.shape[1:])
    if batch.dtype == torch.uint8:
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    low, high = float(batch.min()), float(batch.max())
    return torch.rand(shape, generator=generator) * (high - low) + low


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _write_verified(
    network: nn.Module,
    out: Path,
    format: str,
    meta: Mapping[str, Any],
    batch: torch.Tensor,
    options: Mapping[str, Any],
    *,
    tolerance: tuple[float, float],
) -> Verification:
    """Write ``network`` to a temp file beside ``out``, run it on ``batch``, compare with
    eager and rename it to ``out`` only when it agrees."""
    size = int(batch.shape[-1])
    try:
        with torch.no_grad():
            eager = network(batch).numpy()
    except Exception as err:  # a model with more inputs (bone age takes the sex), a bad size
        raise ExportError(
            f"{out}: the model does not run on one image batch {tuple(batch.shape)} "
            f"({_first_line(err)}); export takes models with one image input"
        ) from err
    with atomic_path(out) as tmp:
        try:
            WRITERS[format](network, _example(batch), tmp, meta, **options)
        except Exception as err:  # the exporters raise their own types (and RuntimeError)
            what = meta.get("arch") or type(network).__name__
            raise ExportError(
                f"{out}: {what} cannot be exported to {format} at {size} px: {_first_line(err)}"
            ) from err
        try:
            outputs = RUNNERS[format](tmp)(batch)
        except Exception as err:  # onnxruntime's Fail, a TorchScript RuntimeError, ...
            raise ExportVerificationError(
                f"{out}: the exported {format} model fails on the {len(batch)} verification "
                f"images ({_first_line(err)}); nothing was written."
            ) from err
        verification = compare(outputs, eager, *tolerance)
        if not verification.passed:
            raise ExportVerificationError(
                f"{out}: the exported {format} model does not reproduce PyTorch: "
                f"{verification.summary()}; nothing was written. Try the other ONNX exporter "
                "(--dynamo or not), or report the model and this line."
            )
    return verification


def _check_options(input_dtype: str, opset: int | None, in_graph: bool) -> None:
    if input_dtype not in INPUT_DTYPES:
        raise InvalidArgumentError(
            f"input_dtype must be one of {INPUT_DTYPES}, got {input_dtype!r}"
        )
    if opset is not None and opset < DEFAULT_OPSET:
        raise InvalidArgumentError(f"opset must be >= {DEFAULT_OPSET}, got {opset}")
    if input_dtype == "uint8" and not in_graph:
        raise InvalidArgumentError("a uint8 input needs the preprocessing in the graph")


def export_module(
    model: nn.Module,
    out: str | os.PathLike[str],
    *,
    preprocessing: Preprocessing,
    metadata: Mapping[str, Any] | None = None,
    format: str = "onnx",
    verify_data: str | os.PathLike[str] | Sequence[Any] | None = None,
    preprocessing_in_graph: bool = False,
    input_dtype: str = "float32",
    in_chans: int | None = None,
    opset: int | None = None,
    dynamo: bool = False,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> ExportResult:
    """Export ``model`` to ``out`` and verify it; the core of :func:`export`.

    The file is written beside ``out`` under a temporary name, run (onnxruntime, loaded
    TorchScript, loaded ``torch.export`` program) on real preprocessed images
    (:func:`verification_batch`), compared with ``model`` in fp32 at ``rtol``/``atol``
    and only then renamed to ``out``.

    Args:
        model: the network (put in eval mode on the CPU).
        preprocessing: the weight's :class:`~radiologynet.Preprocessing`.
        metadata: what :func:`export_metadata` takes besides the preprocessing
            (``label_names``, ``task_kind``, ``arch``, ``weights_tag``, ``sha256``,
            ``license``).
        format: ``"onnx"``, ``"torchscript"`` or ``"pt2"``.
        verify_data: images to verify on (folder, file or files); default the shipped
            samples.
        preprocessing_in_graph: put channel expansion and mean/std in the graph
            (:func:`with_preprocessing`): the input is a ``(B, 1, S, S)`` grey batch.
        input_dtype: with ``preprocessing_in_graph``, ``"float32"`` ([0, 1]) or ``"uint8"``.
        in_chans: the model's input channels (default: its first convolution's).
        opset / dynamo: ONNX opset (>= 17; default 17, 18 with dynamo) and exporter
            (``dynamo=False``: the TorchScript-based one).

    Returns:
        An :class:`ExportResult`.

    Raises:
        ExportError: the exporter failed (its reason in the message).
        ExportVerificationError: the outputs differ (the message gives the differences;
            nothing is written).
        InvalidArgumentError: a bad format, input dtype, opset or verification folder.
    """
    check_format(format)
    _check_options(input_dtype, opset, preprocessing_in_graph)
    model = model.eval().to("cpu")
    in_chans = model_in_chans(model) if in_chans is None else int(in_chans)
    network = (
        with_preprocessing(model, preprocessing, in_chans) if preprocessing_in_graph else model
    )
    meta = export_metadata(
        preprocessing,
        in_chans=in_chans,
        preprocessing_in_graph=preprocessing_in_graph,
        input_dtype=input_dtype,
        **dict(metadata or {}),
    )
    batch = verification_batch(
        preprocessing,
        verify_data,
        in_chans=in_chans,
        preprocessing_in_graph=preprocessing_in_graph,
        input_dtype=input_dtype,
    )
    options = {"opset": opset, "dynamo": dynamo} if format == "onnx" else {}
    verification = _write_verified(
        network, Path(out), format, meta, batch, options, tolerance=(rtol, atol)
    )
    return ExportResult(Path(out), format, meta, verification)


def _licence(loaded: LoadedModel) -> str | None:
    """The licence of the loaded weights: the zoo record's, else the folder's
    ``config.json`` ``radiologynet.license``."""
    record = getattr(loaded.model, "radiologynet_weights", None)
    if record is not None and getattr(record, "license", None):
        return str(record.license)
    source = Path(loaded.source) if isinstance(loaded.source, (str, Path)) else None
    folder = source if source is not None and source.is_dir() else None
    config = read_config(folder) if folder is not None else None
    meta = (config or {}).get("radiologynet")
    return str(meta["license"]) if isinstance(meta, dict) and meta.get("license") else None


def loaded_metadata(loaded: LoadedModel) -> dict[str, Any]:
    """What :func:`export_metadata` records of a :class:`LoadedModel` besides its
    preprocessing (labels, task kind, architecture, weights tag, sha256, licence)."""
    return {
        "label_names": list(loaded.class_names()),
        "task_kind": loaded.task_kind,
        "arch": loaded.arch,
        "weights_tag": loaded.weights_tag,
        "sha256": loaded.sha256,
        "license": _licence(loaded),
    }


def load_exportable(
    weights: str | os.PathLike[str], *, arch: str | None = None, num_classes: int | None = None
) -> LoadedModel:
    """:func:`radiologynet.inference.load` with the network built with timm's
    ``exportable=True`` (no memory-efficient custom autograd activations, which neither
    ONNX nor torch.export can trace)."""
    with set_layer_config(exportable=True):
        return load(weights, arch=arch, num_classes=num_classes)


def export(
    weights: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: str = "onnx",
    arch: str | None = None,
    num_classes: int | None = None,
    verify_data: str | os.PathLike[str] | Sequence[Any] | None = None,
    preprocessing_in_graph: bool = False,
    input_dtype: str = "float32",
    opset: int | None = None,
    dynamo: bool = False,
) -> ExportResult:
    """Export any weights :func:`radiologynet.inference.load` takes (a run folder, a
    weights folder, a zoo name with ``num_classes``) to ``out`` as ONNX, TorchScript or a
    ``torch.export`` program, verified on real images and carrying its preprocessing,
    class names, task kind, weights tag, sha256 and licence (:func:`export_metadata`).

    The other arguments are :func:`export_module`'s.

    Returns:
        An :class:`ExportResult`.

    Raises:
        ExportError / ExportVerificationError: the export failed or differs from PyTorch.
        RadiologyNetError: weights that cannot be loaded (see :func:`load`).
    """
    check_format(format)
    loaded = load_exportable(weights, arch=arch, num_classes=num_classes)
    return export_module(
        loaded.model,
        out,
        preprocessing=loaded.preprocessing,
        metadata=loaded_metadata(loaded),
        format=format,
        verify_data=verify_data,
        preprocessing_in_graph=preprocessing_in_graph,
        input_dtype=input_dtype,
        in_chans=loaded.in_chans,
        opset=opset,
        dynamo=dynamo,
    )
