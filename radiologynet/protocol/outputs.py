"""What a run leaves besides its training log: the per-image predictions of its best
weights (``val_predictions.csv``, ``test_predictions.csv``) with the clinical metrics
computed from them, and the weights folder ``model/`` with a card that says what was
fine-tuned from what, on which data, and how it scored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from radiologynet.data.splits import Splits
from radiologynet.models._folder import CONFIG_NAME, WEIGHTS_NAME, sha256_file
from radiologynet.models._weights import Preprocessing, WeightRecord, resolve_weights_arg
from radiologynet.protocol.spec import TaskData
from radiologynet.train.config import TrainConfig, resolve_device
from radiologynet.train.loop import predict_outputs
from radiologynet.train.predictions import (
    clinical_metrics,
    predictions_csv_text,
    read_predictions,
    write_predictions,
)
from radiologynet.train.runs import PREDICTIONS_NAMES

#: The task kinds whose runs write per-image predictions.
PREDICTED_KINDS = ("multiclass", "binary", "regression")


def write_run_predictions(
    model: torch.nn.Module,
    data: TaskData,
    folder: Path,
    kind: str,
    config: TrainConfig,
    result: dict[str, Any],
) -> list[Path]:
    """Score the validation and test images with ``model`` (the best weights) into the
    run folder's predictions files, and add the clinical metrics of the test file
    (:func:`radiologynet.train.predictions.clinical_metrics`) to ``result["test"]``.
    Datasets without sample paths (``.samples``) and task kinds other than
    :data:`PREDICTED_KINDS` are skipped. Returns the files written."""
    if kind not in PREDICTED_KINDS:
        return []
    splits = data.extra.get("splits")
    splits = splits if isinstance(splits, Splits) else None
    written = []
    for name, dataset in (("val", data.val), ("test", data.test)):
        samples = getattr(dataset, "samples", None)
        if dataset is None or not samples:
            continue
        outputs, targets = predict_outputs(
            model,
            dataset,
            batch_size=config.eval_batch_size or 64,
            device=resolve_device(config.device),
            batch_transform=data.batch_transform,
            num_workers=config.num_workers,
            precision=config.precision,
            desc=f"{name} predictions",
            progress=config.progress,
        )
        paths = [splits.relative_path(s.path) if splits else s.path for s in samples]
        text = predictions_csv_text(
            paths, targets.tolist(), outputs.numpy(), kind, data.class_names
        )
        written.append(write_predictions(folder / PREDICTIONS_NAMES[name], text))
        if name == "test":
            result["test"] = {**result["test"], **clinical_metrics(read_predictions(written[-1]))}
    return written


def _parent_licence(record: WeightRecord | None, path: Path | None) -> tuple[str, str]:
    """The licence (and its note) of the weights a run started from."""
    if record is not None:
        return record.license, record.license_note
    if path is None:
        return "other", (
            "Trained from random initialisation: the terms are those of your training data."
        )
    config_file = (path if path.is_dir() else path.parent) / CONFIG_NAME
    config: Mapping[str, Any] = {}
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text())
        except (OSError, ValueError):
            config = {}
    meta = dict(config.get("radiologynet") or {})
    licence = meta.get("license") or dict(config.get("pretrained_cfg") or {}).get("license")
    note = meta.get("license_note") or (
        "" if licence else "The starting weights recorded no licence: check their terms."
    )
    return str(licence or "other"), str(note)


def _parent_sha256(arch: str | None, weights: str | None, path: Path | None) -> str | None:
    """The sha256 of the starting weights' file (the zoo's resolved copy, or the path's)."""
    if path is not None:
        file = path / WEIGHTS_NAME if path.is_dir() else path
        return sha256_file(file) if file.is_file() else None
    if arch is None or weights is None:
        return None
    from radiologynet.models._hub import resolve

    resolved = resolve(arch, weights)
    if resolved is None:
        return None
    return (resolved.record.sha256 if resolved.record else None) or sha256_file(resolved.file)


