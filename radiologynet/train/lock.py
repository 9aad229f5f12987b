"""The run-folder lock: one run writes a run folder at a time.

A run takes ``<folder>/.lock`` (the folder is created then, once the run's data and model
are built) before it writes anything in the folder, and holds it until it ends (a run
replaced with ``--overwrite`` is emptied around it, :func:`empty_run_folder`); a second
run into the same folder is refused at once with
:class:`~radiologynet.errors.RunInProgressError` instead of overwriting the first. With the
lock held no other process can be writing the folder, so the temporaries found in it (a
killed run's half-written checkpoint, result or model folder) are removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from radiologynet._atomic import TEMP_SUFFIX, make_shared_dir
from radiologynet.errors import RunInProgressError

#: What the atomic writer leaves when killed: ``.<name>.*.tmp`` files and folders, and
#: ``.<name>.*.old`` folders of a replaced weights folder.
_TEMP_PATTERNS = (f".*{TEMP_SUFFIX}", ".*.old")
#: The lock files this process holds.
_HELD: set[str] = set()


LOCK_NAME = ".lock"


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of run folder ``folder``: ``<folder>/.lock``."""
    return Path(folder) / LOCK_NAME


def empty_run_folder(folder: Path) -> None:
    """Delete everything in ``folder`` but its lock (a run replaced by ``--overwrite``;
    deleting the lock would let another run take a new one while this one runs)."""
    for child in folder.iterdir():
        if child.name == LOCK_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def remove_run_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries a killed run left in ``folder`` and its subfolders one level
    down (``model/``); call it with the folder's lock held. Returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    places = [folder, *(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())]
    for place in places:
        for pattern in _TEMP_PATTERNS:
            for temp in place.glob(pattern):
                if temp.is_dir() and not temp.is_symlink():
                    shutil.rmtree(temp, ignore_errors=True)
                else:
                    temp.unlink(missing_ok=True)
                removed.append(temp)
    return removed


@contextmanager
def run_folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of run folder ``folder`` (created if missing) for the
    block, after removing a killed run's temporaries from it; yields the folder. Nested
    use in the process that holds it (the runner, then :func:`~radiologynet.train.fit`
    inside it) passes through.

    Raises:
        RunInProgressError: another process holds the lock (a run writing the folder now).
    """
    from filelock import FileLock, Timeout

    folder = Path(folder)
    key = os.path.abspath(lock_path(folder))
    if key in _HELD:  # this process holds it already (the runner, then fit inside it)
        yield folder
        return
    make_shared_dir(folder)
    lock = FileLock(key)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunInProgressError(
            f"{folder} is being written by another run now (it holds {lock_path(folder)}); "
            "wait for it to end, or choose another --out"
        ) from None
    _HELD.add(key)
    try:
        remove_run_temporaries(folder)
        yield folder
    finally:
        _HELD.discard(key)
        lock.release()
