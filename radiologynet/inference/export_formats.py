"""The three exported file formats, each as a writer (eager module in, file out, the
metadata inside) and a runner (file in, a function from a batch to outputs out):

- ``onnx``: :func:`torch.onnx.export` (the TorchScript-based exporter by default,
  ``dynamo=True`` for the torch.export-based one), a dynamic batch axis, the metadata as
  the model's ``metadata_props`` entry ``radiologynet``; run with onnxruntime on CPU;
- ``torchscript``: :func:`torch.jit.trace`, the metadata as the extra file
  ``radiologynet.json``; run with :func:`torch.jit.load`;
- ``pt2``: :func:`torch.export.export` with a dynamic batch dimension, saved with the same
  extra file; run with :func:`torch.export.load`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radiologynet._optional import require
from radiologynet.errors import InvalidArgumentError

FORMATS = ("onnx", "torchscript", "pt2")
#: The ONNX ``metadata_props`` key, and (with ``.json``) the extra file's name.
METADATA_KEY = "radiologynet"
EXTRA_FILE = f"{METADATA_KEY}.json"
DEFAULT_OPSET = 17
#: The dynamo exporter's default (it has no opset 17 implementations).
DYNAMO_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "image", "logits"

Runner = Callable[[torch.Tensor], np.ndarray]


def check_format(format: str) -> str:
    """``format`` if it is one of :data:`FORMATS`.

    Raises:
        InvalidArgumentError: any other name.
    """
    if format not in FORMATS:
        raise InvalidArgumentError(
            f"unknown export format {format!r}; use one of {', '.join(FORMATS)}"
        )
    return format


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1, max=65536)


def write_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    metadata: Mapping[str, Any],
    *,
    opset: int | None = None,
    dynamo: bool = False,
) -> None:
    """Write ``model`` as ONNX to ``path`` with a dynamic batch axis and the metadata
    (``opset`` default: 17, 18 for the dynamo exporter, whose lowest it is)."""
    onnx = require("onnx", "ONNX export")
    opset = opset or (DYNAMO_OPSET if dynamo else DEFAULT_OPSET)
    if opset < DEFAULT_OPSET:
        raise InvalidArgumentError(f"opset must be >= {DEFAULT_OPSET}, got {opset}")
    if dynamo:
        require("onnxscript", "the dynamo ONNX exporter")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: _batch_dim()},),
            optimize=True,
            verbose=False,
        )
        program.save(str(path))
    else:
        with warnings.catch_warnings():  # the TorchScript-based exporter, chosen on purpose
            warnings.filterwarnings("ignore", "You are using the legacy", DeprecationWarning)
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(dict(metadata))})
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def write_torchscript(
    model: nn.Module, example: torch.Tensor, path: Path, metadata: Mapping[str, Any]
) -> None:
    """Write ``model`` traced as TorchScript to ``path``, the metadata as an extra file."""
    with torch.no_grad():
        traced = torch.jit.trace(model, (example,), check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(dict(metadata))})


def write_pt2(
    model: nn.Module, example: torch.Tensor, path: Path, metadata: Mapping[str, Any]
) -> None:
    """Write ``model`` as a ``torch.export`` program (dynamic batch) to ``path``, the
    metadata as an extra file."""
    program = torch.export.export(model, (example,), dynamic_shapes=({0: _batch_dim()},))
    with open(path, "wb") as handle:
        torch.export.save(program, handle, extra_files={EXTRA_FILE: json.dumps(dict(metadata))})


WRITERS: dict[str, Callable[..., None]] = {
    "onnx": write_onnx,
    "torchscript": write_torchscript,
    "pt2": write_pt2,
}


def onnx_runner(path: Path) -> Runner:
    """A function running the ONNX file ``path`` with onnxruntime on CPU."""
    ort = require("onnxruntime", "running an ONNX export")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch.numpy()})[0]


def torchscript_runner(path: Path) -> Runner:
    """A function running the TorchScript file ``path``."""
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return module(batch).numpy()

    return run


def pt2_runner(path: Path) -> Runner:
    """A function running the ``torch.export`` program ``path``."""
    with open(path, "rb") as handle:
        module = torch.export.load(handle).module()

    def run(batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return module(batch).numpy()

    return run


RUNNERS: dict[str, Callable[[Path], Runner]] = {
    "onnx": onnx_runner,
    "torchscript": torchscript_runner,
    "pt2": pt2_runner,
}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``radiologynet`` metadata of an exported file (ONNX, TorchScript or pt2, told
    apart by content), as a dict.

    Raises:
        InvalidArgumentError: the file carries no such metadata (not exported by this
            library) or is none of the three formats.
    """
    path = Path(path)
    text = _metadata_text(path)
    if not text:
        raise InvalidArgumentError(
            f"{path} carries no {METADATA_KEY!r} metadata; export it with radiologynet export"
        )
    return json.loads(text)


def _metadata_text(path: Path) -> str | None:
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                parts = name.split("/")
                if parts[-1] == EXTRA_FILE and parts[-2] in ("extra", "extras"):
                    return archive.read(name).decode("utf-8")
        return None
    onnx = require("onnx", "reading ONNX metadata")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise InvalidArgumentError(
            f"{path} is neither ONNX, TorchScript nor a torch.export program ({err})"
        ) from err
    return next((p.value for p in proto.metadata_props if p.key == METADATA_KEY), None)