def fine_tuned_record(
    *,
    run: str,
    task: str,
    arch: str | None,
    weights: str | None,
    data: TaskData,
    result: Mapping[str, Any],
) -> dict[str, Any]:
    """What the card of a fine-tuned weights folder states (``config.json``'s
    ``radiologynet.fine_tuned``): the run, the parent weights (name, sha256, licence), the
    task, class names and image counts per split, the configuration and the metrics."""
    target = resolve_weights_arg(arch, weights) if arch is not None else None
    record = target if isinstance(target, WeightRecord) else None
    path = target if isinstance(target, Path) else None
    licence, note = _parent_licence(record, path)
    splits = data.extra.get("splits")
    splits = splits if isinstance(splits, Splits) else None
    counts = (
        {name: dict(counter) for name, counter in splits.counts().items()}
        if splits is not None
        else {}
    )
    sizes = {
        name: len(dataset)
        for name, dataset in (("train", data.train), ("val", data.val), ("test", data.test))
        if dataset is not None
    }
    scalar = {
        k: v for k, v in dict(result.get("test") or {}).items() if not isinstance(v, (list, dict))
    }
    return {
        "run": run,
        "parent": {
            "weights": record.full_name
            if record is not None
            else (str(path) if path else "random"),
            "sha256": _parent_sha256(arch, weights, path),
            "license": licence,
            "license_note": note,
        },
        "task": task,
        "kind": result.get("config", {}).get("kind"),
        "class_names": list(data.class_names),
        "images": sizes,
        "counts": counts,
        "config": {
            k: result.get("config", {}).get(k)
            for k in (
                "lr",
                "batch_size",
                "max_epochs",
                "patience",
                "optimizer",
                "input_size",
                "in_chans",
                "head",
                "seed",
                "split_seed",
            )
        },
        # the data's name only: a card is shared, the machine's paths stay home
        "data": Path(str(result.get("config", {}).get("data") or "data")).name,
        "best_epoch": result.get("best_epoch"),
        "epochs_run": result.get("epochs_run"),
        "val": dict(result.get("val") or {}),
        "test": scalar,
    }


def write_model_folder(
    model: torch.nn.Module,
    folder: Path,
    arch: str | None,
    kind: str,
    data: TaskData,
    preprocessing: Preprocessing,
    input_size: int,
    *,
    zoo_model: bool,
    model_name: str | None = None,
    fine_tuned: Mapping[str, Any] | None = None,
) -> None:
    """The run's best weights as a weights folder: a timm folder for zoo classifiers, the
    vanilla U-Net format, or a whole task model (``model_type: "task"``); the card states
    ``fine_tuned`` (:func:`fine_tuned_record`) and the parent's licence."""
    pretrained = replace(preprocessing, input_size=input_size).timm_cfg()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {}
    if fine_tuned is not None:
        parent = fine_tuned["parent"]
        meta = {
            "fine_tuned": dict(fine_tuned),
            "license": parent["license"],
            "license_note": parent["license_note"],
        }
    if zoo_model and arch is not None and kind in ("multiclass", "binary"):
        from radiologynet.models._folder import write_weights_folder

        write_weights_folder(
            state,
            folder,
            arch=arch,
            num_classes=data.num_classes if kind == "multiclass" else 1,
            label_names=data.class_names,  # binary: both, negative first
            task_kind=kind,
            extra_config={
                "pretrained_cfg": {**pretrained, **({"license": meta["license"]} if meta else {})},
                "radiologynet": meta,
            },
        )
        return
    if getattr(model, "decoder", None) == "vanilla":  # segmentation.UNet around a VanillaUNet
        # the vanilla U-Net folder format: a later `unet` run (or create_unet) takes it
        from radiologynet.models._vanilla_unet import save_vanilla_unet

        save_vanilla_unet(
            model.net,
            folder,
            metadata={"task": kind, "model": model_name, "pretrained_cfg": pretrained, **meta},
        )
        return
    # whole task models (bone-age regressor, encoder U-Nets): model_type "task"
    from radiologynet.models._card import render_task_card
    from radiologynet.models._folder import task_config, write_folder

    config = task_config(
        type(model).__name__,
        kind=kind,
        pretrained_cfg=pretrained,
        encoder=arch,
        decoder=getattr(model, "decoder", None),
        model=model_name,
        label_names=data.class_names if kind != "regression" else (),
    )
    if meta:
        config["radiologynet"] = meta
    write_folder(folder, state, config, render_task_card)
