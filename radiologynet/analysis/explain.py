"""Grad-CAM heatmaps for zoo classifiers, through the ``grad-cam`` package.

The layer Grad-CAM hooks comes from the registry (:attr:`Architecture.gradcam_layer`), so
the user never picks it. Images go through the model's own preprocessing
(:func:`radiologynet.transforms.for_model`), and the overlays are drawn on that
preprocessed (letterboxed, [0, 1]) input. :func:`comparison_sheet` puts the same images
under several initialisations side by side, as the paper showed them to radiologists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from radiologynet._optional import require
from radiologynet.errors import ImageReadError, RadiologyNetError, WeightsNotFoundError
from radiologynet.models._registry import Architecture, get_architecture

ImageSource = str | Path


@dataclass(frozen=True)
class CamResult:
    """The Grad-CAM of one image.

    Attributes:
        source: the image file (or ``"image<k>"`` for arrays).
        image: the preprocessed input as shown, ``(S, S)`` floats in [0, 1].
        heatmap: the class activation map, ``(S, S)`` floats in [0, 1].
        target: the class index explained (the predicted one unless given).
        score: the model's probability of ``target`` (sigmoid for one-logit models).
    """

    source: str
    image: np.ndarray
    heatmap: np.ndarray
    target: int
    score: float

    def peak(self) -> tuple[int, int]:
        """``(row, column)`` of the heatmap's maximum."""
        row, col = np.unravel_index(int(np.argmax(self.heatmap)), self.heatmap.shape)
        return int(row), int(col)

    def overlay(self, image_weight: float = 0.5) -> np.ndarray:
        """The heatmap over the image as an RGB ``uint8`` array (``(S, S, 3)``)."""
        show_cam_on_image = require("pytorch_grad_cam.utils.image", "Grad-CAM").show_cam_on_image

        rgb = np.repeat(self.image[..., None], 3, axis=-1).astype(np.float32)
        return show_cam_on_image(
            rgb, self.heatmap.astype(np.float32), use_rgb=True, image_weight=image_weight
        )


def model_architecture(model: nn.Module) -> Architecture:
    """The registry architecture of a zoo model (``model.radiologynet_arch``, else its
    ``pretrained_cfg['architecture']``).

    Raises:
        RadiologyNetError: the model is not one of the registry's architectures.
    """
    arch = getattr(model, "radiologynet_arch", None)
    if isinstance(arch, Architecture):
        return arch
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    name = cfg.get("architecture")
    if not name:
        raise RadiologyNetError(
            f"Cannot tell which registry architecture this {type(model).__name__} is; build "
            "it with radiologynet.create_model so Grad-CAM knows its target layer."
        )
    return get_architecture(str(name))


def target_layer(model: nn.Module) -> nn.Module:
    """The module Grad-CAM hooks for ``model`` (the registry's ``gradcam_layer``)."""
    arch = model_architecture(model)
    try:
        return model.get_submodule(arch.gradcam_layer)
    except AttributeError as err:
        raise RadiologyNetError(
            f"{arch.name}: the registry's Grad-CAM layer {arch.gradcam_layer!r} is not in "
            "this model; was it built with features_only or a custom head?"
        ) from err


def load_model(path: str | Path) -> tuple[nn.Module, str]:
    """A fine-tuned model from a run folder (``result.json`` + ``model/``) or a weights
    folder (``config.json`` + ``model.safetensors``), in eval mode.

    Returns:
        The model and a label for it (the run's initialisation, or the weight's tag).

    Raises:
        WeightsNotFoundError: neither a run folder nor a weights folder.
    """
    from radiologynet.models import create_model
    from radiologynet.models._folder import model_type, read_config

    folder = Path(path)
    label = folder.name
    if (folder / "result.json").is_file():
        result = json.loads((folder / "result.json").read_text())
        label = str(result.get("init") or label)
        folder = folder / "model"
    config = read_config(folder)
    if config is None:
        raise WeightsNotFoundError(
            f"{str(path)!r} is neither a run folder (result.json and model/) nor a weights "
            "folder (config.json and model.safetensors). Pass a folder the runner wrote."
        )
    if model_type(config, folder) != "timm":
        what = config.get("task_model") or model_type(config)
        raise RadiologyNetError(
            f"{str(path)!r} holds a {what} ({config.get('kind', 'task')} "
            "model); Grad-CAM here explains classifiers only."
        )
    meta = config.get("radiologynet") or {}
    arch = str(meta.get("arch") or config.get("architecture") or "")
    if label == Path(path).name and meta.get("tag"):
        label = str(meta["tag"])
    model = create_model(arch, weights=folder)
    return model.eval(), label


