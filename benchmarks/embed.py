"""Throughput of ``radiologynet embed`` against the bare model's pre-logits forward pass
(``forward_head(forward_features(x), pre_logits=True)``) at the same batch size, measured
in the same run (issue 20). The method and options are ``benchmarks/predict.py``'s.
Target: ratio >= 0.8.

    python benchmarks/embed.py [--arch resnet18] [--images 256] [--batch-size 32]
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _predict_benchmark():
    path = Path(__file__).with_name("predict.py")
    spec = importlib.util.spec_from_file_location("benchmark_predict", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> dict[str, float]:
    return _predict_benchmark().main(argv, mode="embed")


if __name__ == "__main__":
    main()
