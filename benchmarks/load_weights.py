"""Time to build + load each architecture from a converted weights folder.

Compares ``radiologynet.create_model(arch, weights=FOLDER)`` with the plain-timm baseline
``timm.create_model(timm_name, pretrained=False) + load_state_dict(load_file(...))`` on the
same ``model.safetensors``, interleaved, median of ``--repeats`` runs, in one process.
Target: ratio <= 1.05x (a weights file is hashed once per process while it is unchanged).

    python benchmarks/load_weights.py [--repeats 5] [--arch resnet18 ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import safetensors.torch
import timm
import torch

import radiologynet
from radiologynet.models._folder import write_weights_folder
from radiologynet.models._registry import ARCHITECTURES
from radiologynet.models._weights import get_weights


def fabricate_folder(name: str, root: Path) -> Path:
    """A converted weights folder for ``name`` with random weights (36-class head)."""
    arch = ARCHITECTURES[name]
    model = timm.create_model(arch.timm_name, num_classes=36, **arch.model_args_dict)
    return write_weights_folder(
        model.state_dict(), root / name, arch=arch, record=get_weights(f"{name}.radiologynet")
    )


def baseline(name: str, folder: Path) -> torch.nn.Module:
    """Plain timm: build without weights, then load the safetensors file."""
    arch = ARCHITECTURES[name]
    model = timm.create_model(
        arch.timm_name, pretrained=False, num_classes=36, **arch.model_args_dict
    )
    model.load_state_dict(safetensors.torch.load_file(folder / "model.safetensors"))
    return model


def ours(name: str, folder: Path) -> torch.nn.Module:
    """radiologynet.create_model from the same folder."""
    return radiologynet.create_model(name, weights=folder)


def _time(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'architecture':20s} {'timm+load ms':>13s} {'create_model ms':>16s} {'ratio':>6s}")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.arch:
            folder = fabricate_folder(name, Path(tmp))
            baseline(name, folder), ours(name, folder)  # warm-up: imports, file cache
            base_times, our_times = [], []
            for _ in range(args.repeats):
                base_times.append(_time(baseline, name, folder))
                our_times.append(_time(ours, name, folder))
            base, mine = statistics.median(base_times), statistics.median(our_times)
            ratios.append(mine / base)
            print(
                f"{name:20s} {base * 1e3:13.1f} {mine * 1e3:16.1f} {mine / base:5.2f}x", flush=True
            )
    print(
        f"{'geometric mean':20s} {'':13s} {'':16s} "
        f"{statistics.geometric_mean(ratios):5.2f}x  (target <= 1.05x)"
    )


if __name__ == "__main__":
    main()
