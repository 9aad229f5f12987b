"""The deprecations of 0.2, kept for one release: old names warn and lead to the new ones
(see CHANGELOG 0.2.0). Every deprecation message comes from here."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

#: The release that removes the deprecated names.
REMOVED_IN = "0.3"


def warn(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn (DeprecationWarning) that ``old`` is deprecated in favour of ``new``; the
    default ``stacklevel`` points at the code that called the deprecated name."""
    warnings.warn(
        f"{old} is deprecated and will be removed in radiologynet {REMOVED_IN}; use {new} instead.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def alias(old: str, new: str) -> ModuleType:
    """Import ``new`` and warn that ``old`` is its deprecated name; returns ``new``."""
    warn(old, new, stacklevel=4)
    return importlib.import_module(new)
