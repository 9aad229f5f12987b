"""Atomic, shareable file writes: the place that writes a file (or a folder) through a
temp beside it and ``os.replace``-s it into place, so readers never see a half-written one.

Everything written here gets the permissions a plain ``open()``/``mkdir()`` would give under
the process umask (0644 files and 0755 folders under the usual umask 022), whatever the
writer did itself: ``tempfile.mkstemp``/``mkdtemp`` make 0600/0700, and safetensors writes
0600 even over an existing 0644 file, so the mode is set *after* the writer ran.

API (every writer of shared files goes through one of these):

- :func:`atomic_write` ``(path, writer)``: ``writer(tmp: str)`` fills a temp file.
- :func:`atomic_write_text` / :func:`atomic_write_bytes` / :func:`atomic_write_json`.
- :func:`atomic_write_stream` ``(path, write)``: ``write(file)`` fills an open temp file
  (a figure's ``savefig``, PIL's ``save``, ``torch.save``).
- :func:`atomic_path` ``(path)``: context manager yielding the temp :class:`Path`.
- :func:`atomic_dir` ``(path)``: context manager yielding a temp folder that replaces
  ``path`` as a whole (a weights folder, a bundle entry).
- :func:`temp_path_for` + :func:`commit`: the two halves of :func:`atomic_path`, for code
  that cannot be a ``with`` block (``commit`` sets the mode and renames).
- :func:`make_shared_dir` ``(path)``: ``mkdir -p`` with folder permissions.
- :func:`check_target` ``(path, kind)``: refuse a target that is not ours to replace.

Nothing that is not ours is replaced: a target that exists and is not a regular file (a
device, a FIFO, a socket, a folder where a file is written; a file where a folder is) is
refused with :class:`~radiologynet.errors.OutputWriteError` before anything is written,
and parent folders are created only through folders (never over a file).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

from radiologynet.errors import OutputWriteError

TEMP_SUFFIX = ".tmp"

_KIND_NAMES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISREG, "a regular file"),
)


def kind_of(mode: int) -> str:
    """What an ``st_mode`` is, in words (``"a FIFO (named pipe)"``, ``"a folder"``)."""
    return next((name for test, name in _KIND_NAMES if test(mode)), "a special file")


def check_target(path: str | os.PathLike[str], kind: Literal["file", "dir"] = "file") -> Path:
    """Refuse to write ``path`` when something that is not ours stands there: for a file,
    anything but a regular file (a device, FIFO, socket or folder); for a folder, anything
    but a folder. Symbolic links are judged by what they point to. Returns ``path``.

    Raises:
        OutputWriteError: naming the path, what stands there and what to do.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as err:  # a dangling path component, a loop, no permission
        raise OutputWriteError(f"Cannot write {path}: {err.strerror or err}.") from err
    ok = stat.S_ISREG(mode) if kind == "file" else stat.S_ISDIR(mode)
    if not ok:
        expected = "a file" if kind == "file" else "a folder"
        raise OutputWriteError(
            f"Refusing to write {path}: it is {kind_of(mode)}, and {expected} is written "
            "there; it is not replaced. Choose another output path."
        )
    return path


def _umask() -> int:
    try:  # Linux >= 4.7: read it without changing it (os.umask would race other threads)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new shared file gets: ``0o666`` less the umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode a new shared folder gets: ``0o777`` less the umask (0755 under umask 022)."""
    return 0o777 & ~_umask()


def make_shared_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and any missing parents with :func:`dir_mode` (existing folders are
    left as they are); returns ``path`` as a :class:`Path`."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        if os.path.lexists(folder):
            check_target(folder, "dir")
        missing.append(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputWriteError(f"Cannot create the folder {path}: {err.strerror or err}.") from err
    mode = dir_mode()
    for folder in missing:
        os.chmod(folder, mode)
    return path


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """An empty temp file beside ``path`` (``.{name}.*.tmp``, its folder created if
    missing), to be filled and then passed to :func:`commit` (or unlinked on failure)."""
    path = check_target(path, "file")
    make_shared_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    return Path(tmp)


def commit(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Give the filled temp file ``tmp`` the shared file mode and rename it over ``path``;
    returns ``path`` as a :class:`Path`.

    Raises:
        OutputWriteError: something other than a regular file now stands at ``path``.
    """
    check_target(path, "file")
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp file path beside ``path``; when the block ends without an exception the
    temp becomes ``path`` (shared mode, one rename), otherwise it is removed and ``path``
    keeps its old content."""
    tmp = temp_path_for(path)
    try:
        yield tmp
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike[str], writer: Callable[[str], object]) -> Path:
    """Create ``path`` atomically: ``writer(tmp)`` writes a temp file (its path, a str)
    made in the same folder (``.{name}.*.tmp``, created with the parent folder if
    missing), which then gets the shared file mode (0644 under umask 022, whatever the
    writer left) and is renamed over ``path``. On any exception the temp file is removed,
    ``path`` keeps its old content and the exception propagates. Returns ``path``."""
    with atomic_path(path) as tmp:
        writer(str(tmp))
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation); returns the path."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)

    return atomic_write(path, write)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_stream(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], object], *, binary: bool = True
) -> Path:
    """Create ``path`` atomically through ``write(file)`` on an open temp file (binary, or
    UTF-8 text with ``binary=False``); returns the path."""

    def to_temp(tmp: str) -> None:
        if binary:
            with open(tmp, "wb") as handle:
                write(handle)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                write(handle)

    return atomic_write(path, to_temp)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (``indent``, trailing newline; numpy scalars and paths as
    their values) to ``path`` atomically; returns the path."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def share_tree(root: str | os.PathLike[str]) -> None:
    """Give ``root``, every folder below it and every file in it the shared modes
    (files that were executable keep their execute bits, as with the folder mode)."""
    files, folders = file_mode(), dir_mode()
    os.chmod(root, folders)
    for current, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(current, name), folders)
        for name in filenames:
            target = os.path.join(current, name)
            executable = os.stat(target).st_mode & stat.S_IXUSR
            os.chmod(target, folders if executable else files)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp folder beside ``path``; when the block ends without an exception
    it gets the shared modes throughout (:func:`share_tree`) and replaces ``path`` (an
    existing ``path`` is moved aside first and removed after). On an exception the temp
    folder is removed and ``path`` is left as it was."""
    path = check_target(path, "dir")
    make_shared_dir(path.parent)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX))
    try:
        yield staging
        share_tree(staging)
        old = None
        check_target(path, "dir")
        if path.exists() or path.is_symlink():
            old = (
                Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
                / "old"
            )
            os.replace(path, old)
        os.replace(staging, path)
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
