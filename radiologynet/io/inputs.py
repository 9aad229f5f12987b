"""What every reader checks about an input path before opening it: that it is a regular
file. A FIFO would block the read forever, a device can be endless or have side effects
when opened, and a socket is no file at all."""

from __future__ import annotations

import os
import stat
from os import PathLike
from pathlib import Path

from radiologynet.errors import ImageReadError

__all__ = ["check_regular_file", "regular_file_size"]

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def regular_file_size(path: str | PathLike[str], what: str = "") -> int:
    """The size in bytes of ``path`` (links followed) once it is known to be a regular
    file; nothing is opened, so a FIFO never blocks and a device is never touched.

    Args:
        path: the input.
        what: how the message names it when it is not the file asked for (``"the data
            file of volume.mhd"``); the path alone when empty.

    Raises:
        ImageReadError: missing, unreachable, or not a regular file (a FIFO, a device, a
            socket, a folder).
    """
    name = f"{path}" if not what else f"{path} ({what})"
    try:
        info = os.stat(path)
    except FileNotFoundError as err:
        raise ImageReadError(f"{name}: no such file.") from err
    except OSError as err:  # a loop of links, a name too long, no permission
        raise ImageReadError(f"{name}: cannot be opened ({err}).") from err
    if not stat.S_ISREG(info.st_mode):
        kind = next((label for test, label in _KINDS if test(info.st_mode)), "not a file")
        if stat.S_ISDIR(info.st_mode):
            raise ImageReadError(f"{name}: is a folder, not a file.")
        raise ImageReadError(
            f"{name}: is {kind}, not a regular file; refused (reading it could block or "
            "never end). Copy the image to a regular file first."
        )
    return info.st_size


def check_regular_file(path: str | PathLike[str], what: str = "") -> Path:
    """``path`` as a :class:`~pathlib.Path` once :func:`regular_file_size` accepts it."""
    regular_file_size(path, what)
    return Path(path)