def _transform(model: nn.Module, input_size: int | None):
    from radiologynet.transforms import ImageTransform, for_model

    transform = for_model(model, augment=None)
    if input_size is None or input_size == transform.size:
        return transform
    return ImageTransform(
        replace(transform.preprocessing, input_size=int(input_size)),
        in_chans=transform.in_chans,
        augment=None,
        window=transform.window,
    )


def list_images(images: str | Path | Sequence[str | Path]) -> list[Path]:
    """Image files: a folder's pictures and DICOM files (not recursive, sorted,
    :func:`radiologynet.io.list_image_files`), or the files given.

    Raises:
        ImageReadError: a path that does not exist, or a folder without images.
    """
    from radiologynet.io import IMAGE_SUFFIXES, list_image_files

    if isinstance(images, (str, Path)):
        folder = Path(images)
        if folder.is_dir():
            found = list_image_files(folder, recursive=False)
            if not found:
                raise ImageReadError(
                    f"No images in {str(folder)!r} (looked for "
                    f"{', '.join(sorted(IMAGE_SUFFIXES))} and suffix-less DICOM files)."
                )
            return found
        images = [folder]
    paths = [Path(p) for p in images]
    for p in paths:
        if not p.is_file():
            raise ImageReadError(f"Image {str(p)!r} does not exist.")
    return paths


