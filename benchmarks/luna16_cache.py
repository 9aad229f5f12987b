"""Epoch data cost of LUNA16 with and without the per-series cache.

Writes a synthetic LUNA16 (``--series`` CT volumes of ``--depth`` x ``--side`` x ``--side``
voxels, two nodules each), then times, in one process: building the training crops and
validation slices from the volumes (decode + masks + cache write, the first epoch) and
building them again from the ``.npz`` cache (every later epoch). Prints the ratio.

    python benchmarks/luna16_cache.py [--series 8] [--side 256] [--depth 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from radiologynet.data.benchmarks.luna16 import LUNA16
from radiologynet.demo.synthetic_luna16 import make_synthetic_luna16


def _load(root: Path, cache: Path) -> tuple[float, int]:
    start = time.perf_counter()
    data = LUNA16(root, cache_dir=cache, progress=False, val_every=4)
    count = len(data.crops("train")) + len(data.slices("val"))
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=8)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--depth", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "luna16", Path(tmp) / "cache"
        make_synthetic_luna16(root, args.series, shape_zyx=(args.depth, args.side, args.side))
        cold, count = _load(root, cache)
        warm, _ = _load(root, cache)
        size = sum(p.stat().st_size for p in root.rglob("*.raw")) / 2**20
        cached = sum(p.stat().st_size for p in cache.glob("*.npz")) / 2**20
    print(
        f"{args.series} series, {size:.0f} MiB of volumes -> {cached:.1f} MiB cache, "
        f"{count} samples"
    )
    print(f"from volumes: {cold:.2f} s   from cache: {warm:.3f} s   ratio {cold / warm:.1f}x")


if __name__ == "__main__":
    main()
