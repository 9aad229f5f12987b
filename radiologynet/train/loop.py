"""``fit``: the paper's fine-tuning loop, resumable, data-parallel, on CPU or GPU.

AdamW (weight decay 1e-3) on every layer; up to ``max_epochs`` epochs with early stopping
after ``patience`` epochs without a better validation ``monitor`` value; the best weights
are restored for the test evaluation. Bone age: Adam + ReduceLROnPlateau(0.1, patience 3).
The settings are one :class:`~radiologynet.train.config.TrainConfig`; the loop is small
steps: :func:`train_one_epoch`, :func:`evaluate`, :class:`EarlyStopping` and
:class:`Checkpointer`.

Every source of randomness inside an epoch (sample order, augmentation, dropout) is drawn
from generators seeded by ``(seed, epoch)``. The resume state (with the RNG states of
torch, numpy and Python and the position inside the epoch) is written atomically every
``checkpoint_interval_s`` seconds, at the end and on SIGTERM/SIGINT. Re-running the same
call after a kill therefore resumes at the last written step and ends with exactly the
metrics of an uninterrupted run on the CPU (with ``num_workers=0``). A loss that becomes
NaN or inf ends the run with status ``diverged``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from radiologynet._atomic import atomic_write_text
from radiologynet._optional import require
from radiologynet.data.samples import batch_loader
from radiologynet.errors import RadiologyNetError
from radiologynet.train import distributed as ddp
from radiologynet.train.checkpoint import (
    Checkpointer,
    explain_write_errors,
    remove_checkpoint,
    restore,
)
from radiologynet.train.config import (
    DEFAULT_BATCH_SIZE,
    OPTIMIZERS,
    TrainConfig,
    resolve_device,
)
from radiologynet.train.config import autocast as _autocast
from radiologynet.train.emissions import start_emissions, stop_emissions
from radiologynet.train.heads import loss_for
from radiologynet.train.metrics import PredictionMetrics
from radiologynet.train.preemption import Preemption, TrainingInterrupted
from radiologynet.train.runs import LOG_NAME
from radiologynet.train.state import EarlyStopping, FitResult, FitState

MeanMetric = require("torchmetrics", "training").MeanMetric

__all__ = ["evaluate", "fit", "train_one_epoch"]

Callback = Callable[[str, dict[str, Any]], None]


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


def _make_optimizer(
    name: str, model: nn.Module, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise RadiologyNetError(f"fit: optimizer must be one of {OPTIMIZERS}, got {name!r}")


def evaluate(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    loss: nn.Module,
    metrics: Any,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    batch_transform: Callable[..., Any] | None = None,
    num_workers: int = 0,
    precision: str = "auto",
    desc: str = "eval",
    progress: bool = False,
) -> dict[str, float]:
    """Loss and metrics of ``model`` over ``dataset`` (each rank scores its share; the
    torchmetrics states are reduced across ranks, so every rank returns the same numbers).
    """
    device = torch.device(device)
    indices = ddp.shard_indices(torch.arange(len(dataset)), pad=False)
    loader = batch_loader(
        dataset,
        indices.tolist(),
        batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )
    mean_loss = MeanMetric().to(device)
    metrics.reset()
    metrics.to(device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for inputs, target in tqdm(
            loader, desc=desc, leave=False, disable=not (progress and ddp.is_main())
        ):
            inputs = _to_device(inputs, device, device.type == "cuda")
            target = _to_device(target, device)
            if batch_transform is not None:
                inputs, target = batch_transform(inputs, target, train=False, generator=None)
            with _autocast(device, precision):
                outputs = _call(model, inputs)
            outputs = outputs.float()
            mean_loss.update(loss(outputs, target).detach().float(), weight=_batch_size(inputs))
            metrics.update(outputs, target)
    model.train(was_training)
    result = {"loss": float(mean_loss.compute())}
    result.update(metrics.compute())
    return result


@dataclass
class _Run:
    """What the steps of one :func:`fit` share."""

    config: TrainConfig
    model: nn.Module
    train_model: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    loss_fn: nn.Module
    metrics: Any
    device: torch.device
    batch_transform: Callable[..., Any] | None
    callbacks: Sequence[Callback]
    per_rank: int
    eval_batch_size: int
    best_weights: dict[str, torch.Tensor] | None = None

    def evaluate(self, dataset: torch.utils.data.Dataset, desc: str) -> dict[str, float]:
        """:func:`evaluate` with this run's loss, metrics and device."""
        return evaluate(
            self.model,
            dataset,
            loss=self.loss_fn,
            metrics=self.metrics,
            batch_size=self.eval_batch_size,
            device=self.device,
            batch_transform=self.batch_transform,
            num_workers=self.config.num_workers,
            precision=self.config.precision,
            desc=desc,
        )


