"""The GPU suite: one run, one JSON result, everything measured on the same device.

1. **ceiling** - the training step alone (forward, backward, AdamW) on synthetic tensors
   already on the device, bf16 autocast + channels_last + cudnn.benchmark on CUDA, for
   resnet50 and mobilenet_v3_small at 224 px;
2. **trainer** - ``radiologynet.train.fit`` fed from the decoded-image cache (the folder
   task's data, as the protocol runner builds it) with the paper's augmentation, as a
   fraction of (1) (target >= 0.9);
3. **textbook** - an fp32 ``DataLoader`` loop decoding the image files with PIL every epoch
   (torchvision transforms), for comparison (target: trainer >= 3x it);
4. **protocol** - the wall time of the full paper protocol for one (task, architecture) on
   a BTMR-sized synthetic task (5,712 images for training and validation, 1,311 for test):
   3 inits x 4 learning rates x 5 runs, early stopping after 10 epochs without
   improvement. One run per learning rate is trained for real (random init, the paper's
   epoch budget); each stands for the 15 runs (3 inits x 5 seeds) at its learning rate,
   so the estimate is the sum of 15 x its measured wall time (its own stopping epoch).
   Pretrained inits stop earlier than random ones, so this overestimates. Target: under
   one GPU-hour on one H200.

Without CUDA (or with ``--tiny``) everything runs at toy sizes on the CPU, so the script
and its JSON can be tested anywhere; the numbers then say nothing about a GPU.

Usage::

    python benchmarks/gpu.py --json gpu.json                # on a CUDA machine
    python benchmarks/gpu.py --tiny --json /tmp/gpu.json    # anywhere, about a minute

Reference (one H200, ``../shared/reference/ecosystem.md``): bf16 ceiling resnet50 4,314
img/s, mobilenet_v3_small 5,635 img/s; a textbook loop reached 1,163 img/s (0.28 of the
ceiling), a GPU-resident decoded set 4,226 (1.00).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import ceiling, textbook  # noqa: E402  (the one implementation of each)

INITS, RUNS_PER_CELL = 3, 5
TRAINER_TARGET, TEXTBOOK_TARGET, PROTOCOL_TARGET_S = 0.9, 3.0, 3600.0


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is (the full suite, or ``--tiny``)."""

    models: tuple[str, ...] = ("resnet50", "mobilenet_v3_small")
    input_size: int = 224
    batch_size: int = 128
    ceiling_steps: int = 50
    trainer_epochs: int = 3
    textbook_batch_size: int = 32
    textbook_epochs: int = 2
    workers: int = 8
    file_side: int = 512
    train: int = 4570  # + val = 5,712: BTMR's training set
    val: int = 1142
    test: int = 1311
    protocol_model: str = "resnet50"
    protocol_max_epochs: int = 200
    protocol_patience: int = 10
    protocol_lrs: tuple[str, ...] = ("1e-2", "1e-3", "1e-4", "1e-5")


TINY = Sizes(
    input_size=32,
    batch_size=6,
    ceiling_steps=2,
    trainer_epochs=2,
    textbook_batch_size=6,
    textbook_epochs=1,
    workers=0,
    file_side=48,
    train=12,
    val=6,
    test=6,
    protocol_model="mobilenet_v3_small",
    protocol_max_epochs=2,
    protocol_patience=10,
    protocol_lrs=("1e-3",),
)


def _write_one(job: tuple[Path, str, int, int, int]) -> None:
    from radiologynet._atomic import atomic_write
    from radiologynet.demo.quick import synthetic_radiograph

    path, label, seed, index, side = job
    image = synthetic_radiograph(label, np.random.default_rng([seed, index]))
    picture = Image.fromarray(image).resize((side, side), Image.BILINEAR)
    atomic_write(path, lambda tmp: picture.save(tmp, format="JPEG", quality=90))


def write_task(root: Path, sizes: Sizes, processes: int) -> Path:
    """A folder task ``ROOT/{train,val,test}/<class>/*.jpg`` of synthetic radiographs
    (the demo's three findings), ``sizes.file_side`` px JPEG files."""
    from radiologynet.demo.quick import DEMO_CLASSES

    jobs = []
    for seed, (split, count) in enumerate(
        (("train", sizes.train), ("val", sizes.val), ("test", sizes.test))
    ):
        for i in range(count):
            label = DEMO_CLASSES[i % len(DEMO_CLASSES)]
            jobs.append((root / split / label / f"{i:05d}.jpg", label, seed, i, sizes.file_side))
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(_write_one, jobs, chunksize=64))
    else:
        for job in jobs:
            _write_one(job)
    return root


def task_data(root: Path, size: int, cache: Path) -> tuple[Any, float]:
    """The folder task's data as the protocol runner builds it (decoded once into the
    on-disk cache); returns it and the decoding seconds."""
    from radiologynet.models._weights import Preprocessing
    from radiologynet.protocol import DataRequest, get_task_spec

    start = time.perf_counter()
    data = get_task_spec("folder").build_data(
        DataRequest(
            root=root,
            seed=0,
            fraction=None,
            preprocessing=Preprocessing(input_size=size),
            input_size=size,
            in_chans=3,
            train_seed=0,
            cache_dir=cache,
        )
    )
    return data, time.perf_counter() - start


