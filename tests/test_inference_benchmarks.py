"""benchmarks/predict.py and benchmarks/embed.py run and report the ratio they claim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = [
    "--arch", "mobilenet_v3_small", "--images", "6", "--batch-size", "3",
    "--input-size", "32", "--image-side", "40", "--repeats", "1", "--workers", "1",
    "--threads", "1",
]  # fmt: skip


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["predict", "embed"])
def test_inference_benchmark_reports_throughput_and_ratio(name, capsys):
    result = _load(name).main(TINY)
    printed = capsys.readouterr().out
    assert printed.startswith(f"{name}: mobilenet_v3_small at 32 px, batch 3, 6 PNGs")
    assert result["ratio"] == pytest.approx(result["run"] / result["bare"])
    assert f"ratio {result['ratio']:.2f}" in printed and "the target >= 0.8" in printed