def _setup(
    model: nn.Module,
    config: TrainConfig,
    loss: nn.Module | None,
    metrics: Any,
    batch_transform: Callable[..., Any] | None,
    callbacks: Sequence[Callback],
) -> _Run:
    device = resolve_device(config.device)
    world = ddp.world_size()
    loss_fn = (loss if loss is not None else loss_for(config.kind)).to(device)
    if metrics is None:
        classes = config.num_classes or int(getattr(model, "num_classes", 0) or 2)
        metrics = PredictionMetrics(config.kind, classes)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt = _make_optimizer(config.optimizer, model, config.lr, config.weight_decay)
    sched = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=3)
        if config.scheduler == "plateau"
        else None
    )
    per_rank = max(1, (config.batch_size or DEFAULT_BATCH_SIZE) // world)
    return _Run(
        config,
        model,
        train_model,
        opt,
        sched,
        loss_fn,
        metrics,
        device,
        batch_transform,
        callbacks,
        per_rank,
        config.eval_batch_size or max(per_rank, 64),
    )


def _agree(flags: Sequence[bool], device: torch.device) -> list[bool]:
    """Each flag, true when it is true on any rank (one all-reduce under DDP)."""
    if ddp.world_size() == 1:
        return [bool(f) for f in flags]
    values = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def _train_step(
    run: _Run, inputs: Any, target: Any, augment_rng: torch.Generator
) -> tuple[torch.Tensor, int, bool]:
    """One optimisation step; returns the (detached) batch loss, the batch size and
    whether the loss is NaN/inf on any rank (the optimiser then does not step)."""
    device = run.device
    inputs = _to_device(inputs, device, device.type == "cuda")
    target = _to_device(target, device)
    if run.batch_transform is not None:
        inputs, target = run.batch_transform(inputs, target, train=True, generator=augment_rng)
    with _autocast(device, run.config.precision):
        outputs = _call(run.train_model, inputs)
    batch_loss = run.loss_fn(outputs.float(), target)
    run.opt.zero_grad(set_to_none=True)
    (diverged,) = _agree([not bool(torch.isfinite(batch_loss))], device)
    if not diverged:  # every rank steps, or none (DDP's backward is collective)
        batch_loss.backward()
        run.opt.step()
    return batch_loss.detach(), _batch_size(inputs), diverged


def _epoch_start(
    run: _Run, state: FitState, train: torch.utils.data.Dataset, epoch: int
) -> tuple[Any, torch.Generator]:
    """Seed epoch ``epoch`` (or restore its augmentation draws when resuming mid-epoch),
    tell the callbacks, and return the loader of this rank's remaining batches and the
    augmentation's random source."""
    epoch_seed = _epoch_seed(run.config.seed, epoch)
    # the sample order is shared by all ranks (each takes its share); dropout and
    # augmentation draws differ per rank
    rank_seed = epoch_seed + 7_777 * ddp.rank()
    augment_rng = torch.Generator().manual_seed(rank_seed + 1)
    if state.step == 0:
        torch.manual_seed(rank_seed)
        np.random.seed(rank_seed % 2**32)
        random.seed(rank_seed)
        state.loss_sum, state.train_time = [0.0, 0.0], 0.0
    elif state.augment_state is not None:
        augment_rng.set_state(state.augment_state)
    for callback in run.callbacks:
        callback("epoch_start", {"epoch": epoch, "step": state.step})
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch_seed))
    share = ddp.shard_indices(order, pad=True)[state.step * run.per_rank :]
    loader = batch_loader(
        train,
        share.tolist(),
        run.per_rank,
        num_workers=run.config.num_workers,
        pin_memory=run.device.type == "cuda",
        generator=torch.Generator().manual_seed(rank_seed + 2),
    )
    return loader, augment_rng


