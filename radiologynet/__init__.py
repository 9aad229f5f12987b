"""RadiologyNET foundation models for medical-imaging transfer learning, built on timm."""

from radiologynet._version import __version__
from radiologynet.models import create_model
from radiologynet.registry import ARCHITECTURES, Architecture, get_architecture, list_models
from radiologynet.weights import (
    Preprocessing,
    WeightRecord,
    get_weights,
    list_weights,
    register_weights,
)

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Preprocessing",
    "WeightRecord",
    "__version__",
    "create_model",
    "create_unet",
    "get_architecture",
    "get_weights",
    "list_models",
    "list_weights",
    "register_weights",
]


def __getattr__(name: str):
    # segmentation-models-pytorch is imported only when a U-Net is asked for
    if name == "create_unet":
        from radiologynet.segmentation import create_unet

        return create_unet
    raise AttributeError(f"module 'radiologynet' has no attribute {name!r}")
