"""A classifier as a MONAI bundle (:func:`write_bundle`): ``LICENSE``,
``configs/metadata.json`` (every key of the MONAI bundle specification,
``network_data_format`` included), ``configs/inference.json`` (the network through
:func:`radiologynet.create_model`, the weight's preprocessing as
:class:`~radiologynet.transforms.monai.RadiologyNetPreprocessd`, a folder of images in, a
CSV of predictions out), ``models/model.pt`` (the state dict), ``models/model.ts`` (the
verified TorchScript) and ``docs/README.md``.

Run it with MONAI's own command (the README's)::

    python -m monai.bundle run --config_file configs/inference.json \\
        --meta_file configs/metadata.json --bundle_root . --dataset_dir IMAGES \\
        --output_file predictions.csv
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radiologynet._atomic import atomic_dir, atomic_write_json, atomic_write_text
from radiologynet._optional import require
from radiologynet._version import __version__
from radiologynet.errors import ExportVerificationError, InvalidArgumentError
from radiologynet.inference.export import (
    ExportResult,
    export_metadata,
    export_module,
    load_exportable,
    loaded_metadata,
)
from radiologynet.inference.loading import LoadedModel
from radiologynet.inference.predict import _class_row, _scores
from radiologynet.paper import PAPER

#: The JSON schema MONAI's ``verify_metadata`` downloads for bundles of this layout.
METADATA_SCHEMA = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
    "meta_schema_20220324.json"
)
CLASSIFIER_KINDS = ("multiclass", "binary", "multilabel")
#: MONAI's command that runs the bundle on a folder (from the bundle's root).
RUN_COMMAND = (
    "python -m monai.bundle run --config_file configs/inference.json "
    "--meta_file configs/metadata.json --bundle_root . --dataset_dir IMAGES "
    "--output_file predictions.csv"
)


def _versions() -> dict[str, str]:
    monai = require("monai", "MONAI bundles")
    import timm

    return {
        "monai_version": str(monai.__version__),
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "timm": timm.__version__,
    }


def bundle_metadata(meta: dict[str, Any], num_outputs: int) -> dict[str, Any]:
    """``configs/metadata.json``: the keys the MONAI bundle specification requires, with
    this library's export metadata (:func:`export_metadata`) under ``radiologynet``."""
    versions = _versions()
    size = meta["input"]["size"]
    chans = meta["channels"]["in_chans"]
    names = meta["label_names"] or [str(i) for i in range(num_outputs)]
    normalised = meta["mean"] is not None
    return {
        "schema": METADATA_SCHEMA,
        "version": "0.1.0",
        "changelog": {"0.1.0": f"exported by radiologynet {__version__}"},
        "monai_version": versions["monai_version"],
        "pytorch_version": versions["pytorch_version"],
        "numpy_version": versions["numpy_version"],
        "optional_packages_version": {"radiologynet": __version__, "timm": versions["timm"]},
        "required_packages_version": {"radiologynet": __version__, "timm": versions["timm"]},
        "name": f"{meta['arch']} {meta['weights']}",
        "task": f"{meta['task_kind']} classification of 2-D radiology images: {', '.join(names)}",
        "description": (
            f"A {meta['arch']} classifier ({meta['weights']}, sha256 {meta['sha256'] or '-'}) "
            "exported by radiologynet with its preprocessing: "
            f"{meta['input']['resize_rule']}; {meta['channels']['rule']}; "
            + ("mean/std normalised." if normalised else "no normalisation.")
        ),
        "authors": "radiologynet contributors (export); the weights' authors (model)",
        "copyright": f"See LICENSE ({meta.get('license') or 'no licence recorded'})",
        "license": meta.get("license") or "unknown",
        "intended_use": "Research. Not a medical device; not for diagnostic use.",
        "data_type": "dicom, png, jpeg (2-D, grey)",
        "references": [PAPER],
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "modality": "CT, MR, CR/DX (any 2-D grey radiograph or slice)",
                    "num_channels": chans,
                    "spatial_shape": list(size),
                    "dtype": "float32",
                    "value_range": [] if normalised else [0, 1],
                    "is_patch_data": False,
                    "channel_def": {str(i): "grey" for i in range(chans)},
                }
            },
            "outputs": {
                "pred": {
                    "type": "probabilities",
                    "format": "classes",
                    "modality": "n/a",
                    "num_channels": num_outputs,
                    "spatial_shape": [1],
                    "dtype": "float32",
                    "value_range": [],
                    "is_patch_data": False,
                    "channel_def": {str(i): name for i, name in enumerate(names[:num_outputs])},
                }
            },
        },
        "radiologynet": meta,
    }