def train_one_epoch(
    run: _Run,
    state: FitState,
    train: torch.utils.data.Dataset,
    epoch: int,
    checkpointer: Checkpointer,
    preemption: Preemption,
) -> bool:
    """Train epoch ``epoch`` from batch ``state.step`` on; returns ``False`` when the loss
    became NaN/inf (``state.status`` is then ``diverged``).

    Raises:
        TrainingInterrupted: SIGTERM/SIGINT arrived; the checkpoint holds this step.
    """
    config = run.config
    loader, augment_rng = _epoch_start(run, state, train, epoch)
    run.train_model.train()
    loss_sum = torch.tensor(state.loss_sum, dtype=torch.float64, device=run.device)
    start = time.perf_counter()
    bar = tqdm(
        loader,
        desc=f"epoch {epoch}/{config.epochs}",
        leave=False,
        disable=not (config.progress and ddp.is_main()),
    )
    for step, (inputs, target) in enumerate(bar, start=state.step):
        batch_loss, n, diverged = _train_step(run, inputs, target, augment_rng)
        for callback in run.callbacks:
            callback("batch_end", {"epoch": epoch, "step": step})
        if diverged:
            state.status = "diverged"
            state.diverged = (
                f"the training loss became {batch_loss.item()} at epoch "
                f"{epoch}, step {step + 1} (lr {config.lr:g})"
            )
            return False
        loss_sum += torch.stack(
            [
                batch_loss.double() * n,
                torch.tensor(float(n), dtype=torch.float64, device=run.device),
            ]
        )
        if step % 10 == 0:
            bar.set_postfix(loss=f"{batch_loss.item():.4f}")
        stop, due = _agree([preemption.requested is not None, checkpointer.due()], run.device)
        if stop or due:
            state.step, state.loss_sum = step + 1, loss_sum.tolist()
            state.train_time += time.perf_counter() - start
            start = time.perf_counter()
            state.augment_state = augment_rng.get_state()
            checkpointer.save(run, state)
            if stop:
                _interrupted(preemption, state, epoch, checkpointer)
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    state.train_time += time.perf_counter() - start
    if ddp.world_size() > 1:
        dist.all_reduce(loss_sum)
    state.loss_sum, state.step, state.augment_state = loss_sum.tolist(), 0, None
    return True


def _interrupted(
    preemption: Preemption, state: FitState, epoch: int, checkpointer: Checkpointer
) -> None:
    where = f"epoch {epoch}, step {state.step}" if state.step else f"epoch {epoch}"
    saved = (
        f"the state is saved in {checkpointer.path}"
        if checkpointer.path is not None
        else "no out_dir, so nothing was saved"
    )
    signal_name = preemption.requested or "a signal to another process"
    raise TrainingInterrupted(
        f"stopped by {signal_name} after {where}; {saved}. "
        "Run the same command again to resume exactly there."
    )


