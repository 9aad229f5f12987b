"""Images per second for three ways to feed a training epoch, measured in one run on the
same CPU and the same generated 512x512 PNG/JPEG files:

1. decode every epoch with PIL + torchvision (per-image letterbox and augmentation);
2. this library from files (``ImageListDataset`` + ``for_weights(train=True)``);
3. this library from its decoded-image cache (uint8 memmap batches through
   ``BatchTransform(train=True)``): item by item through a plain DataLoader, through the
   loader the trainer uses (``batch_loader``: one memmap read per batch, the default
   for any dataset with ``get_batch``), and through ``cache.batch`` directly.

Usage: ``python benchmarks/preprocess.py [--images 128] [--epochs 2] [--size 224]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from PIL import Image as PILImage
from torch.utils.data import DataLoader, Dataset

from radiologynet import Preprocessing, transforms
from radiologynet.torchdata import ImageListDataset, build_cache
from radiologynet.torchdata.samples import batch_loader


def make_images(folder: Path, count: int) -> list[Path]:
    """Write ``count`` 512x512 radiograph-like PNG (8/16-bit) and JPEG files."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512]
    paths = []
    for i in range(count):
        blob = np.exp(
            -((yy - rng.integers(100, 400)) ** 2 + (xx - rng.integers(100, 400)) ** 2)
            / (2 * rng.integers(40, 120) ** 2)
        )
        picture = blob + 0.05 * rng.standard_normal((512, 512))
        picture = (picture - picture.min()) / (picture.max() - picture.min())
        kind = i % 3
        if kind == 0:
            path = folder / f"{i:05d}.png"
            PILImage.fromarray((picture * 255).astype(np.uint8)).save(path)
        elif kind == 1:
            path = folder / f"{i:05d}.jpg"
            PILImage.fromarray((picture * 255).astype(np.uint8)).save(path, quality=90)
        else:
            path = folder / f"{i:05d}.png"
            PILImage.fromarray((picture * 65535).astype(np.uint16)).save(path)
        paths.append(path)
    return paths


class TorchvisionBaseline(Dataset):
    """The textbook way: PIL decode + torchvision letterbox and augmentation per image."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size
        self.augment = T.Compose(
            [
                T.RandomHorizontalFlip(0.5),
                T.RandomRotation(15),
                T.ColorJitter(brightness=(0.8, 1.2), contrast=(0.8, 1.3)),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with PILImage.open(self.paths[index]) as pil:
            array = np.array(pil)
        if array.dtype != np.uint8:
            array = (array.astype(np.float32) / array.max() * 255).astype(np.uint8)
        x = torch.from_numpy(array).unsqueeze(0)
        height, width = x.shape[-2:]
        ratio = self.size / max(height, width)
        new = [int(height * ratio), int(width * ratio)]
        x = TF.resize(x, new, antialias=True)
        left, top = (self.size - new[1]) // 2, (self.size - new[0]) // 2
        x = TF.pad(x, [left, top, self.size - new[1] - left, self.size - new[0] - top])
        x = self.augment(TF.to_dtype(x, torch.float32, scale=True))
        return x.expand(3, -1, -1), 0


def images_per_second(loader, epochs: int, post=None) -> float:
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _targets in loader:
            if post is not None:
                images = post(images)
            count += images.shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    pre = Preprocessing(input_size=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), args.images)
        targets = [i % 2 for i in range(len(paths))]
        baseline = images_per_second(
            DataLoader(TorchvisionBaseline(paths, args.size), batch_size=args.batch), args.epochs
        )
        files = ImageListDataset(
            paths, targets, transforms.for_weights(pre, train=True), validate=False, progress=False
        )
        from_files = images_per_second(DataLoader(files, batch_size=args.batch), args.epochs)
        start = time.perf_counter()
        cache = build_cache(paths, Path(tmp) / "cache", pre, labels=targets, progress=False)
        build_s = time.perf_counter() - start
        cached = ImageListDataset(paths, targets, cache=cache, size=args.size, progress=False)
        batch_transform = transforms.BatchTransform(pre, train=True)
        from_cache = images_per_second(
            DataLoader(cached, batch_size=args.batch, shuffle=True),
            args.epochs,
            post=batch_transform,
        )

        def trainer_batches():
            # what fit() does each epoch: a fresh order, batch_loader, the batch transform
            for _ in range(args.epochs):
                yield from batch_loader(cached, torch.randperm(len(cached)).tolist(), args.batch)

        trainer = images_per_second(trainer_batches(), 1, post=batch_transform)

        def cache_batches():
            for order in torch.randperm(len(cache)).split(args.batch):
                yield cache.batch(np.sort(order.numpy())), None

        direct = images_per_second(
            (b for _ in range(1) for b in cache_batches()), 1, post=batch_transform
        )
    print(
        f"{args.images} images 512x512 (PNG 8/16-bit, JPEG) -> {args.size}x{args.size}, "
        f"batch {args.batch}, train-mode augmentation, {torch.get_num_threads()} threads"
    )
    rows = [
        ("decode every epoch, PIL + torchvision", baseline),
        ("radiologynet from files", from_files),
        ("radiologynet from cache (item DataLoader + BatchTransform)", from_cache),
        ("radiologynet from cache (trainer: batch_loader + BatchTransform)", trainer),
        ("radiologynet from cache (cache.batch + BatchTransform)", direct),
    ]
    for name, rate in rows:
        print(f"  {name:64s} {rate:9.1f} img/s  {rate / baseline:6.1f}x")
    print(f"  cache build (once): {build_s:.2f} s = {args.images / build_s:.1f} img/s")


if __name__ == "__main__":
    main()