def inference_config(loaded: LoadedModel, names: Sequence[str]) -> dict[str, Any]:
    """``configs/inference.json``: MONAI's config for a folder of images in and a CSV of
    predictions (``path``, ``prediction``, ``score_<class>``) out."""
    network = {
        "_target_": "radiologynet.create_model",
        "name": loaded.arch,
        "num_classes": int(loaded.model.num_classes),
        "in_chans": loaded.in_chans,
    }
    transform = {
        "_target_": "radiologynet.transforms.monai.RadiologyNetPreprocessd",
        "keys": ["image"],
        "weights": loaded.preprocessing.timm_cfg(),
        "in_chans": loaded.in_chans,
    }
    return {
        "imports": [
            "$import torch",
            "$from radiologynet.io import list_image_files",
            f"$from {__name__} import predict_to_csv",
        ],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "dataset_dir": "images",
        "output_file": "predictions.csv",
        "batch_size": 8,
        "label_names": list(names),
        "task_kind": loaded.task_kind,
        "network_def": network,
        "network": "$@network_def.to(@device)",
        "datalist": "$[{'image': str(p)} for p in list_image_files(@dataset_dir)]",
        "preprocessing": {"_target_": "Compose", "transforms": [transform]},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {
            "_target_": "DataLoader",
            "dataset": "@dataset",
            "batch_size": "@batch_size",
            "shuffle": False,
            "num_workers": 0,
        },
        "initialize": [
            "$@network.load_state_dict(torch.load(@bundle_root + '/models/model.pt', "
            "map_location=@device, weights_only=True))",
            "$@network.eval()",
        ],
        "run": [
            "$predict_to_csv(@network, @dataloader, @datalist, @output_file, "
            "@label_names, @task_kind, @device)"
        ],
    }


