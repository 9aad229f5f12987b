"""onnxruntime CPU throughput of an exported model against PyTorch eager, same batch size.

For each architecture (random weights, the zoo input size): ``radiologynet export``'s
core writes a verified ONNX file (TorchScript-based exporter, opset 17), then the same
batch goes through onnxruntime (CPU provider) and through the eager ``nn.Module``
(``torch.inference_mode``), interleaved, median of ``--repeats`` timed runs after a warm-up.
Both use ``--threads`` threads. The ratio is onnxruntime images/s over eager images/s
(> 1: onnxruntime is faster). The machine may be shared: compare ratios, not seconds.

    python benchmarks/export.py [--arch resnet50 efficientnet_b4 mobilenet_v3_large]
        [--batch-size 8] [--repeats 5] [--threads 2] [--input-size N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from timm.layers import set_layer_config

import radiologynet
from radiologynet.inference.export import export_module, verification_batch
from radiologynet.inference.export_formats import RUNNERS
from radiologynet.models._registry import ARCHITECTURES

DEFAULT_ARCHS = ("resnet50", "efficientnet_b4", "mobilenet_v3_large")


def _timed(fn, batch) -> float:
    start = time.perf_counter()
    fn(batch)
    return time.perf_counter() - start


def measure(name: str, batch_size: int, repeats: int, size: int | None, folder: Path) -> tuple:
    """(eager images/s, onnxruntime images/s, the export's max abs difference)."""
    arch = ARCHITECTURES[name]
    pre = radiologynet.Preprocessing(input_size=size or arch.input_size)
    with set_layer_config(exportable=True):
        model = radiologynet.create_model(name, num_classes=36).eval()
    result = export_module(model, folder / f"{name}.onnx", preprocessing=pre)
    samples = verification_batch(pre)
    batch = samples.repeat((batch_size + len(samples) - 1) // len(samples), 1, 1, 1)[:batch_size]
    run_ort = RUNNERS["onnx"](folder / f"{name}.onnx")

    def eager(x: torch.Tensor) -> None:
        with torch.inference_mode():
            model(x)

    eager(batch), run_ort(batch)  # warm-up
    eager_times, ort_times = [], []
    for _ in range(repeats):
        eager_times.append(_timed(eager, batch))
        ort_times.append(_timed(run_ort, batch))
    return (
        batch_size / statistics.median(eager_times),
        batch_size / statistics.median(ort_times),
        result.verification.max_abs,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="*", default=list(DEFAULT_ARCHS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=None, help="default: the zoo's")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch_size}, {args.threads} threads, median of {args.repeats}")
    print(f"{'architecture':20s} {'eager img/s':>12s} {'onnxruntime img/s':>18s} {'ratio':>6s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.arch:
            eager, ort, diff = measure(
                name, args.batch_size, args.repeats, args.input_size, Path(tmp)
            )
            print(
                f"{name:20s} {eager:12.1f} {ort:18.1f} {ort / eager:5.2f}x  "
                f"(verified, max abs diff {diff:.2g})",
                flush=True,
            )


if __name__ == "__main__":
    main()
