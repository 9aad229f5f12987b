"""The paper's reconstruction pretraining of the vanilla U-Net: input -> the same image.

Images (PNG, JPEG, TIFF, DICOM) are read as 8-bit grayscale, letterboxed to ``size`` and
scaled to [0, 1]; the U-Net (``num_classes = in_chans``) learns to reproduce them with a
mean squared error on ``sigmoid(logits)``. The result is a weights folder that
:func:`radiologynet.create_unet` (``encoder=None``) loads.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from radiologynet.errors import ArchiveError, InvalidArgumentError
from radiologynet.io import IMAGE_SUFFIXES, list_image_files
from radiologynet.models._vanilla_unet import VanillaUNet, save_vanilla_unet
from radiologynet.models._weights import Preprocessing
from radiologynet.train.config import check_lr, resolve_device


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


def load_images(files: list[Path], size: int, progress: bool = True) -> torch.Tensor:
    """Decode ``files`` once into a ``uint8`` tensor ``(N, 1, size, size)``
    (:func:`radiologynet.transforms.decode_uint8`, bilinear letterbox)."""
    from radiologynet.transforms import decode_uint8

    preprocessing = Preprocessing(input_size=size)
    arrays = [
        decode_uint8(f, preprocessing)
        for f in tqdm(files, desc="decode", disable=not progress, leave=False)
    ]
    return torch.stack(arrays)


def pretrain_reconstruction(
    data: str | Path,
    out: str | Path,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    size: int = 224,
    in_chans: int = 3,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Train a vanilla U-Net to reconstruct the images under ``data``; write it to ``out``.

    Returns:
        the weights folder (``config.json``, ``model.safetensors``, ``README.md``); its
        ``config.json`` records the final reconstruction loss per epoch.
    """
    if epochs < 1 or batch_size < 1 or size < 4:
        raise InvalidArgumentError(
            f"epochs={epochs}, batch_size={batch_size}, size={size}: epochs and "
            "batch size must be >= 1, size >= 4."
        )
    check_lr(lr)
    target_device = resolve_device(device)  # checked before any image is decoded
    images = load_images(find_images(data), size, progress)
    torch.manual_seed(seed)
    model = VanillaUNet(in_chans=in_chans, num_classes=in_chans).to(target_device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    model.train()
    for _ in tqdm(range(epochs), desc="reconstruction", disable=not progress):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = images[order[start : start + batch_size]].to(target_device).float() / 255
            batch = batch.expand(-1, in_chans, -1, -1)
            loss = F.mse_loss(torch.sigmoid(model(batch)), batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        history.append(total / len(images))
    meta = {
        "task": "reconstruction",
        "data": str(data),
        "images": len(images),
        "epochs": epochs,
        "lr": lr,
        "size": size,
        "loss_per_epoch": history,
    }
    return save_vanilla_unet(model.cpu(), out, metadata=meta)
