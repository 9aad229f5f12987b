"""Throughput of ``radiologynet predict`` against the bare model's forward pass at the same
batch size, measured in the same run (issue 19; ``benchmarks/embed.py`` does the same for
``radiologynet embed``, issue 20).

The baseline is ``model(x)`` on a ready tensor of the batch size: no files, no decoding.
The measured run reads the images from disk (PNG files of ``--image-side`` pixels, as a
radiograph export), decodes and letterboxes them in DataLoader workers, normalises and
predicts (or embeds), writing nothing. Runs are interleaved (baseline, measured, ...) so a
busy machine slows both alike; the best of ``--repeats`` is kept. Torch computes with
``--threads`` threads (default 2: the 2-core target). Target: ratio >= 0.8.

    python benchmarks/predict.py [--arch resnet18] [--images 256] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radiologynet.inference import load  # noqa: E402
from radiologynet.inference.embed import embed, pre_logits  # noqa: E402
from radiologynet.inference.predict import predict  # noqa: E402

TARGET = 0.8


def write_images(folder: Path, count: int, side: int) -> None:
    """``count`` grayscale PNGs of ``side`` x ``side`` pixels (random texture)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(side, side), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png", compress_level=1)


def bare_forward(
    model: torch.nn.Module, count: int, batch_size: int, size: int, mode: str
) -> float:
    """Seconds for ``count`` images through the model alone, ``batch_size`` at a time."""
    x = torch.rand(batch_size, 3, size, size)
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, count, batch_size):
            chunk = x[: min(batch_size, count - first)]
            model(chunk) if mode == "predict" else pre_logits(model, chunk)
    return time.perf_counter() - start


def end_to_end(loaded, folder: Path, batch_size: int, workers: int | None, mode: str) -> float:
    """Seconds for the whole command's work on the image folder (nothing written)."""
    start = time.perf_counter()
    if mode == "predict":
        result = predict(loaded, folder, batch_size=batch_size, num_workers=workers, progress=False)
        assert result.errors == 0
    else:
        result = embed(
            folder, weights=loaded, batch_size=batch_size, num_workers=workers, progress=False
        )
        assert not result.unreadable
    return time.perf_counter() - start


def main(argv: list[str] | None = None, mode: str = "predict") -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--image-side", type=int, default=512, help="side of the PNG files")
    parser.add_argument("--threads", type=int, default=2, help="torch compute threads")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = load(args.arch, num_classes=3)
    loaded = replace(
        loaded, preprocessing=replace(loaded.preprocessing, input_size=args.input_size)
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        write_images(folder, args.images, args.image_side)
        bare_forward(loaded.model, args.batch_size, args.batch_size, args.input_size, mode)  # warm
        best_bare = best_run = float("inf")
        for _ in range(args.repeats):
            best_bare = min(
                best_bare,
                bare_forward(loaded.model, args.images, args.batch_size, args.input_size, mode),
            )
            best_run = min(
                best_run, end_to_end(loaded, folder, args.batch_size, args.workers, mode)
            )
    bare_rate, run_rate = args.images / best_bare, args.images / best_run
    ratio = run_rate / bare_rate
    print(
        f"{mode}: {args.arch} at {args.input_size} px, batch {args.batch_size}, "
        f"{args.images} PNGs of {args.image_side} px, {args.threads} torch threads, "
        f"{os.cpu_count()} CPUs, best of {args.repeats} interleaved"
    )
    print(f"  bare model forward   {bare_rate:8.1f} img/s")
    print(f"  radiologynet {mode:7s} {run_rate:8.1f} img/s (decoding included)")
    verdict = "meets" if ratio >= TARGET else "misses"
    print(f"ratio {ratio:.2f} {verdict} the target >= {TARGET}")
    return {"bare": bare_rate, "run": run_rate, "ratio": ratio}


if __name__ == "__main__":
    main()
