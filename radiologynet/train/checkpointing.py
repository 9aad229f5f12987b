"""When and what :func:`~radiologynet.train.fit` checkpoints: :class:`Checkpointer` writes
the resume state on a time interval, at the end and on pre-emption (gathering every DDP
rank's RNG state), :func:`restore` puts a run back where its checkpoint left it. The file
format is :mod:`radiologynet.train.checkpoint`."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch.distributed as dist

from radiologynet.errors import StaleRunError
from radiologynet.train import distributed as ddp
from radiologynet.train.checkpoint import (
    CHECKPOINT_NAME,
    best_weights_name,
    load_best_weights,
    load_checkpoint,
    prune_best_weights,
    rng_state,
    save_best_weights,
    save_checkpoint,
    set_rng_state,
)
from radiologynet.train.config import TrainConfig, config_changes
from radiologynet.train.state import FitState

if TYPE_CHECKING:
    from radiologynet.train.loop import _Run


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


def restore(run: _Run, saved: dict[str, Any], checkpointer: Checkpointer) -> FitState:
    """Load ``saved`` into ``run`` (weights, optimiser, scheduler, best weights, this
    rank's RNG and augmentation states); returns the saved progress."""
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
