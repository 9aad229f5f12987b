"""How long ``radiologynet probe`` takes on a realistic feature table.

Writes three feature files in ``radiologynet embed``'s parquet format (10,000 images x
2,048 features, 5 classes, no split column: the probe makes a stratified one) for three
"initialisations" that separate the classes well, weakly and not at all, then runs the
whole probe on them as ``radiologynet probe`` does (all three methods: logreg with its C
sweep, k-NN, the few-shot curve of 5 sizes x 10 draws; 1,000 bootstrap resamples; the
comparisons, figure and summary).

Target: under 2 minutes on 2 CPU cores. The baseline, measured in the same run on the same
data, is one scikit-learn ``LogisticRegression()`` fit (default C, L-BFGS) on one
initialisation's standardised training split, with the probe's thread setting: the ratio
says how many such fits the whole probe costs, which stays meaningful on a busy or a
faster machine.

Usage::

    python benchmarks/probe.py [--images 10000] [--dim 2048] [--json result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_S = 120.0
#: How far apart the class means are per initialisation (in noise standard deviations).
SEPARATIONS = {"radiologynet": 0.08, "imagenet": 0.05, "random": 0.0}


def write_feature_file(path: Path, x: np.ndarray, labels: list[str], name: str) -> None:
    """One feature file exactly as ``radiologynet embed`` writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    table = pa.table(
        {
            "path": [f"images/{i:06d}.png" for i in range(len(x))],
            "label": labels,
            "split": pa.nulls(len(x), pa.string()),
            "embedding": column,
        }
    )
    meta = {
        "model": "resnet50",
        "weights": f"resnet50.{name}",
        "weights_sha256": "",
        "preprocessing": {},
        "version": "benchmark",
    }
    pq.write_table(table.replace_schema_metadata({"radiologynet": json.dumps(meta)}), path)


def make_features(folder: Path, images: int, dim: int, classes: int) -> list[Path]:
    """The three feature files (seeded); returns their paths."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, images)
    labels = [f"class{v}" for v in y]
    directions = rng.normal(0, 1, (classes, dim))
    files = []
    for name, separation in SEPARATIONS.items():
        x = rng.normal(0, 1, (images, dim)).astype(np.float32)
        x += (separation * directions[y]).astype(np.float32)
        files.append(folder / f"{name}.parquet")
        write_feature_file(files[-1], x, labels, name)
    return files


def baseline_fit(path: Path) -> float:
    """Seconds of one LogisticRegression() fit on the file's standardised 60 % split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from radiologynet.analysis.probe import read_features
    from radiologynet.analysis.probe.methods import DEFAULT_THREADS, limit_threads

    features = read_features(path)
    train = int(0.6 * len(features))
    x = StandardScaler().fit_transform(features.embeddings[:train])
    with limit_threads(DEFAULT_THREADS):  # as the probe's own fits
        start = time.perf_counter()
        LogisticRegression(max_iter=1000).fit(x, features.labels[:train])
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    from radiologynet.analysis.probe import probe

    with tempfile.TemporaryDirectory() as tmp:
        files = make_features(Path(tmp), args.images, args.dim, args.classes)
        baseline = baseline_fit(files[0])
        start = time.perf_counter()
        cpu_start = time.process_time()
        result = probe(files, Path(tmp) / "out", progress=False)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    print(result.summary)
    print()
    summary = {
        "images": args.images,
        "dim": args.dim,
        "initialisations": len(files),
        "methods": ["logreg", "knn", "fewshot"],
        "probe_s": round(wall, 4),
        "probe_cpu_s": round(cpu, 2),
        "baseline_fit_s": round(baseline, 6),
        "ratio_to_one_fit": round(wall / baseline, 1),
        "target_s": TARGET_S,
        "met": wall <= TARGET_S,
        "cpus": os.cpu_count(),
        "load_1min_after": os.getloadavg()[0],
    }
    print(
        f"probe of {args.images} x {args.dim} features, 3 initialisations, logreg + knn + "
        f"fewshot: {wall:.1f} s wall, {cpu:.1f} s CPU (target <= {TARGET_S:.0f} s on 2 cores); "
        f"one LogisticRegression fit: {baseline:.2f} s -> the probe costs "
        f"{wall / baseline:.0f} such fits. Load average after: {summary['load_1min_after']:.1f} "
        "(well above the core count means a busy machine and inflated times)."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
