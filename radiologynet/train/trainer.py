"""``fit``: the paper's fine-tuning loop, resumable, data-parallel, on CPU or GPU.

AdamW (weight decay 1e-3) on every layer; up to ``max_epochs`` epochs with early stopping
after ``patience`` epochs without a better validation ``monitor`` value; the best weights
are restored for the test evaluation. Bone age: Adam + ReduceLROnPlateau(0.1, patience 3).

Every source of randomness inside an epoch (sample order, augmentation, dropout) is drawn
from generators seeded by ``(seed, epoch)``, and a checkpoint is written atomically after
each epoch with the RNG states of torch, numpy and Python. Re-running the same call after
a kill (even mid-epoch) therefore resumes at the last finished epoch and ends with exactly
the metrics of an uninterrupted run on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torchmetrics import MeanMetric
from tqdm.auto import tqdm

from radiologynet.errors import RadiologyNetError
from radiologynet.train import distributed as ddp
from radiologynet.train.checkpoint import (
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from radiologynet.train.heads import loss_for
from radiologynet.train.metrics import PredictionMetrics

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"
Callback = Callable[[str, dict[str, Any]], None]


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        best_epoch: the epoch whose weights were kept (1-based; "epochs to best").
        epochs_run: epochs trained in total (over all resumptions).
        val: validation metrics of the best epoch (``loss`` and the task's metrics).
        test: test metrics of the best weights (``None`` without a test set).
        history: one dict per epoch (the lines of ``log.jsonl``).
        emissions: ``{"energy_kwh", "co2_kg", "duration_s"}`` with ``track_emissions``.
        stopped_early: whether early stopping ended the run before ``max_epochs``.
    """

    best_epoch: int
    epochs_run: int
    val: dict[str, float]
    test: dict[str, float] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    emissions: dict[str, float] | None = None
    stopped_early: bool = False


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7_919) % (2**63 - 1)


def _to_device(obj: Any, device: torch.device, channels_last: bool = False) -> Any:
    if isinstance(obj, torch.Tensor):
        obj = obj.to(device, non_blocking=True)
        if channels_last and obj.ndim == 4 and obj.dtype == torch.uint8:
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(o, device, channels_last) for o in obj)
    return obj


def _call(model: nn.Module, inputs: Any) -> torch.Tensor:
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def _batch_size(inputs: Any) -> int:
    first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
    return int(first.shape[0])


def _loader(dataset: torch.utils.data.Dataset, indices: torch.Tensor, batch_size: int,
            num_workers: int, device: torch.device) -> torch.utils.data.DataLoader:
    subset = torch.utils.data.Subset(dataset, indices.tolist())
    return torch.utils.data.DataLoader(
        subset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        pin_memory=device.type == "cuda", persistent_workers=False,
    )


