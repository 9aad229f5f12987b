"""Where optional packages are imported.

The core (registry, weights, hub, conversion, io, transforms, models) needs only the
packages in ``pyproject.toml``'s ``dependencies``. Everything above it (training, the
paper's protocol, analysis, pretraining, volumes, emissions) imports its extra packages
through :func:`require`, which turns a missing package into one clear error naming the
``pip install "radiologynet[...]"`` command that brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from radiologynet.errors import MissingDependencyError

#: Top-level import name -> (pip distribution, the radiologynet extra that installs it).
OPTIONAL: dict[str, tuple[str, str]] = {
    "SimpleITK": ("SimpleITK", "volumes"),
    "torchmetrics": ("torchmetrics", "training"),
    "pandas": ("pandas", "training"),
    "sklearn": ("scikit-learn", "training"),
    "threadpoolctl": ("threadpoolctl", "training"),  # scikit-learn's own dependency
    "openpyxl": ("openpyxl", "training"),
    "scipy": ("scipy", "analysis"),
    "matplotlib": ("matplotlib", "analysis"),
    "pytorch_grad_cam": ("grad-cam", "analysis"),
    "pyarrow": ("pyarrow", "probe"),
    "onnx": ("onnx", "deploy"),
    "onnxruntime": ("onnxruntime", "deploy"),
    "onnxscript": ("onnxscript", "deploy"),
    "monai": ("monai", "deploy"),
    "codecarbon": ("codecarbon", "emissions"),
}


def install_hint(module: str) -> str:
    """The ``pip install`` command that brings the optional package ``module``."""
    top = module.split(".")[0]
    distribution, extra = OPTIONAL[top]
    return f'pip install "radiologynet[{extra}]"  (or: pip install {distribution})'


def require(module: str, feature: str | None = None) -> ModuleType:
    """Import the optional module ``module`` (e.g. ``"scipy.stats"``) and return it.

    Raises:
        MissingDependencyError: the package is not installed; the message names the
            feature that needs it and the extra to install.
    """
    top = module.split(".")[0]
    if top not in OPTIONAL:
        raise ValueError(f"{module!r} is not an optional dependency; add it to OPTIONAL first")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name is not None and err.name.split(".")[0] != top:
            raise  # the package is there but one of its own imports is broken: show that
        needed = f" by {feature}" if feature else ""
        raise MissingDependencyError(
            f"{OPTIONAL[top][0]} is needed{needed} but is not installed; "
            f"install it with: {install_hint(module)}"
        ) from err
