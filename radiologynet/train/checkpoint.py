"""Atomic, resumable training state and when it is written: model, optimiser,
scheduler, early-stopping state, history, the position inside the epoch and the RNG
states of torch, numpy and Python.

The best weights are not copied into every checkpoint: they live in their own file,
``best-e<epoch>.safetensors`` next to ``checkpoint.pt``, written only when they changed
since the last checkpoint, and the checkpoint names the file it goes with. Every write is
atomic, and a failed one (full disk, read-only folder) raises
:class:`~radiologynet.errors.OutputWriteError` naming the file, leaving the previous
checkpoint intact.

:class:`Checkpointer` writes the resume state for :func:`~radiologynet.train.fit` on a time
interval, at the end and on pre-emption (gathering every DDP rank's RNG state);
:func:`restore` puts a run back where its checkpoint left it."""

from __future__ import annotations

import contextlib
import errno
import io
import pickle
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from radiologynet._atomic import atomic_write
from radiologynet.errors import CheckpointFormatError, OutputWriteError, StaleRunError
from radiologynet.models._folder import pickle_refused, refused_global
from radiologynet.train import distributed as ddp
from radiologynet.train.config import TrainConfig, config_changes
from radiologynet.train.state import FitState


class CheckpointedRun(Protocol):
    """What a checkpoint holds of a run (:func:`radiologynet.train.fit`'s shared state
    has these): the model, its optimiser and scheduler, the configuration and the best
    weights so far."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    config: TrainConfig
    best_weights: dict[str, torch.Tensor] | None


CHECKPOINT_FORMAT = 2
CHECKPOINT_NAME = "checkpoint.pt"
BEST_PREFIX = "best-e"


@contextlib.contextmanager
def explain_write_errors(path: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into one
    :class:`~radiologynet.errors.OutputWriteError` line naming the file and the cause."""
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as err:
        raise OutputWriteError(f"cannot write {path}: {_cause(err)}") from err


def _cause(err: OSError) -> str:
    reason = err.strerror or str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{reason} (the disk is full or over quota); free space or choose another "
            "--out. Files written before are intact"
        )
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{reason} (the folder is read-only or not yours); choose a writable --out"
    return reason


def rng_state() -> dict[str, Any]:
    """The RNG states of Python, numpy and torch (CPU and CUDA), storable with
    ``torch.save`` and loadable with ``weights_only=True``."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the training state atomically (``checkpoint.pt``).

    It is serialised in memory first, so a failing disk surfaces as an ``OSError`` of the
    file write (reported by :func:`explain_write_errors`), not as torch's zip-writer error.
    """
    payload = {"format": CHECKPOINT_FORMAT, **state, "rng": rng_state()}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with explain_write_errors(Path(path)):
        atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(buffer.getbuffer()))


def best_weights_name(epoch: int) -> str:
    """The file holding the best weights of ``epoch`` (next to the checkpoint)."""
    return f"{BEST_PREFIX}{int(epoch)}.safetensors"


def save_best_weights(folder: Path, epoch: int, weights: dict[str, torch.Tensor]) -> str:
    """Write ``weights`` as ``folder/best-e<epoch>.safetensors``; returns the file name."""
    from safetensors.torch import save_file

    name = best_weights_name(epoch)
    tensors = {k: v.contiguous() for k, v in weights.items()}
    with explain_write_errors(Path(folder) / name):
        atomic_write(Path(folder) / name, lambda tmp: save_file(tensors, tmp))
    return name


def load_best_weights(folder: Path, name: str) -> dict[str, torch.Tensor]:
    """Read the best-weights file a checkpoint names.

    Raises:
        CheckpointFormatError: the file is missing or unreadable.
    """
    from safetensors.torch import load_file

    path = Path(folder) / name
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - missing, truncated or foreign: one answer
        raise CheckpointFormatError(
            f"{path}: the best weights this checkpoint refers to are unreadable ({err}). "
            f"Delete {Path(folder) / CHECKPOINT_NAME} to start the run again."
        ) from err


def prune_best_weights(folder: Path, keep: str | None) -> None:
    """Delete the ``best-e*.safetensors`` files of ``folder`` other than ``keep``."""
    for path in Path(folder).glob(f"{BEST_PREFIX}*.safetensors"):
        if path.name != keep:
            path.unlink(missing_ok=True)


def remove_checkpoint(folder: Path) -> None:
    """Delete the resume state of a run folder (``checkpoint.pt`` and its best weights)."""
    (Path(folder) / CHECKPOINT_NAME).unlink(missing_ok=True)
    prune_best_weights(folder, keep=None)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on the CPU).

    Raises:
        CheckpointFormatError: an unreadable or foreign file; the message says to delete it.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise pickle_refused(str(path), refused_global(err)) from err
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing
        raise CheckpointFormatError(
            f"{path}: not a readable radiologynet training checkpoint ({err}). Delete it to "
            "start the run again from scratch."
        ) from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointFormatError(
            f"{path}: unknown checkpoint format; delete it to restart the run."
        )
    return state


class Checkpointer:
    """Writes the resume state to ``out/checkpoint.pt`` when ``interval_s`` seconds passed
    since the last write (checked after every step), at the end and on pre-emption; the
    best weights go to their own file, written only when they changed.

    ``recorded``: settings outside the ``TrainConfig`` that a resume must match (the data
    and the network's input), written beside the config and compared as it is."""

    def __init__(
        self, out: Path | None, interval_s: float, recorded: Mapping[str, Any] | None = None
    ) -> None:
        self.out = out
        self.recorded = dict(recorded or {})
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
        changes += config_changes(saved.get("recorded", {}), self.recorded)
        if changes:
            raise StaleRunError(
                f"{self.path} was written with other settings ({'; '.join(changes)}); "
                "resume with the same settings, or choose a new output folder (or delete "
                "it: --overwrite)."
            )
        self.best_file = saved.get("best_file")
        return saved

    def save(self, run: CheckpointedRun, state: FitState) -> None:
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
                "recorded": self.recorded,
                "best_file": self.best_file,
                "state": asdict(state),
                "ranks": ranks,
            },
        )
        prune_best_weights(self.out, keep=self.best_file)


def restore(run: CheckpointedRun, saved: dict[str, Any], checkpointer: Checkpointer) -> FitState:
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