def _end_epoch(
    run: _Run, state: FitState, epoch: int, val: torch.utils.data.Dataset, stopping: EarlyStopping
) -> dict[str, Any]:
    """Validate, step the scheduler, track the best weights; returns the log record."""
    val_result = run.evaluate(val, f"val {epoch}")
    if run.sched is not None:
        run.sched.step(val_result["loss"])
    if stopping.update(state, epoch, val_result):
        run.best_weights = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    images = state.loss_sum[1]
    record = {
        "epoch": epoch,
        "train_loss": state.loss_sum[0] / max(images, 1.0),
        "val_loss": val_result["loss"],
        **{f"val_{k}": v for k, v in val_result.items() if k != "loss"},
        "lr": run.opt.param_groups[0]["lr"],
        "time_s": round(state.train_time, 4),
        "images_per_s": round(images / max(state.train_time, 1e-9), 2),
    }
    state.history.append(record)
    state.epoch = epoch
    return record


def _write_log(out: Path | None, state: FitState) -> None:
    if out is None or not ddp.is_main():
        return
    path = out / LOG_NAME
    with explain_write_errors(path):
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in state.history))


def _test(
    run: _Run, state: FitState, test: torch.utils.data.Dataset | None
) -> tuple[dict[str, float] | None, float]:
    """The test metrics of the loaded best weights (``None``: no test set, or a run that
    diverged before any validation) and the seconds they took."""
    started = time.perf_counter()
    scored = state.status != "diverged" or run.best_weights is not None
    result = run.evaluate(test, "test") if test is not None and scored else None
    return result, time.perf_counter() - started


def _final_checkpoint(
    run: _Run, state: FitState, checkpointer: Checkpointer, out: Path | None
) -> float:
    """Keep the finished run's checkpoint (``keep_checkpoint``: a rerun returns at once
    instead of training again) or delete it; returns the seconds it took."""
    started = time.perf_counter()
    if run.config.keep_checkpoint:
        checkpointer.save(run, state)
    elif out is not None and ddp.is_main():
        remove_checkpoint(out)
    return time.perf_counter() - started


def _train_epochs(
    run: _Run,
    state: FitState,
    train: torch.utils.data.Dataset,
    val: torch.utils.data.Dataset,
    checkpointer: Checkpointer,
    out: Path | None,
) -> bool:
    """Train until the epochs or the patience run out, or the run stops; returns whether
    the patience ran out (early stopping)."""
    config = run.config
    stopping = EarlyStopping(config.patience, config.monitor, config.mode)
    with Preemption() as preemption:
        while (
            state.status == "running"
            and state.epoch < config.epochs
            and not stopping.should_stop(state)
        ):
            epoch = state.epoch + 1
            if not train_one_epoch(run, state, train, epoch, checkpointer, preemption):
                break
            started = time.perf_counter()
            record = _end_epoch(run, state, epoch, val, stopping)
            timing = {"val_s": time.perf_counter() - started}
            started = time.perf_counter()
            _write_log(out, state)
            stop, due = _agree([preemption.requested is not None, checkpointer.due()], run.device)
            if stop or due:
                checkpointer.save(run, state)
            if stop:
                _interrupted(preemption, state, epoch, checkpointer)
            timing["checkpoint_s"] = time.perf_counter() - started
            for callback in run.callbacks:
                callback("epoch_end", {"epoch": epoch, "record": record, **timing})
            if config.progress and ddp.is_main():
                _print_epoch(record, config.epochs)
    return stopping.should_stop(state)


def _print_epoch(record: dict[str, Any], epochs: int) -> None:
    extra = " ".join(
        f"{k[4:]} {v:.4f}"
        for k, v in record.items()
        if k.startswith("val_") and k != "val_loss" and isinstance(v, float)
    )
    print(
        f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f}, "
        f"val loss {record['val_loss']:.4f} {extra} ({record['time_s']:.1f} s)",
        flush=True,
    )


