"""Backbone weights for U-Net encoders: the zoo's classification files, loaded by timm.

A U-Net encoder uses the same converted ``model.safetensors`` as the classification model
(timm layout). timm itself loads it into its ``features_only`` encoder (the whole network
is built, the weights loaded with the first convolution adapted to ``in_chans`` and the
head dropped, then the feature wrapper taken), whether the encoder is built by timm (the
paper's decoder) or by segmentation-models-pytorch's ``tu-`` encoders: both receive the
same ``pretrained_cfg_overlay`` that :func:`radiologynet.create_model` uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radiologynet.models import _hub as hub
from radiologynet.models._builder import pretrained_cfg_for, resolve_checked
from radiologynet.models._folder import is_pickle, pickle_refused
from radiologynet.models._hub import ResolvedWeights
from radiologynet.models._registry import Architecture
from radiologynet.models._weights import WeightRecord

WeightsArg = str | Path | WeightRecord | None


def weights_file(weights: str | Path) -> Path:
    """The safetensors file of a weights folder (``config.json`` + ``model.safetensors``)
    or of a path that already is the file.

    Raises:
        WeightsNotFoundError: when neither exists.
        CheckpointFormatError: a pickled checkpoint (it is read only by the converter).
    """
    path = Path(weights).expanduser()
    if path.is_file():
        if is_pickle(path):
            raise pickle_refused(str(path))
        return path
    _, file = hub.read_weights_folder(path, require_config=False)
    return file


def resolve_backbone_weights(arch: Architecture, weights: WeightsArg) -> ResolvedWeights | None:
    """The classification weights file (timm layout) that ``weights`` names for ``arch``
    (read as :func:`radiologynet.models._weights.resolve_weights_arg` reads every ``weights=``),
    checked to be intact and of ``arch``; ``None`` for random initialisation.

    Raises:
        UnknownWeightsError: a tag that does not exist for ``arch``, or weights of another
            architecture.
        WeightsNotReleasedError: a tag the authors never published.
        WeightsNotFoundError: a path without weights.
        CheckpointFormatError: a damaged file, or tensors of another architecture.
    """
    return resolve_checked(arch, weights)


def encoder_kwargs(
    arch: Architecture, resolved: ResolvedWeights | None, drop_path_rate: float = 0.0
) -> dict[str, Any]:
    """Keyword arguments for ``timm.create_model`` (or an smp ``tu-`` encoder) that build
    ``arch`` exactly, with stochastic depth ``drop_path_rate`` (timm's, for the families
    that have it), and make timm load ``resolved``."""
    kwargs: dict[str, Any] = {**arch.model_args_dict}
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    if resolved is not None:
        kwargs["pretrained_cfg_overlay"] = pretrained_cfg_for(arch, resolved)
    return kwargs
