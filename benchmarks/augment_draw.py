"""Cost of the two augmentation draws on one device, per training batch.

Times ``augment_batch`` with ``draw="image"`` (the baseline: one bilinear affine map per
image, brightness then contrast, all batched) and ``draw="batch"`` (paper mode: the
authors' torchvision transforms on the whole batch tensor) for the classification and
bone-age augmentations, interleaved, median of ``--repeats``, in one process, and prints
the batch draw's time as a ratio of the image draw's.

    python benchmarks/augment_draw.py [--batch 32] [--size 224] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from radiologynet.transforms.augment import AUGMENTATIONS, augment_batch


def _time(x: torch.Tensor, aug, generator: torch.Generator) -> float:
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    augment_batch(x, aug, generator)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(batch: int, size: int, repeats: int, device: str) -> dict[str, dict[str, float]]:
    """Median seconds per batch of each draw, per augmentation name."""
    x = torch.rand(batch, 1, size, size, device=device)
    results: dict[str, dict[str, float]] = {}
    for name in ("default", "boneage"):
        augs = {draw: replace(AUGMENTATIONS[name], draw=draw) for draw in ("image", "batch")}
        times: dict[str, list[float]] = {draw: [] for draw in augs}
        generator = torch.Generator().manual_seed(0)
        for aug in augs.values():  # warm-up
            augment_batch(x, aug, generator)
        for _ in range(repeats):
            for draw, aug in augs.items():
                times[draw].append(_time(x, aug, generator))
        results[name] = {draw: statistics.median(t) for draw, t in times.items()}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    results = measure(args.batch, args.size, args.repeats, args.device)
    print(
        f"{args.batch} x 1 x {args.size} x {args.size} on {args.device}, "
        f"median of {args.repeats} interleaved repeats"
    )
    for name, times in results.items():
        ratio = times["batch"] / times["image"]
        print(
            f"{name:8s} image {times['image'] * 1000:8.1f} ms  batch "
            f"{times['batch'] * 1000:8.1f} ms  batch/image {ratio:.2f}x"
        )


if __name__ == "__main__":
    main()