def fit(
    model: nn.Module,
    train: torch.utils.data.Dataset,
    val: torch.utils.data.Dataset,
    test: torch.utils.data.Dataset | None = None,
    config: TrainConfig | None = None,
    *,
    loss: nn.Module | None = None,
    metrics: Any = None,
    batch_transform: Callable[..., Any] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    callbacks: Sequence[Callback] = (),
    recorded: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fine-tune ``model`` on ``train``, select on ``val``, score the best weights on ``test``.

    Args:
        model: any ``nn.Module``; called as ``model(inputs)`` or ``model(*inputs)``.
        train, val, test: datasets of ``(inputs, target)`` items (``test`` optional). A
            dataset with ``get_batch`` is read a batch at a time
            (:func:`radiologynet.data.samples.batch_loader`).
        config: the run's :class:`TrainConfig` (learning rate, epochs, batch size ...).
        loss: ``(outputs, target) -> scalar``; default from ``config.kind``.
        metrics: an object with ``update(outputs, target)``, ``compute() -> dict``,
            ``reset()``, ``to(device)`` (a torchmetrics ``Metric``); default from the kind.
        batch_transform: ``(inputs, target, train=, generator=) -> (inputs, target)`` on the
            device (scaling, augmentation, normalisation), such as
            ``radiologynet.transforms.BatchHook(BatchTransform(...))``.
        out_dir: where ``log.jsonl`` and the resume state go; ``None`` keeps nothing.
        callbacks: ``callback(event, info)`` for ``"epoch_start"`` (before the epoch's
            data is read; ``info["step"]`` > 0 when resuming mid-epoch), ``"batch_end"``,
            ``"epoch_end"`` (info holds the log ``record`` and the seconds spent
            validating, ``val_s``, and writing the log and checkpoint, ``checkpoint_s``)
            and ``"fit_end"`` (``test_s``, ``checkpoint_s``).
        recorded: settings outside ``config`` a resume must match (data, input), checkpointed.

    Returns:
        a :class:`FitResult`; ``model`` holds the best weights afterwards. A run whose
        loss became NaN/inf has ``status == "diverged"``.

    Raises:
        TrainingInterrupted: on SIGTERM/SIGINT, after the current step and its checkpoint.
        StaleRunError: ``out_dir`` holds a checkpoint of other settings or ``recorded``.
    """
    if isinstance(test, TrainConfig):
        raise TypeError("fit(model, train, val, test, config): pass the config as config=")
    config = config if config is not None else TrainConfig()
    if len(train) == 0 or len(val) == 0:
        raise RadiologyNetError("fit: the training and validation sets must not be empty")
    out = Path(out_dir) if out_dir is not None else None
    run = _setup(model, config, loss, metrics, batch_transform, callbacks)
    checkpointer = Checkpointer(out, config.checkpoint_interval_s, recorded)
    saved = checkpointer.load(config) if config.resume else None
    state = restore(run, saved, checkpointer) if saved is not None else FitState()
    tracker = start_emissions(out) if config.track_emissions and ddp.is_main() else None
    patience_ran_out = _train_epochs(run, state, train, val, checkpointer, out)
    stopped_early = state.status == "running" and patience_ran_out and state.epoch < config.epochs
    if run.best_weights is not None:
        model.load_state_dict(run.best_weights)
    test_result, test_s = _test(run, state, test)
    timing = {"test_s": test_s}
    if tracker is not None:
        state.emissions = stop_emissions(tracker, state.emissions)
    if state.status == "running":
        state.status = "completed"
    timing["checkpoint_s"] = _final_checkpoint(run, state, checkpointer, out)
    for callback in run.callbacks:
        callback("fit_end", timing)
    ddp.barrier()
    return FitResult(
        best_epoch=state.best_epoch,
        epochs_run=state.epoch,
        val=dict(state.best_val),
        test=test_result,
        history=list(state.history),
        emissions=state.emissions,
        stopped_early=stopped_early,
        status="diverged" if state.status == "diverged" else "finished",
        diverged=state.diverged,
    )
