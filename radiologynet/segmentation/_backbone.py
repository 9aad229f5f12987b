"""Backbone weights for U-Net encoders: the zoo's classification files, loaded into timm
``features_only`` encoders.

A U-Net encoder uses the same converted ``model.safetensors`` as the classification model
(timm layout). timm's feature wrappers rename some modules (VGG's ``features.0`` becomes
``features_0``) and drop the head; :func:`load_backbone` matches the tensors by name with
dots and underscores treated alike, so one rule serves every architecture.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from timm.models import adapt_input_conv
from torch import nn

from radiologynet import hub
from radiologynet.errors import (
    CheckpointFormatError,
    WeightsNotFoundError,
    WeightsNotReleasedError,
)
from radiologynet.registry import Architecture
from radiologynet.weights import RANDOM_TAGS, WeightRecord, get_weights

WeightsArg = str | Path | WeightRecord | None


def _is_path(weights: str | Path) -> bool:
    if isinstance(weights, Path):
        return True
    return Path(weights).exists() or "/" in weights or weights.endswith(
        (".safetensors", *hub.ORIGINAL_SUFFIXES))


def weights_file(weights: str | Path) -> Path:
    """The safetensors file of a weights folder (``config.json`` + ``model.safetensors``)
    or of a path that already is the file.

    Raises:
        WeightsNotFoundError: when neither exists.
    """
    path = Path(weights).expanduser()
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise WeightsNotFoundError(
            f"No weights file at {path}. Pass a weights folder holding model.safetensors "
            "(as written by `radiologynet convert`) or the .safetensors file itself."
        )
    return path


def resolve_backbone_weights(
    arch: Architecture, weights: WeightsArg
) -> tuple[dict[str, torch.Tensor] | None, WeightRecord | None]:
    """The classification state dict (timm layout) that ``weights`` names for ``arch``.

    Returns:
        ``(state_dict, record)``; ``(None, None)`` for random initialisation, ``record`` is
        ``None`` for a user's own file or folder.

    Raises:
        UnknownWeightsError: a tag that does not exist for ``arch``.
        WeightsNotReleasedError: a tag the authors never published.
        WeightsNotFoundError: a path without weights.
        CheckpointFormatError: a folder whose config.json names another architecture.
    """
    if weights is None or (isinstance(weights, str) and weights.lower() in RANDOM_TAGS):
        return None, None
    if isinstance(weights, WeightRecord):
        record = weights
    elif _is_path(weights):
        resolved = hub.resolve_path(weights, arch)
        if resolved.arch.name != arch.name:
            raise CheckpointFormatError(
                f"Weights {weights} are for {resolved.arch.name}, not {arch.name}: pass "
                f"create_unet({resolved.arch.name!r}, weights=...) or weights of "
                f"{arch.name}.")
        return load_file(str(resolved.file)), None
    else:
        record = get_weights(arch.name, tag=str(weights))
    if not record.released:
        raise WeightsNotReleasedError(
            f"{record.full_name} is described in the paper but was never released by its "
            "authors. Use weights='radiologynet' or 'imagenet', or a path to your own "
            "weights folder."
        )
    return load_file(str(hub.resolve_record(record).file)), record


def adapt_first_conv(
    state_dict: dict[str, torch.Tensor], first_conv: str, in_chans: int
) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` whose first convolution takes ``in_chans`` channels (timm's
    rule: RGB filters summed for one channel, repeated and rescaled for more)."""
    key = f"{first_conv}.weight"
    out = dict(state_dict)
    if key in out and out[key].shape[1] != in_chans:
        out[key] = adapt_input_conv(in_chans, out[key])
    return out


def _normalise(key: str) -> str:
    return key.replace(".", "_")


def load_backbone(features: nn.Module, state_dict: dict[str, torch.Tensor],
                  source: str = "the weights") -> None:
    """Load a classification state dict into a timm ``features_only`` model, strictly.

    Every tensor of ``features`` must be found (by name, dots and underscores alike) with
    the same shape; the head and other tensors the encoder lacks are ignored.

    Raises:
        CheckpointFormatError: tensors missing or of the wrong shape; the message names
            them and ``source``.
    """
    by_name: dict[str, str] = {}
    for key in state_dict:
        by_name.setdefault(_normalise(key), key)
    matched: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    wrong: list[str] = []
    for key, tensor in features.state_dict().items():
        src = by_name.get(_normalise(key))
        if src is None:
            missing.append(key)
        elif state_dict[src].shape != tensor.shape:
            wrong.append(f"{src} {tuple(state_dict[src].shape)} != {tuple(tensor.shape)}")
        else:
            matched[key] = state_dict[src]
    if missing or wrong:
        detail = "; ".join(
            ([f"missing: {', '.join(missing[:5])}"] if missing else [])
            + ([f"shape mismatch: {', '.join(wrong[:5])}"] if wrong else [])
        )
        raise CheckpointFormatError(
            f"{source} do not fit this encoder ({detail}). Pass weights converted for the "
            "same architecture (timm layout, e.g. from `radiologynet convert`)."
        )
    features.load_state_dict(matched, strict=True)
