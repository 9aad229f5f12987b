"""Training throughput: the trainer end to end vs the pure-compute ceiling vs a textbook loop.

All three run in one process on the same device, same model, input size and batch size:

- ceiling:   the model stepping (forward, backward, AdamW) on synthetic tensors already on
             the device, with the trainer's precision (bf16 autocast + channels_last on CUDA);
- trainer:   ``radiologynet.train.fit`` on image files through the decoded-image dataset
             and the batched device transform with the paper's augmentation (epochs after
             the first, when the images are decoded);
- textbook:  fp32, ``DataLoader`` over image files decoded by PIL each step and
             torchvision's per-image transforms (resize, flip, rotation, colour jitter).

Usage::

    python benchmarks/train_throughput.py --model mobilenet_v3_small --size 64 --device cpu
    python benchmarks/train_throughput.py --model resnet50 --size 224 --images 4096 \\
        --batch-size 128 --workers 8 --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_images(folder: Path, count: int, side: int) -> list[Path]:
    """``count`` synthetic radiographs (PNG, ``side`` px) in two class folders."""
    from radiologynet.demo.quick import synthetic_radiograph

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        label = ("fracture", "normal")[i % 2]
        path = folder / label / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image = synthetic_radiograph(label, rng)
        Image.fromarray(image).resize((side, side), Image.BILINEAR).save(path)
        paths.append(path)
    return paths


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ceiling(arch: str, size: int, batch: int, steps: int, device: torch.device) -> float:
    """Images/s of the model alone on device-resident synthetic batches."""
    from radiologynet.train import build_model

    model = build_model(arch, None, kind="multiclass", num_classes=2).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-3)
    x = torch.rand(batch, 3, size, size, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = model(x)
        loss = loss_fn(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def trainer(
    arch: str,
    size: int,
    batch: int,
    paths: list[Path],
    device: torch.device,
    workers: int,
    epochs: int,
) -> float:
    """Training images/s of ``fit`` (mean over the epochs after the first)."""
    from radiologynet.data.samples import PAPER_AUGMENT, SampleDataset
    from radiologynet.data.splits import Sample
    from radiologynet.models._weights import Preprocessing
    from radiologynet.train import TrainConfig, build_model, fit
    from radiologynet.transforms import BatchHook, BatchTransform

    samples = [Sample(path=str(p), target=int(p.parent.name == "normal")) for p in paths]
    train = SampleDataset(samples, size)
    val = SampleDataset(samples[:batch], size)
    model = build_model(arch, None, kind="multiclass", num_classes=2)
    config = TrainConfig(
        kind="multiclass",
        num_classes=2,
        lr=1e-4,
        max_epochs=epochs,
        patience=epochs,
        batch_size=batch,
        device=str(device),
        num_workers=workers,
        progress=False,
    )
    result = fit(
        model,
        train,
        val,
        config=config,
        batch_transform=BatchHook(
            BatchTransform(Preprocessing(input_size=size), augment=PAPER_AUGMENT)
        ),
    )
    later = [r["images_per_s"] for r in result.history[1:]]
    return float(np.mean(later))


def textbook(
    arch: str, size: int, batch: int, folder: Path, device: torch.device, workers: int, epochs: int
) -> float:
    """Images/s of a plain fp32 loop over an ``ImageFolder`` decoded every step."""
    from torchvision import datasets, transforms

    from radiologynet.train import build_model

    tf = transforms.Compose(
        [
            transforms.Grayscale(num_output_channels=3),
            transforms.Resize((size, size)),
            transforms.RandomHorizontalFlip(),
            transforms.RandomRotation(15),
            transforms.ColorJitter(brightness=0.2, contrast=(0.8, 1.3)),
            transforms.ToTensor(),
        ]
    )
    images = datasets.ImageFolder(str(folder), tf)
    loader = torch.utils.data.DataLoader(
        images, batch_size=batch, shuffle=True, num_workers=workers
    )
    model = build_model(arch, None, kind="multiclass", num_classes=len(images.classes)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = []
    for _epoch in range(epochs):
        seen = 0
        _sync(device)
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += x.shape[0]
        _sync(device)
        rates.append(seen / (time.perf_counter() - start))
    return float(np.mean(rates[1:] if len(rates) > 1 else rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mobilenet_v3_small")
    parser.add_argument("--size", type=int, default=64, help="input side")
    parser.add_argument("--file-size", type=int, default=256, help="side of the PNG files")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="ceiling steps")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="interleaved repetitions; the best of each is reported (robust "
        "to other load on a shared machine)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        paths = write_images(folder, args.images, args.file_size)
        measures = {
            "ceiling (synthetic tensors on device)": lambda: ceiling(
                args.model, args.size, args.batch_size, args.steps, device
            ),
            "trainer (decoded cache + device transform)": lambda: trainer(
                args.model, args.size, args.batch_size, paths, device, args.workers, args.epochs
            ),
            "textbook (fp32, DataLoader over files)": lambda: textbook(
                args.model, args.size, args.batch_size, folder, device, args.workers, args.epochs
            ),
        }
        rates = {name: 0.0 for name in measures}
        for _ in range(max(1, args.repeats)):
            for name, measure in measures.items():
                rates[name] = max(rates[name], measure())
    top = rates["ceiling (synthetic tensors on device)"]
    print(
        f"{args.model} at {args.size} px, batch {args.batch_size}, {args.images} images, "
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"best of {args.repeats}"
    )
    for name, rate in rates.items():
        print(f"  {name:45s} {rate:9.1f} img/s   {rate / top:5.2f} x ceiling")


if __name__ == "__main__":
    main()