def trainer_rate(arch: str, data: Any, sizes: Sizes, device: torch.device) -> float:
    """Training images/s of ``fit`` on the decoded cache (mean of the epochs after the
    first)."""
    from radiologynet.train import TrainConfig, build_model, fit

    model = build_model(arch, None, kind="multiclass", num_classes=data.num_classes)
    config = TrainConfig(
        kind="multiclass",
        num_classes=data.num_classes,
        lr=1e-4,
        max_epochs=sizes.trainer_epochs,
        patience=sizes.trainer_epochs,
        batch_size=sizes.batch_size,
        device=str(device),
        num_workers=sizes.workers,
        progress=False,
    )
    result = fit(model, data.train, data.val, config=config, batch_transform=data.batch_transform)
    rates = [r["images_per_s"] for r in result.history]
    return float(np.mean(rates[1:] if len(rates) > 1 else rates))


def protocol_estimate(
    root: Path, cache: Path, out: Path, sizes: Sizes, device: torch.device
) -> dict[str, Any]:
    """Train one random-init run per learning rate through the protocol runner and
    extrapolate the full grid (3 inits x len(lrs) x 5 runs) from their wall times."""
    from radiologynet.protocol import RunSettings, get_task_spec, plan, run_one
    from radiologynet.train import TrainConfig

    task = get_task_spec("folder")
    config = TrainConfig(
        max_epochs=sizes.protocol_max_epochs,
        patience=sizes.protocol_patience,
        batch_size=sizes.batch_size,
        device=str(device),
        num_workers=sizes.workers,
        progress=False,
    )
    settings = RunSettings(cache_dir=str(cache), input_size=sizes.input_size)
    sampled = []
    for spec in plan(
        "folder", [sizes.protocol_model], ["random"], list(sizes.protocol_lrs), runs=1
    ):
        start = time.perf_counter()
        result = run_one(spec, task, root, out, config, settings)
        wall = time.perf_counter() - start
        epochs = int(result["epochs_run"])
        sampled.append(
            {
                "lr": spec.lr,
                "epochs_run": epochs,
                "best_epoch": result["best_epoch"],
                "wall_s": round(wall, 2),
                "s_per_epoch": round(wall / max(epochs, 1), 3),
                "test_f1": result["test"].get("f1"),
            }
        )
    cells = INITS * RUNS_PER_CELL
    estimate = sum(cells * s["wall_s"] for s in sampled)
    return {
        "model": sizes.protocol_model,
        "grid": f"{INITS} inits x {len(sizes.protocol_lrs)} lrs x {RUNS_PER_CELL} runs",
        "max_epochs": sizes.protocol_max_epochs,
        "patience": sizes.protocol_patience,
        "sampled_runs": sampled,
        "estimated_wall_s": round(estimate, 2),  # the sampled wall_s carry 2 decimals
        "estimated_gpu_hours": round(estimate / 3600, 3),
        "assumption": "each sampled random-init run stands for the 15 runs at its lr; "
        "pretrained inits stop earlier, so this is an upper estimate",
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="toy sizes (the default without CUDA): a test, not a measurement",
    )
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--json", help="write the result here (also printed)")
    parser.add_argument("--workdir", help="keep the generated task and cache here")
    parser.add_argument(
        "--skip-protocol",
        action="store_true",
        help="leave out the (longest) protocol extrapolation",
    )
    return parser


def _measure_model(
    arch: str, data: Any, sizes: Sizes, root: Path, device: torch.device
) -> dict[str, Any]:
    """One architecture's ceiling, trainer and textbook rates (printed as one line)."""
    top = ceiling(arch, sizes.input_size, sizes.batch_size, sizes.ceiling_steps, device)
    fed = trainer_rate(arch, data, sizes, device)
    plain = textbook(
        arch,
        sizes.input_size,
        sizes.textbook_batch_size,
        root / "train",
        device,
        sizes.workers,
        sizes.textbook_epochs,
    )
    print(
        f"{arch:20s} ceiling {top:8.1f}  trainer {fed:8.1f} ({fed / top:.2f})  "
        f"textbook {plain:8.1f}  trainer/textbook {fed / plain:.2f}",
        flush=True,
    )
    return {
        "ceiling_img_s": round(top, 2),
        "trainer_img_s": round(fed, 2),
        "textbook_img_s": round(plain, 2),
        "trainer_of_ceiling": round(fed / top, 3),
        "trainer_over_textbook": round(fed / plain, 2),
        "targets_met": {
            "trainer_of_ceiling": fed / top >= TRAINER_TARGET,
            "trainer_over_textbook": fed / plain >= TEXTBOOK_TARGET,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tiny = args.tiny or device.type != "cuda"
    sizes = TINY if tiny else Sizes()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "tiny": tiny,
        "sizes": asdict(sizes),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "precision": "bf16 autocast + channels_last" if device.type == "cuda" else "fp32",
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        root, cache = work / "task", work / "cache"
        mark = time.perf_counter()
        if not (root / "test").is_dir():
            write_task(root, sizes, processes=1 if tiny else min(16, os.cpu_count() or 1))
        result["write_task_s"] = round(time.perf_counter() - mark, 2)
        data, decode_s = task_data(root, sizes.input_size, cache)
        result["decode_s"] = round(decode_s, 2)
        models = {arch: _measure_model(arch, data, sizes, root, device) for arch in sizes.models}
        result["models"] = models
        if not args.skip_protocol:
            protocol = protocol_estimate(root, cache, work / "results", sizes, device)
            protocol["target_met"] = protocol["estimated_wall_s"] < PROTOCOL_TARGET_S
            result["protocol"] = protocol
            print(
                f"protocol {protocol['grid']} ({protocol['model']}): estimated "
                f"{protocol['estimated_gpu_hours']:.2f} device-hours",
                flush=True,
            )
    result["suite_wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    if args.json:
        from radiologynet._atomic import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
