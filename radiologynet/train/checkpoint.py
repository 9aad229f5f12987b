"""Atomic, resumable training state: model, optimiser, scheduler, early-stopping state,
history, the position inside the epoch and the RNG states of torch, numpy and Python.

The best weights are not copied into every checkpoint: they live in their own file,
``best-e<epoch>.safetensors`` next to ``checkpoint.pt``, written only when they changed
since the last checkpoint, and the checkpoint names the file it goes with. Every write is
atomic, and a failed one (full disk, read-only folder) raises
:class:`~radiologynet.errors.OutputWriteError` naming the file, leaving the previous
checkpoint intact."""

from __future__ import annotations

import contextlib
import errno
import io
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radiologynet._atomic import atomic_write
from radiologynet.errors import CheckpointFormatError, OutputWriteError

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
