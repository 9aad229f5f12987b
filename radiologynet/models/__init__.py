"""The zoo core: architectures, weight records, weights folders, the Hub, conversion from
the authors' release, model cards, and the build path (:func:`create_model`,
:func:`create_unet`).

Its private modules import one way, as timm's ``models/_*`` do: ``_preprocessing`` <- ``_registry``
(the ten architectures) <- ``_weights`` (the weight records and their lookup) <-
``_card`` <- ``_folder`` (the weights-folder format) <- ``_convert`` <- ``_hub`` <-
``_builder`` <- ``unet``. Importing this package loads the
records only; the names that need torch load on first use (PEP 562), so
``import radiologynet`` and ``radiologynet list`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from radiologynet.models._registry import (
    ARCHITECTURES,
    Architecture,
    get_architecture,
    list_models,
)
from radiologynet.models._weights import (
    Preprocessing,
    WeightRecord,
    get_weights,
    is_random_init,
    list_weights,
    register_weights,
)

if TYPE_CHECKING:
    from radiologynet.models._builder import create_model
    from radiologynet.models._convert import convert_checkpoint
    from radiologynet.models._folder import read_weights_folder, write_weights_folder
    from radiologynet.models._hub import bundle_weight, download
    from radiologynet.models.unet import UNet, create_unet, load_unet, predict_mask

#: Public names whose modules import torch: loaded on first use.
_LAZY = {
    "create_model": "radiologynet.models._builder",
    "create_unet": "radiologynet.models.unet",
    "load_unet": "radiologynet.models.unet",
    "predict_mask": "radiologynet.models.unet",
    "UNet": "radiologynet.models.unet",
    "download": "radiologynet.models._hub",
    "bundle_weight": "radiologynet.models._hub",
    "read_weights_folder": "radiologynet.models._folder",
    "convert_checkpoint": "radiologynet.models._convert",
    "write_weights_folder": "radiologynet.models._folder",
}

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Preprocessing",
    "UNet",
    "WeightRecord",
    "bundle_weight",
    "convert_checkpoint",
    "create_model",
    "create_unet",
    "download",
    "get_architecture",
    "get_weights",
    "is_random_init",
    "list_models",
    "list_weights",
    "load_unet",
    "predict_mask",
    "read_weights_folder",
    "register_weights",
    "write_weights_folder",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
