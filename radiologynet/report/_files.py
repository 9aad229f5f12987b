"""Atomic file writes for the report package (temp file in the same folder, then replace)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from radiologynet._atomic import atomic_write, atomic_write_text


def write_atomic(path: str | Path, write: Callable[[IO[Any]], None], *,
                 binary: bool = False) -> Path:
    """Create ``path`` through ``write(file)`` on a temp file in the same folder, then
    ``os.replace`` it into place; returns ``path``."""
    def to_temp(tmp: str) -> None:
        with open(tmp, "wb" if binary else "w",
                  **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
    return atomic_write(path, to_temp)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_text(path, text)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(data, indent=2, default=_default) + "\n")


def _default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
