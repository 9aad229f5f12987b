"""Atomic file writes: the one place that writes a file through a temp file in the same
folder and ``os.replace``-s it into place, so readers never see a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike[str], writer: Callable[[str], object]) -> Path:
    """Create ``path`` atomically: ``writer(tmp)`` writes a temp file (its path, a str)
    made in the same folder (``.{name}.*.tmp``, created with the parent folder if
    missing), which is then made world-readable (0o644, not mkstemp's 0600) and renamed
    over ``path``. On any exception the temp file is removed, ``path`` keeps its old
    content and the exception propagates. Returns ``path`` as a :class:`Path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.close(fd)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from others
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str,
                      encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation); returns the path."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
    return atomic_write(path, write)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (``indent``, trailing newline) to ``path`` atomically;
    returns the path."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")