def _make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float
                    ) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise RadiologyNetError(f"fit: optimizer must be 'adamw' or 'adam', got {name!r}")


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(model: nn.Module, dataset: torch.utils.data.Dataset, *, loss: nn.Module,
             metrics: Any, batch_size: int = 64, device: torch.device | str = "cpu",
             batch_transform: Callable[..., Any] | None = None, num_workers: int = 0,
             precision: str = "auto", desc: str = "eval", progress: bool = False
             ) -> dict[str, float]:
    """Loss and metrics of ``model`` over ``dataset`` (each rank scores its share; the
    torchmetrics states are reduced across ranks, so every rank returns the same numbers).
    """
    device = torch.device(device)
    indices = ddp.shard_indices(torch.arange(len(dataset)), pad=False)
    loader = _loader(dataset, indices, batch_size, num_workers, device)
    mean_loss = MeanMetric().to(device)
    metrics.reset()
    metrics.to(device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for inputs, target in tqdm(loader, desc=desc, leave=False,
                                   disable=not (progress and ddp.is_main())):
            inputs = _to_device(inputs, device, device.type == "cuda")
            target = _to_device(target, device)
            if batch_transform is not None:
                inputs, target = batch_transform(inputs, target, train=False, generator=None)
            with _autocast(device, precision):
                outputs = _call(model, inputs)
            outputs = outputs.float()
            mean_loss.update(loss(outputs, target).detach().float(),
                             weight=_batch_size(inputs))
            metrics.update(outputs, target)
    model.train(was_training)
    result = {"loss": float(mean_loss.compute())}
    result.update(metrics.compute())
    return result


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if mode == "min" else value > best


def _start_emissions(out_dir: Path | None) -> Any:
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        raise RadiologyNetError(
            "--track-emissions needs codecarbon: pip install 'radiologynet[emissions]'"
        ) from None
    tracker = OfflineEmissionsTracker(
        country_iso_code=os.environ.get("CODECARBON_COUNTRY", "USA"), save_to_file=False,
        log_level="error", output_dir=str(out_dir or "."),
    )
    tracker.start()
    return tracker


def _stop_emissions(tracker: Any, previous: dict[str, float] | None) -> dict[str, float]:
    co2 = float(tracker.stop() or 0.0)
    data = getattr(tracker, "final_emissions_data", None)
    energy = float(getattr(data, "energy_consumed", 0.0) or 0.0)
    duration = float(getattr(data, "duration", 0.0) or 0.0)
    previous = previous or {}
    return {"energy_kwh": energy + previous.get("energy_kwh", 0.0),
            "co2_kg": co2 + previous.get("co2_kg", 0.0),
            "duration_s": duration + previous.get("duration_s", 0.0)}


def fit(
    model: nn.Module,
    train: torch.utils.data.Dataset,
    val: torch.utils.data.Dataset,
    test: torch.utils.data.Dataset | None = None,
    *,
    kind: str = "multiclass",
    num_classes: int | None = None,
    lr: float = 1e-4,
    max_epochs: int = 200,
    patience: int = 10,
    batch_size: int = 32,
    eval_batch_size: int | None = None,
    seed: int = 0,
    optimizer: str = "adamw",
    weight_decay: float = 1e-3,
    scheduler: str | None = None,
    loss: nn.Module | None = None,
    metrics: Any = None,
    monitor: str = "loss",
    mode: str = "min",
    batch_transform: Callable[..., Any] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    keep_checkpoint: bool = False,
    device: str | torch.device | None = None,
    precision: str = "auto",
    num_workers: int = 0,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    track_emissions: bool = False,
) -> FitResult:
    """Fine-tune ``model`` on ``train``, select on ``val``, score the best weights on
    ``test``.

    Args:
        model: any ``nn.Module``; called as ``model(inputs)`` or ``model(*inputs)``.
        train, val, test: datasets of ``(inputs, target)`` items (``test`` optional).
        kind: ``multiclass``, ``binary``, ``regression`` (default loss and metrics) or
            anything else together with ``loss`` and ``metrics``.
        num_classes: for multiclass metrics (default: ``model.num_classes``).
        lr, weight_decay, optimizer: AdamW/Adam settings (the paper's: weight decay 1e-3).
        max_epochs, patience: the epoch budget and early-stopping patience on ``monitor``.
        batch_size: the global batch size (split evenly across DDP ranks).
        seed: seeds the sample order, augmentation and dropout of every epoch.
        scheduler: ``None`` or ``"plateau"`` (ReduceLROnPlateau(0.1, patience 3) on val loss).
        loss: ``(outputs, target) -> scalar``; default from ``kind``.
        metrics: an object with ``update(outputs, target)``, ``compute() -> dict``,
            ``reset()``, ``to(device)`` (a torchmetrics ``Metric``); default from ``kind``.
        monitor, mode: the validation value selecting the best epoch (``"loss"``, ``"min"``).
        batch_transform: ``(inputs, target, train=, generator=) -> (inputs, target)`` on the
            device (scaling, augmentation, normalisation).
        out_dir: where ``log.jsonl`` and ``checkpoint.pt`` go; ``None`` keeps nothing.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        keep_checkpoint: keep the checkpoint after the run (the runner deletes it itself
            once the results are written).
        device: default ``cuda:LOCAL_RANK`` when available, else CPU.
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"bf16"`` or ``"fp32"``.
        callbacks: ``callback(event, info)`` for ``"batch_end"``, ``"epoch_end"`` (info
            holds the log ``record`` and the seconds spent validating, ``val_s``, and
            writing the checkpoint, ``checkpoint_s``) and ``"fit_end"`` (``test_s``,
            ``checkpoint_s``).
        track_emissions: measure energy and CO2 with codecarbon (optional dependency).

    Returns:
        a :class:`FitResult`; ``model`` holds the best weights afterwards.
    """
    if mode not in ("min", "max"):
        raise RadiologyNetError(f"fit: mode must be 'min' or 'max', got {mode!r}")
    if max_epochs < 1 or patience < 1 or batch_size < 1:
        raise RadiologyNetError("fit: max_epochs, patience and batch_size must be >= 1 "
                                f"(got {max_epochs}, {patience}, {batch_size})")
    if len(train) == 0 or len(val) == 0:
        raise RadiologyNetError("fit: the training and validation sets must not be empty")
    device = torch.device(device) if device is not None else ddp.default_device()
    world = ddp.world_size()
    main = ddp.is_main()
    out = Path(out_dir) if out_dir is not None else None
    checkpoint_path = out / CHECKPOINT_NAME if out is not None else None

    loss_fn = loss if loss is not None else loss_for(kind)
    if metrics is None:
        classes = num_classes or int(getattr(model, "num_classes", 0) or 2)
        metrics = PredictionMetrics(kind, classes)
    loss_fn = loss_fn.to(device)

    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = _make_optimizer(optimizer, model, lr, weight_decay)
    sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1,
                                                         patience=3)
             if scheduler == "plateau" else None)
    if scheduler not in (None, "plateau"):
        raise RadiologyNetError(f"fit: scheduler must be None or 'plateau', got {scheduler!r}")

    state: dict[str, Any] = {"epoch": 0, "best_score": None, "best_epoch": 0, "bad_epochs": 0,
                             "best_val": {}, "history": [], "completed": False,
                             "emissions": None}
    best_weights: dict[str, torch.Tensor] | None = None
    if resume and checkpoint_path is not None and checkpoint_path.is_file():
        saved = load_checkpoint(checkpoint_path)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        if sched is not None and saved.get("scheduler") is not None:
            sched.load_state_dict(saved["scheduler"])
        best_weights = saved.get("best_weights")
        state.update({k: saved[k] for k in state if k in saved})
        set_rng_state(saved["rng"])

    tracker = _start_emissions(out) if track_emissions and main else None
    per_rank = max(1, batch_size // world)
    eval_bs = eval_batch_size or max(per_rank, 64)
    eval_kwargs = dict(loss=loss_fn, metrics=metrics, batch_size=eval_bs, device=device,
                       batch_transform=batch_transform, num_workers=num_workers,
                       precision=precision)

    def save() -> None:
        if checkpoint_path is None or not main:
            return
        save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "best_weights": best_weights, **state,
        })

    def write_log() -> None:
        if out is None or not main:
            return
        atomic_write_text(out / LOG_NAME,
                          "".join(json.dumps(r) + "\n" for r in state["history"]))

    epoch = int(state["epoch"])
    while (not state["completed"] and epoch < max_epochs
           and state["bad_epochs"] < patience):
        epoch += 1
        epoch_seed = _epoch_seed(seed, epoch)
        # the sample order is shared by all ranks (each takes its share); dropout and
        # augmentation draw differ per rank
        rank_seed = epoch_seed + 7_777 * ddp.rank()
        torch.manual_seed(rank_seed)
        np.random.seed(rank_seed % 2**32)
        random.seed(rank_seed)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch_seed))
        loader = _loader(train, ddp.shard_indices(order, pad=True), per_rank, num_workers,
                         device)
        augment_rng = torch.Generator().manual_seed(rank_seed + 1)
        train_model.train()
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
        start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}/{max_epochs}", leave=False,
                   disable=not (progress and main))
        for step, (inputs, target) in enumerate(bar):
            inputs = _to_device(inputs, device, device.type == "cuda")
            target = _to_device(target, device)
            if batch_transform is not None:
                inputs, target = batch_transform(inputs, target, train=True,
                                                 generator=augment_rng)
            with _autocast(device, precision):
                outputs = _call(train_model, inputs)
            batch_loss = loss_fn(outputs.float(), target)
            if not torch.isfinite(batch_loss):
                raise RadiologyNetError(
                    f"fit: the training loss became {batch_loss.item()} at epoch {epoch} "
                    f"(lr {lr:g}); lower the learning rate.")
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            n = _batch_size(inputs)
            loss_sum += torch.stack([batch_loss.detach().double() * n,
                                     torch.tensor(float(n), dtype=torch.float64,
                                                  device=device)])
            if step % 10 == 0:
                bar.set_postfix(loss=f"{batch_loss.item():.4f}")
            for callback in callbacks:
                callback("batch_end", {"epoch": epoch, "step": step})
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_time = time.perf_counter() - start
        if world > 1:
            dist.all_reduce(loss_sum)
        val_start = time.perf_counter()
        val_result = evaluate(model, val, desc=f"val {epoch}", **eval_kwargs)
        val_time = time.perf_counter() - val_start
        if sched is not None:
            sched.step(val_result["loss"])
        score = val_result.get(monitor)
        if score is None:
            raise RadiologyNetError(f"fit: monitor {monitor!r} is not among the validation "
                                    f"values {sorted(val_result)}")
        if _improved(score, state["best_score"], mode):
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0, best_val=val_result)
            best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        images = float(loss_sum[1])
        record = {"epoch": epoch, "train_loss": float(loss_sum[0] / max(images, 1.0)),
                  "val_loss": val_result["loss"],
                  **{f"val_{k}": v for k, v in val_result.items() if k != "loss"},
                  "lr": opt.param_groups[0]["lr"], "time_s": round(train_time, 4),
                  "images_per_s": round(images / max(train_time, 1e-9), 2)}
        state["history"].append(record)
        state["epoch"] = epoch
        write_log()
        save_start = time.perf_counter()
        save()
        timing = {"val_s": val_time, "checkpoint_s": time.perf_counter() - save_start}
        for callback in callbacks:
            callback("epoch_end", {"epoch": epoch, "record": record, **timing})

    stopped_early = state["bad_epochs"] >= patience and state["epoch"] < max_epochs
    if best_weights is not None:
        model.load_state_dict(best_weights)
    test_start = time.perf_counter()
    test_result = evaluate(model, test, desc="test", **eval_kwargs) if test is not None else None
    timing = {"test_s": time.perf_counter() - test_start}
    if tracker is not None:
        state["emissions"] = _stop_emissions(tracker, state["emissions"])
    save_start = time.perf_counter()
    if not state["completed"]:
        state["completed"] = True
        save()
    timing["checkpoint_s"] = time.perf_counter() - save_start
    for callback in callbacks:
        callback("fit_end", timing)
    if checkpoint_path is not None and not keep_checkpoint and main:
        checkpoint_path.unlink(missing_ok=True)
    ddp.barrier()
    return FitResult(best_epoch=int(state["best_epoch"]), epochs_run=int(state["epoch"]),
                     val=dict(state["best_val"]), test=test_result,
                     history=list(state["history"]), emissions=state["emissions"],
                     stopped_early=stopped_early)
