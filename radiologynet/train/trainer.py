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

import contextlib
import json
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
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
from radiologynet.errors import RadiologyNetError, StaleRunError
from radiologynet.train import distributed as ddp
from radiologynet.train.checkpoint import (
    CHECKPOINT_NAME,
    best_weights_name,
    explain_write_errors,
    load_best_weights,
    load_checkpoint,
    prune_best_weights,
    remove_checkpoint,
    rng_state,
    save_best_weights,
    save_checkpoint,
    set_rng_state,
)
from radiologynet.train.config import (
    DEFAULT_BATCH_SIZE,
    OPTIMIZERS,
    TrainConfig,
    config_changes,
    resolve_device,
)
from radiologynet.train.heads import loss_for
from radiologynet.train.metrics import PredictionMetrics

MeanMetric = require("torchmetrics", "training").MeanMetric

__all__ = [
    "Checkpointer",
    "EarlyStopping",
    "FitResult",
    "FitState",
    "Preemption",
    "TrainingInterrupted",
    "evaluate",
    "fit",
    "train_one_epoch",
]

LOG_NAME = "log.jsonl"
Callback = Callable[[str, dict[str, Any]], None]


class TrainingInterrupted(RadiologyNetError):
    """SIGTERM/SIGINT stopped training after a step; the checkpoint holds that step."""


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
        status: ``finished``, or ``diverged`` when the training loss became NaN/inf
            (``diverged`` then says where; ``val``/``test`` are those of the best
            weights before it, if any).
    """

    best_epoch: int
    epochs_run: int
    val: dict[str, float]
    test: dict[str, float] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    emissions: dict[str, float] | None = None
    stopped_early: bool = False
    status: str = "finished"
    diverged: str | None = None


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


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if mode == "min" else value > best


def _start_emissions(out_dir: Path | None) -> Any:
    OfflineEmissionsTracker = require("codecarbon", "--track-emissions").OfflineEmissionsTracker
    tracker = OfflineEmissionsTracker(
        country_iso_code=os.environ.get("CODECARBON_COUNTRY", "USA"),
        save_to_file=False,
        log_level="error",
        output_dir=str(out_dir or "."),
    )
    tracker.start()
    return tracker


def _stop_emissions(tracker: Any, previous: dict[str, float] | None) -> dict[str, float]:
    co2 = float(tracker.stop() or 0.0)
    data = getattr(tracker, "final_emissions_data", None)
    energy = float(getattr(data, "energy_consumed", 0.0) or 0.0)
    duration = float(getattr(data, "duration", 0.0) or 0.0)
    previous = previous or {}
    return {
        "energy_kwh": energy + previous.get("energy_kwh", 0.0),
        "co2_kg": co2 + previous.get("co2_kg", 0.0),
        "duration_s": duration + previous.get("duration_s", 0.0),
    }


@dataclass
class FitState:
    """The resumable progress of a run (saved in ``checkpoint.pt``).

    ``epoch`` counts finished epochs; ``step`` the batches already trained of the next
    one (non-zero in a checkpoint written mid-epoch by the time interval or a signal).
    ``status`` is ``running``, ``completed`` or ``diverged``.
    """

    epoch: int = 0
    step: int = 0
    loss_sum: list[float] = field(default_factory=lambda: [0.0, 0.0])
    train_time: float = 0.0
    augment_state: torch.Tensor | None = None
    best_score: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    best_val: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    diverged: str | None = None
    emissions: dict[str, float] | None = None


class EarlyStopping:
    """Tracks the best validation ``monitor`` value; a run stops after ``patience``
    epochs without improving it."""

    def __init__(self, patience: int, monitor: str, mode: str) -> None:
        self.patience, self.monitor, self.mode = patience, monitor, mode

    def update(self, state: FitState, epoch: int, val_result: dict[str, float]) -> bool:
        """Record epoch ``epoch``'s validation; returns whether it is the new best."""
        score = val_result.get(self.monitor)
        if score is None:
            raise RadiologyNetError(
                f"fit: monitor {self.monitor!r} is not among the "
                f"validation values {sorted(val_result)}"
            )
        if _improved(score, state.best_score, self.mode):
            state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
            state.best_val = dict(val_result)
            return True
        state.bad_epochs += 1
        return False

    def should_stop(self, state: FitState) -> bool:
        """Whether the patience is used up."""
        return state.bad_epochs >= self.patience


