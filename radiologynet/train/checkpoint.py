"""Atomic, resumable training state: model, optimiser, scheduler, early-stopping state,
best weights, history and the RNG states of torch, numpy and Python."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from radiologynet._atomic import atomic_write
from radiologynet._atomic import atomic_write_json as atomic_write_json  # re-exported
from radiologynet._atomic import atomic_write_text as atomic_write_text  # re-exported
from radiologynet.errors import CheckpointFormatError

CHECKPOINT_FORMAT = 1


def atomic_write_bytes(path: Path, writer: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` atomically (see :func:`radiologynet._atomic.atomic_write`);
    ``writer(binary_file)`` writes the content."""
    def to_temp(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            writer(fh)
    atomic_write(path, to_temp)


def rng_state() -> dict[str, Any]:
    """The RNG states of Python, numpy and torch (CPU and CUDA), storable with
    ``torch.save`` and loadable with ``weights_only=True``."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
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
    np.random.set_state((numpy["name"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the training state atomically (``checkpoint.pt``)."""
    payload = {"format": CHECKPOINT_FORMAT, **state, "rng": rng_state()}
    atomic_write_bytes(Path(path), lambda fh: torch.save(payload, fh))


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
        raise CheckpointFormatError(f"{path}: unknown checkpoint format; delete it to restart "
                                    "the run.")
    return state
