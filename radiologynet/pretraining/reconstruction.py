"""The paper's reconstruction pretraining of the vanilla U-Net: input -> the same image.

Images (PNG, JPEG, TIFF, DICOM) are decoded as they are read
(:class:`~radiologynet.data.ImageListDataset`: 8-bit grayscale letterboxed to
:attr:`ReconstructionConfig.input_size`; with its ``cache_dir`` once, into a memory-mapped
cache on disk), scaled to [0, 1] on the device, and the U-Net (``num_classes = in_chans``)
learns to reproduce them
with a mean squared error on ``sigmoid(logits)``. The loop is
:func:`radiologynet.train.fit`: resumable after a kill, early stopping, ``precision``,
data-parallel under ``torchrun``. Every image trains (there is no held-out set); the
validation pass scores the same images in eval mode, so early stopping and the best epoch
kept follow the reconstruction loss. The result is a weights folder that
:func:`radiologynet.create_unet` (``encoder=None``) loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from radiologynet.data import ImageListDataset
from radiologynet.errors import ArchiveError, InvalidArgumentError
from radiologynet.io import IMAGE_SUFFIXES, list_image_files
from radiologynet.models._vanilla_unet import VanillaUNet, save_vanilla_unet
from radiologynet.models._weights import Preprocessing
from radiologynet.pretraining.pretrain import recipe_config, refuse_finished_weights
from radiologynet.train import FitResult, TrainConfig, fit
from radiologynet.train import distributed as ddp
from radiologynet.train.config import check_data_settings
from radiologynet.train.metrics import MetricCollection
from radiologynet.transforms import BatchTransform

#: The reconstruction recipe's training settings (:func:`reconstruction_config`).
RECONSTRUCTION_RECIPE = {
    "lr": 1e-3,
    "max_epochs": 10,
    "batch_size": 32,
    "optimizer": "adamw",
    "weight_decay": 1e-3,
    "precision": "fp32",
}


@dataclass(frozen=True)
class ReconstructionConfig:
    """What :func:`pretrain_reconstruction` trains on, beside its training settings
    (:func:`reconstruction_config`); a resume refuses a checkpoint written with another
    ``input_size`` or ``in_chans``.

    Attributes:
        input_size: the image side (the recipe's 224; a multiple of the U-Net's stride, 4).
        in_chans: the network's input (and output) channels.
        cache_dir: a folder for a memory-mapped cache of the decoded images (``None``:
            decode every read).
    """

    input_size: int = 224
    in_chans: int = 3
    cache_dir: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        check_data_settings(self.input_size, self.in_chans)


@dataclass
class ReconstructionResult:
    """What :func:`pretrain_reconstruction` wrote and how training went."""

    out_dir: Path
    n_images: int
    fit: FitResult


def find_images(data: str | Path) -> list[Path]:
    """The image files under ``data`` (recursive, sorted).

    Raises:
        ArchiveError: no image file there.
    """
    root = Path(data).expanduser()
    files = list_image_files(root) if root.is_dir() else []
    if not files:
        raise ArchiveError(
            f"No images ({', '.join(IMAGE_SUFFIXES)}) under {root}: pass the "
            "folder of radiographs or DICOM slices to pretrain on."
        )
    return files


def reconstruction_config(**settings: Any) -> TrainConfig:
    """The :class:`~radiologynet.train.TrainConfig` of the reconstruction recipe (AdamW,
    lr 1e-3, weight decay 1e-3, 10 epochs, batch 32, fp32; the images' size and channels
    are :class:`ReconstructionConfig`'s), with ``settings`` (``TrainConfig`` fields;
    ``None`` keeps the recipe's value) over it. Raises ``TypeError`` for a keyword that
    is not a field."""
    return recipe_config(RECONSTRUCTION_RECIPE, settings)


class SigmoidMSELoss(nn.Module):
    """The reconstruction objective: mean squared error between ``sigmoid(logits)`` and
    the image in [0, 1]."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(torch.sigmoid(logits), target)


class ReconstructionBatch:
    """The trainer's batch hook for reconstruction: the ``uint8`` images scaled to [0, 1]
    and repeated to ``in_chans`` channels (:class:`~radiologynet.transforms.BatchTransform`
    without augmentation) are both the input and the target."""

    def __init__(self, size: int, in_chans: int) -> None:
        self.transform = BatchTransform(
            Preprocessing(input_size=size), in_chans=in_chans, augment=None
        )

    def __call__(
        self, inputs: Any, target: Any, *, train: bool, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.transform(inputs)  # no augmentation: train and generator unused
        return images, images


def pretrain_reconstruction(
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    reconstruction: ReconstructionConfig | None = None,
) -> ReconstructionResult:
    """Train a vanilla U-Net to reconstruct the images under ``data``; write it to
    ``out_dir``.

    Args:
        data: a folder of images (any depth).
        out_dir: the weights folder to write (also holds ``log.jsonl`` and, while
            training, the resume state; re-running the same call resumes from it).
        config: the training settings; default :func:`reconstruction_config`. Its task
            fields are set here.
        reconstruction: the images' size and channels, which shape the network, and the
            decoded-image cache (default :class:`ReconstructionConfig`).

    Returns:
        the folder (``config.json``, ``model.safetensors``, ``README.md``; ``config.json``
        records the reconstruction loss per epoch) and the training summary.

    Raises:
        ArchiveError: no image under ``data``, or ``out_dir`` holds finished weights and
            ``config.resume`` is set.
        InvalidArgumentError: an ``input_size`` the U-Net cannot take.
    """
    config = config if config is not None else reconstruction_config()
    reconstruction = reconstruction if reconstruction is not None else ReconstructionConfig()
    size, in_chans = reconstruction.input_size, reconstruction.in_chans
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = VanillaUNet(in_chans=in_chans, num_classes=in_chans)
    if size % model.stride:
        raise InvalidArgumentError(
            f"input_size {size}: the vanilla U-Net takes sides that are multiples of "
            f"{model.stride} (e.g. {size - size % model.stride or model.stride})."
        )
    config = replace(config, kind="reconstruction", num_classes=in_chans)
    out = Path(out_dir)
    refuse_finished_weights(out, config.resume)
    ddp.init_from_env()
    files = find_images(data)
    images = ImageListDataset(
        files, size=size, cache=reconstruction.cache_dir, validate=False, progress=config.progress
    )
    out.mkdir(parents=True, exist_ok=True)
    result = fit(
        model,
        images,
        images,
        config=config,
        loss=SigmoidMSELoss(),
        metrics=MetricCollection({}),  # the validation loss is the score
        batch_transform=ReconstructionBatch(size, in_chans),
        out_dir=out,
        recorded={"input_size": size, "in_chans": in_chans},
    )
    if ddp.is_main():
        metadata = _metadata(data, len(images), config, size, result)
        save_vanilla_unet(model, out, metadata=metadata)
    ddp.barrier()
    return ReconstructionResult(out, len(images), result)


def _metadata(
    data: str | os.PathLike[str],
    n_images: int,
    config: TrainConfig,
    size: int,
    result: FitResult,
) -> dict[str, Any]:
    """The ``radiologynet`` block of the weights folder's ``config.json``."""
    return {
        "task": "reconstruction",
        "data": str(data),
        "images": n_images,
        "loss": "mse(sigmoid(logits), image)",
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "status": result.status,
        "lr": config.lr,
        "size": size,
        "loss_per_epoch": [record["train_loss"] for record in result.history],
        "val_loss_per_epoch": [record["val_loss"] for record in result.history],
        "train_config": config.to_dict(),
    }