def compute_cams(
    model: nn.Module,
    images: Sequence[str | Path | np.ndarray],
    *,
    targets: Sequence[int] | None = None,
    input_size: int | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> list[CamResult]:
    """Grad-CAM of ``model`` (a zoo classifier) for each image.

    Args:
        images: files (DICOM, PNG, JPEG...) or arrays, preprocessed with the model's own
            transform.
        targets: the class to explain per image (default: the predicted class).
        input_size: override the model's input size (e.g. small inputs in tests).
        device: where to run (default: the model's device).
        progress: show a progress bar when there is more than one batch.

    Returns:
        One :class:`CamResult` per image, in order.
    """
    GradCAM = require("pytorch_grad_cam", "Grad-CAM").GradCAM
    ClassifierOutputTarget = require(
        "pytorch_grad_cam.utils.model_targets", "Grad-CAM"
    ).ClassifierOutputTarget

    if targets is not None and len(targets) != len(images):
        raise RadiologyNetError(
            f"targets has {len(targets)} entries for {len(images)} "
            "images; give one class index per image."
        )
    transform = _transform(model, input_size)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.eval().to(device)
    results: list[CamResult] = []
    with GradCAM(model=model, target_layers=[target_layer(model)]) as cam:
        starts = range(0, len(images), batch_size)
        for start in tqdm(
            starts,
            desc="Grad-CAM",
            unit="batch",
            leave=False,
            disable=not progress or len(starts) < 2,
        ):
            chunk = images[start : start + batch_size]
            shown = [transform.to_uint8(img) for img in chunk]
            batch = torch.stack([transform.from_uint8(u) for u in shown]).to(device)
            with torch.no_grad():
                logits = model(batch)
            chosen = (
                [int(t) for t in targets[start : start + batch_size]]
                if targets
                else _predicted(logits)
            )
            maps = cam(input_tensor=batch, targets=[ClassifierOutputTarget(c) for c in chosen])
            scores = _scores(logits, chosen)
            for k, img in enumerate(chunk):
                source = str(img) if isinstance(img, (str, Path)) else f"image{start + k}"
                results.append(
                    CamResult(
                        source=source,
                        image=shown[k][0].float().numpy() / 255.0,
                        heatmap=np.asarray(maps[k], dtype=np.float32),
                        target=chosen[k],
                        score=scores[k],
                    )
                )
    return results


def _predicted(logits: torch.Tensor) -> list[int]:
    if logits.shape[-1] == 1:  # one logit: explain the positive class
        return [0] * logits.shape[0]
    return logits.argmax(dim=-1).tolist()


def _scores(logits: torch.Tensor, chosen: Sequence[int]) -> list[float]:
    if logits.shape[-1] == 1:
        probs = torch.sigmoid(logits)
    else:
        probs = torch.softmax(logits, dim=-1)
    return [float(probs[k, c]) for k, c in enumerate(chosen)]


def _write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    from radiologynet._atomic import atomic_write_stream

    atomic_write_stream(path, lambda f: Image.fromarray(array).save(f, format="PNG"))
    return path


def _names(model: nn.Module) -> list[str]:
    """One name per output: ``pretrained_cfg["label_names"]``; a binary model (one logit)
    records both of its classes, negative first, and its output is the positive one."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    names = list(cfg.get("label_names") or [])
    if getattr(model, "num_classes", None) == 1 and len(names) == 2:
        return names[1:]
    return names


def save_cams(
    results: Sequence[CamResult],
    out_dir: str | Path,
    *,
    label: str = "",
    class_names: Sequence[str] = (),
) -> Path:
    """Write each result's overlay and heatmap as PNG, and ``index.json`` describing them
    (source image, files, explained class, score, heatmap peak); returns the index path."""
    from radiologynet._atomic import atomic_write_json

    out = Path(out_dir)
    entries = []
    for k, result in enumerate(results):
        stem = f"{k:03d}-{Path(result.source).stem}"
        overlay = _write_png(out / f"{stem}-gradcam.png", result.overlay())
        heat = _write_png(
            out / f"{stem}-heatmap.png", np.round(result.heatmap * 255).astype(np.uint8)
        )
        entries.append(
            {
                "source": result.source,
                "overlay": overlay.name,
                "heatmap": heat.name,
                "target": result.target,
                "target_name": class_names[result.target]
                if result.target < len(class_names)
                else str(result.target),
                "score": result.score,
                "peak_row_col": list(result.peak()),
                "input_size": int(result.image.shape[0]),
            }
        )
    return atomic_write_json(
        out / "index.json", {"model": label, "method": "GradCAM (grad-cam)", "images": entries}
    )


def explain_images(
    model: nn.Module,
    images: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    label: str = "",
    input_size: int | None = None,
    targets: Sequence[int] | None = None,
) -> Path:
    """Grad-CAM of ``model`` for every image (a folder or a list of files), written to
    ``out_dir`` as overlays, heatmaps and ``index.json``; returns the index path."""
    paths = list_images(images)
    results = compute_cams(model, paths, targets=targets, input_size=input_size)
    return save_cams(results, out_dir, label=label, class_names=_names(model))


def comparison_sheet(
    models: Mapping[str, nn.Module],
    images: str | Path | Sequence[str | Path],
    out_path: str | Path,
    *,
    input_size: int | None = None,
    targets: Sequence[int] | None = None,
    dpi: int = 120,
) -> Path:
    """The same images under several models (e.g. the three initialisations) side by side:
    one row per image, the preprocessed input then one Grad-CAM overlay per model. Writes
    ``out_path`` (PNG) and ``<out_path>.json`` (which model and class each panel shows);
    returns the PNG path."""
    Figure = require("matplotlib.figure", "Grad-CAM figures").Figure

    from radiologynet._atomic import atomic_write_json
    from radiologynet.analysis.report.figures import save_figure

    if not models:
        raise RadiologyNetError("comparison_sheet needs at least one model.")
    paths = list_images(images)
    cams = {
        label: compute_cams(model, paths, targets=targets, input_size=input_size)
        for label, model in models.items()
    }
    columns = 1 + len(cams)
    figure = Figure(figsize=(2.4 * columns, 2.4 * len(paths) + 0.4), layout="constrained")
    axes = figure.subplots(len(paths), columns, squeeze=False)
    index = []
    for row, path in enumerate(paths):
        first = next(iter(cams.values()))[row]
        axes[row][0].imshow(first.image, cmap="gray", vmin=0, vmax=1)
        axes[row][0].set_title(path.name, fontsize=8)
        panels = []
        for col, (label, results) in enumerate(cams.items(), start=1):
            result = results[row]
            axes[row][col].imshow(result.overlay())
            title = f"{label}\nclass {result.target}, p={result.score:.2f}"
            axes[row][col].set_title(title, fontsize=8)
            panels.append(
                {
                    "model": label,
                    "target": result.target,
                    "score": result.score,
                    "peak_row_col": list(result.peak()),
                }
            )
        index.append({"source": str(path), "panels": panels})
    for ax in axes.flat:
        ax.set_axis_off()
    out = Path(out_path)
    stem = out.with_suffix("")
    written = save_figure(figure, stem, formats=("png",), dpi=dpi)[0]
    atomic_write_json(
        stem.with_suffix(".json"),
        {"method": "GradCAM (grad-cam)", "models": list(cams), "images": index},
    )
    return written
