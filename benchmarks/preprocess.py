"""Images per second for three ways to feed a training epoch, measured in one run on the
same CPU and the same generated 512x512 PNG/JPEG files:

1. decode every epoch with PIL + torchvision (per-image letterbox and augmentation);
2. this library from files (``ImageListDataset`` + ``for_weights(train=True)``);
3. this library from its decoded-image cache (uint8 memmap batches through
   ``BatchTransform(train=True)``): item by item through a plain DataLoader, through the
   loader the trainer uses (``batch_loader``: one memmap read per batch, the default
   for any dataset with ``get_batch``), and through ``cache.batch`` directly;
4. the ceiling of every cached path: the train-mode ``BatchTransform`` alone on a batch
   already in memory (bilinear warping is most of it).

Each path runs ``--repeats`` times, interleaved, each time for at least ``--epochs`` epochs
and ``--min-seconds``; the median is reported with its spread.

Usage::

    python benchmarks/preprocess.py [--images 128] [--epochs 2] [--size 224] [--repeats 5]
        [--min-seconds 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from PIL import Image as PILImage
from torch.utils.data import DataLoader, Dataset

from radiologynet import Preprocessing, transforms
from radiologynet.data import ImageListDataset, build_cache
from radiologynet.data.samples import batch_loader


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


def images_per_second(
    one_epoch: Callable[[], Iterable], epochs: int, min_seconds: float, post=None
) -> float:
    """Images per second over whole epochs: at least ``epochs`` of them, and more until
    ``min_seconds`` have passed (a measurement of a tenth of a second says more about the
    machine's neighbours than about the path)."""
    count, done, start = 0, 0, time.perf_counter()
    while done < epochs or time.perf_counter() - start < min_seconds:
        for images, _targets in one_epoch():
            if post is not None:
                images = post(images)
            count += images.shape[0]
        done += 1
    return count / (time.perf_counter() - start)


def measure(paths: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each path's images per second, ``repeats`` times, the paths interleaved so a change
    in the machine's load touches all of them alike."""
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, run in paths.items():
            rates[name].append(run())
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="median of this many")
    parser.add_argument(
        "--min-seconds", type=float, default=1.0, help="each measurement runs at least this long"
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    pre = Preprocessing(input_size=args.size)
    batch_transform = transforms.BatchTransform(pre, train=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), args.images)
        targets = [i % 2 for i in range(len(paths))]
        baseline = TorchvisionBaseline(paths, args.size)
        files = ImageListDataset(
            paths, targets, transforms.for_weights(pre, train=True), validate=False, progress=False
        )
        start = time.perf_counter()
        cache = build_cache(paths, Path(tmp) / "cache", pre, labels=targets, progress=False)
        build_s = time.perf_counter() - start
        cached = ImageListDataset(paths, targets, cache=cache, size=args.size, progress=False)
        resident = cache.batch(np.arange(min(args.batch, len(cache)))).clone()

        def trainer_epoch():
            # what fit() does each epoch: a fresh order, batch_loader, the batch transform
            return batch_loader(cached, torch.randperm(len(cached)).tolist(), args.batch)

        def cache_epoch():
            for order in torch.randperm(len(cache)).split(args.batch):
                yield cache.batch(np.sort(order.numpy())), None

        def resident_epoch():
            # the ceiling of any cached path: the batch transform on a batch already in memory
            return ((resident, None) for _ in range(-(-args.images // args.batch)))

        def rate(one_epoch, post=None):
            return lambda: images_per_second(one_epoch, args.epochs, args.min_seconds, post)

        rates = measure(
            {
                "decode every epoch, PIL + torchvision": rate(
                    lambda: DataLoader(baseline, batch_size=args.batch)
                ),
                "radiologynet from files": rate(lambda: DataLoader(files, batch_size=args.batch)),
                "radiologynet from cache (item DataLoader + BatchTransform)": rate(
                    lambda: DataLoader(cached, batch_size=args.batch, shuffle=True),
                    batch_transform,
                ),
                "radiologynet from cache (trainer: batch_loader + BatchTransform)": rate(
                    trainer_epoch, batch_transform
                ),
                "radiologynet from cache (cache.batch + BatchTransform)": rate(
                    cache_epoch, batch_transform
                ),
                "ceiling: BatchTransform alone on a batch in memory": rate(
                    resident_epoch, batch_transform
                ),
            },
            args.repeats,
        )
    print(
        f"{args.images} images 512x512 (PNG 8/16-bit, JPEG) -> {args.size}x{args.size}, "
        f"batch {args.batch}, train-mode augmentation, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} interleaved repeats, load {os.getloadavg()[0]:.2f}"
    )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    baseline_rate = medians["decode every epoch, PIL + torchvision"]
    ceiling = medians["ceiling: BatchTransform alone on a batch in memory"]
    print(f"  {'':64s} {'img/s':>9s}  {'x decode':>8s}  {'of ceiling':>10s}")
    for name, rate in medians.items():
        spread = (max(rates[name]) - min(rates[name])) / rate
        print(
            f"  {name:64s} {rate:9.1f}  {rate / baseline_rate:7.1f}x  {rate / ceiling:10.2f}"
            f"   (spread {100 * spread:.0f} %)"
        )
    print(f"  cache build (once): {build_s:.2f} s = {args.images / build_s:.1f} img/s")


if __name__ == "__main__":
    main()
