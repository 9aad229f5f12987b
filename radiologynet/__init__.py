"""RadiologyNET foundation models for medical-imaging transfer learning, built on timm.

``import radiologynet`` loads only the registry and the weight records; torch, timm and
segmentation-models-pytorch are imported the first time a model is built
(:func:`create_model`, :func:`create_unet`), so listing the zoo and the command line's
``--help`` start in a fraction of a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radiologynet._version import __version__
from radiologynet.models._registry import ARCHITECTURES, Architecture, get_architecture, list_models
from radiologynet.models._weights import (
    Preprocessing,
    WeightRecord,
    get_weights,
    list_weights,
    register_weights,
)

if TYPE_CHECKING:
    from radiologynet.models import create_model
    from radiologynet.models.unet import create_unet

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Preprocessing",
    "WeightRecord",
    "__version__",
    "create_model",
    "create_unet",
    "embed",
    "get_architecture",
    "get_weights",
    "list_models",
    "list_weights",
    "register_weights",
]

#: Public names whose modules import torch: loaded on first use (PEP 562). ``embed``
#: lives in :mod:`radiologynet.inference` (above this floor); it is re-exported for
#: convenience, as ``timm.create_model`` is, and importing it here imports nothing early.
_LAZY = {
    "create_model": "radiologynet.models",
    "create_unet": "radiologynet.models",
    "embed": "radiologynet.inference.embed",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'radiologynet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