@torch.no_grad()
def predict_to_csv(
    network: nn.Module,
    batches: Iterable[dict[str, Any]],
    datalist: Sequence[dict[str, Any]],
    output_file: str | os.PathLike[str],
    label_names: Sequence[str],
    task_kind: str,
    device: str | torch.device = "cpu",
) -> Path:
    """The bundle's ``run`` step: the network on every batch, one CSV row per image with
    ``radiologynet predict``'s columns and scores (softmax, or sigmoid for binary and
    multi-label). Returns the CSV's path."""
    network.eval()
    rows: list[dict[str, Any]] = []
    for batch in batches:
        outputs = network(batch["image"].to(device)).float().cpu()
        rows.extend(
            _class_row(scores, task_kind, label_names) for scores in _scores(outputs, task_kind)
        )
    columns = ["path", "prediction", *(f"score_{name}" for name in label_names), "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for item, row in zip(datalist, rows, strict=True):
        writer.writerow({"path": item["image"], **row, "error": ""})
    return atomic_write_text(Path(output_file), buffer.getvalue())


def _licence_text(meta: dict[str, Any], loaded: LoadedModel) -> str:
    record = getattr(loaded.model, "radiologynet_weights", None)
    note = getattr(record, "license_note", "") if record is not None else ""
    name = meta.get("license")
    if not name:
        return (
            "No licence is recorded for these weights. Ask their author before you "
            "redistribute them.\n"
        )
    return f"The weights in this bundle are licensed under: {name}\n" + (
        f"\n{note}\n" if note else ""
    )


def _readme(meta: dict[str, Any], names: Sequence[str]) -> str:
    return f"""# {meta["arch"]} ({meta["weights"]}) as a MONAI bundle

Exported by radiologynet {__version__}. Classes: {", ".join(names)} ({meta["task_kind"]}).
Weights sha256: {meta["sha256"] or "-"}. Licence: see `LICENSE`.

## Run on a folder of images

```bash
pip install "radiologynet[deploy]"
cd THIS_BUNDLE
{RUN_COMMAND}
```

`IMAGES` is searched recursively (DICOM with or without a suffix, PNG, JPEG, BMP, TIFF).
`predictions.csv` has `radiologynet predict`'s columns: `path`, `prediction`, one
`score_<class>` per class, `error`.

## Preprocessing

Each path is read by radiologynet's reader (DICOM windowing: {meta["dicom_windowing"]["rule"]}),
then {meta["input"]["resize_rule"]} to {meta["input"]["size"][0]} px, scaled to [0, 1],
{meta["channels"]["rule"]}, mean {meta["mean"]} / std {meta["std"]}
(`radiologynet.transforms.monai.RadiologyNetPreprocessd`). Images already loaded with
MONAI's `LoadImage(d)` are `(W, H)`; the transform turns them back.

`models/model.pt` is the state dict of `network_def`; `models/model.ts` is the same network
as TorchScript, verified against it.
"""


def write_bundle(
    weights: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    verify_data: str | os.PathLike[str] | Sequence[Any] | None = None,
) -> ExportResult:
    """Write the classifier of ``weights`` (anything :func:`~radiologynet.inference.load`
    takes) as a MONAI bundle folder ``out``, replaced as a whole once complete.

    The TorchScript in ``models/model.ts`` is verified like :func:`export`'s files, and
    MONAI's ``verify_net_in_out`` is run on the bundle before it is put in place.

    Returns:
        An :class:`ExportResult` (``path``: the bundle folder).

    Raises:
        InvalidArgumentError: a model that is not a zoo classifier (U-Nets, bone age).
        ExportVerificationError: the TorchScript or MONAI's check failed.
    """
    bundle = require("monai.bundle", "MONAI bundles")
    loaded = load_exportable(weights, arch=arch, num_classes=num_classes)
    if loaded.task_kind not in CLASSIFIER_KINDS or loaded.arch is None:
        raise InvalidArgumentError(
            f"{loaded.source} is a {loaded.task_kind} model; --format monai-bundle writes "
            "zoo classifiers. Export it with --format onnx|torchscript|pt2."
        )
    names = list(loaded.class_names())
    meta = export_metadata(
        loaded.preprocessing, in_chans=loaded.in_chans, **loaded_metadata(loaded)
    )
    outputs = int(loaded.model.num_classes)
    with atomic_dir(out) as staging:
        result = export_module(
            loaded.model,
            staging / "models" / "model.ts",
            preprocessing=loaded.preprocessing,
            metadata=loaded_metadata(loaded),
            format="torchscript",
            verify_data=verify_data,
            in_chans=loaded.in_chans,
        )
        torch.save(loaded.model.state_dict(), staging / "models" / "model.pt")
        atomic_write_json(staging / "configs" / "metadata.json", bundle_metadata(meta, outputs))
        atomic_write_json(staging / "configs" / "inference.json", inference_config(loaded, names))
        atomic_write_text(staging / "LICENSE", _licence_text(meta, loaded))
        atomic_write_text(staging / "docs" / "README.md", _readme(meta, names))
        _verify_net_in_out(bundle, staging)
    return ExportResult(Path(out), "monai-bundle", meta, result.verification)


def _verify_net_in_out(bundle: Any, root: Path) -> None:
    try:
        bundle.verify_net_in_out(
            net_id="network_def",
            meta_file=str(root / "configs" / "metadata.json"),
            config_file=str(root / "configs" / "inference.json"),
            device="cpu",
        )
    except Exception as err:  # MONAI raises ValueError / KeyError with its reason
        raise ExportVerificationError(
            f"MONAI's verify_net_in_out refused the bundle: {type(err).__name__}: {err}"
        ) from err