class Preemption:
    """While active, SIGTERM and SIGINT only set :attr:`requested`; the trainer finishes
    its step, writes the checkpoint and stops (:class:`TrainingInterrupted`). A second
    SIGINT (Ctrl-C twice) raises ``KeyboardInterrupt`` at once. Handlers are installed
    only in the main thread and restored on exit."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def handle(self, signum: int, frame: Any = None) -> None:
        """The signal handler: remember the request; a second Ctrl-C stops at once."""
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class Checkpointer:
    """Writes the resume state to ``out/checkpoint.pt`` when ``interval_s`` seconds passed
    since the last write (checked after every step), at the end and on pre-emption; the
    best weights go to their own file, written only when they changed."""

    def __init__(self, out: Path | None, interval_s: float) -> None:
        self.out = out
        self.path = out / CHECKPOINT_NAME if out is not None else None
        self.interval_s = interval_s
        self.writes = out is not None and ddp.is_main()
        self.last = time.monotonic()
        self.best_file: str | None = None

    def due(self) -> bool:
        """Whether the interval has passed since the last write (on the writing rank)."""
        return self.writes and time.monotonic() - self.last >= self.interval_s

    def load(self, config: TrainConfig) -> dict[str, Any] | None:
        """The saved checkpoint, or ``None``; refuses one written with other settings."""
        if self.path is None or not self.path.is_file():
            return None
        saved = load_checkpoint(self.path)
        changes = config_changes(saved.get("config", {}), config.to_dict())
        if changes:
            raise StaleRunError(
                f"{self.path} was written with other settings ({'; '.join(changes)}); "
                "resume with the same settings, or choose a new output folder (or delete "
                "it: --overwrite)."
            )
        self.best_file = saved.get("best_file")
        return saved

    def save(self, run: _Run, state: FitState) -> None:
        """Write the checkpoint (and the best weights when they changed). Under DDP every
        rank calls it: each rank's RNG and augmentation states and partial loss sums
        are gathered, so a run resumed mid-epoch draws and reports on every rank what it
        would have."""
        self.last = time.monotonic()
        own = {
            "rng": rng_state(),
            "augment": state.augment_state,
            "loss_sum": list(state.loss_sum),
        }  # this rank's share, mid-epoch
        ranks = [own]
        if ddp.world_size() > 1:
            ranks = [None] * ddp.world_size()
            dist.all_gather_object(ranks, own)
        if not self.writes or self.out is None or self.path is None:
            return
        if (
            run.best_weights is not None
            and state.best_epoch
            and self.best_file != best_weights_name(state.best_epoch)
        ):
            self.best_file = save_best_weights(self.out, state.best_epoch, run.best_weights)
        save_checkpoint(
            self.path,
            {
                "model": run.model.state_dict(),
                "optimizer": run.opt.state_dict(),
                "scheduler": run.sched.state_dict() if run.sched is not None else None,
                "config": run.config.to_dict(),
                "best_file": self.best_file,
                "state": asdict(state),
                "ranks": ranks,
            },
        )
        prune_best_weights(self.out, keep=self.best_file)


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


def _restore(run: _Run, saved: dict[str, Any], checkpointer: Checkpointer) -> FitState:
    run.model.load_state_dict(saved["model"])
    run.opt.load_state_dict(saved["optimizer"])
    if run.sched is not None and saved.get("scheduler") is not None:
        run.sched.load_state_dict(saved["scheduler"])
    if checkpointer.best_file is not None and checkpointer.out is not None:
        run.best_weights = load_best_weights(checkpointer.out, checkpointer.best_file)
    state = FitState(**saved["state"])
    ranks = saved.get("ranks") or []
    if len(ranks) == ddp.world_size():  # the same number of processes: each its own
        own = ranks[ddp.rank()]
        set_rng_state(own["rng"])
        state.augment_state, state.loss_sum = own["augment"], list(own["loss_sum"])
    else:
        set_rng_state(saved["rng"])
    return state


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
) -> FitResult:
    """Fine-tune ``model`` on ``train``, select on ``val``, score the best weights on
    ``test``.

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

    Returns:
        a :class:`FitResult`; ``model`` holds the best weights afterwards. A run whose
        loss became NaN/inf has ``status == "diverged"``.

    Raises:
        TrainingInterrupted: on SIGTERM/SIGINT, after the current step and its checkpoint.
        StaleRunError: ``out_dir`` holds the checkpoint of a run with other settings.
    """
    if isinstance(test, TrainConfig):
        raise TypeError("fit(model, train, val, test, config): pass the config as config=")
    config = config if config is not None else TrainConfig()
    if len(train) == 0 or len(val) == 0:
        raise RadiologyNetError("fit: the training and validation sets must not be empty")
    out = Path(out_dir) if out_dir is not None else None
    run = _setup(model, config, loss, metrics, batch_transform, callbacks)
    checkpointer = Checkpointer(out, config.checkpoint_interval_s)
    saved = checkpointer.load(config) if config.resume else None
    state = _restore(run, saved, checkpointer) if saved is not None else FitState()
    tracker = _start_emissions(out) if config.track_emissions and ddp.is_main() else None
    patience_ran_out = _train_epochs(run, state, train, val, checkpointer, out)
    stopped_early = state.status == "running" and patience_ran_out and state.epoch < config.epochs
    if run.best_weights is not None:
        model.load_state_dict(run.best_weights)
    test_result, test_s = _test(run, state, test)
    timing = {"test_s": test_s}
    if tracker is not None:
        state.emissions = _stop_emissions(tracker, state.emissions)
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
