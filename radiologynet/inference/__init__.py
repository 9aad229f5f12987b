"""Using a trained model: predictions, embeddings and export.

Floor 4 (beside :mod:`radiologynet.train`): it builds on the zoo core, the readers and
transforms, and the data sources, and is used by the analysis layer and the CLI.

- :func:`load`: any weights (a run folder, a weights folder, a zoo name with a new head)
  as an eval-mode model with its preprocessing, class names and task kind;
- :func:`image_table`: the images of a file, a folder, a DICOMDIR or a CSV of paths;
- :class:`DecodedImages` / :func:`image_batches`: decoding in worker processes,
  overlapped with the forward pass, an error record per unreadable file.

The names load on first use (PEP 562): importing the package loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radiologynet.inference.loader import Batch, DecodedImages, image_batches
    from radiologynet.inference.loading import TASK_KINDS, LoadedModel, load
    from radiologynet.inference.sources import ImageTable, image_table

#: Public name -> the module that defines it.
_LAZY = {
    "Batch": "radiologynet.inference.loader",
    "DecodedImages": "radiologynet.inference.loader",
    "image_batches": "radiologynet.inference.loader",
    "LoadedModel": "radiologynet.inference.loading",
    "TASK_KINDS": "radiologynet.inference.loading",
    "load": "radiologynet.inference.loading",
    "ImageTable": "radiologynet.inference.sources",
    "image_table": "radiologynet.inference.sources",
}

__all__ = [
    "TASK_KINDS",
    "Batch",
    "DecodedImages",
    "ImageTable",
    "LoadedModel",
    "image_batches",
    "image_table",
    "load",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
