"""Old module names kept for one release as deprecated aliases (see CHANGELOG 0.2.0)."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType


def alias(old: str, new: str) -> ModuleType:
    """Import ``new`` and warn that ``old`` is its deprecated name; returns ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed in radiologynet 0.3; import {new} instead.",
        DeprecationWarning,
        stacklevel=3,
    )
    return importlib.import_module(new)
