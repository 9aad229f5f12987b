"""How random weights and new heads start: timm's initialisation, or the authors'
(torchvision's).

The paper's runs built torchvision networks: a random network took torchvision's own
initialisation (ResNet blocks end in a BatchNorm whose gamma is 1; timm zero-initialises
it), and every new classification head was a fresh ``nn.Linear`` (PyTorch's default
initialisation, about +-0.03 for MobileNetV3's 1024/1280 features; timm's MobileNetV3 head
starts at +-1/sqrt(num_classes), about 30 times larger). ``init_scheme="torchvision"``
reproduces this: the random network is torchvision's, built and initialised by
torchvision and converted onto the timm model by the zoo's checkpoint converter
(:func:`radiologynet.models._convert.to_timm_state_dict`, the one that converts the
authors' checkpoints bit-exactly); a new head is re-initialised as a fresh ``nn.Linear``.
"""

from __future__ import annotations

import torch
from torch import nn

from radiologynet.errors import InvalidArgumentError
from radiologynet.models._registry import INIT_SCHEMES, Architecture


def check_init_scheme(init_scheme: str) -> str:
    """``init_scheme`` if it is one of :data:`INIT_SCHEMES`.

    Raises:
        InvalidArgumentError: any other value (the message lists the valid ones).
    """
    if init_scheme not in INIT_SCHEMES:
        raise InvalidArgumentError(
            f"init_scheme must be one of {', '.join(INIT_SCHEMES)}, got {init_scheme!r}"
        )
    return init_scheme


def torchvision_random_state(arch: Architecture, in_chans: int = 3) -> dict[str, torch.Tensor]:
    """A freshly initialised torchvision ``arch`` (drawn from torch's global random
    generator, as the authors' ``torchvision.models.<name>(weights=None)``), converted to
    the timm model's keys, without its classification head.

    With ``in_chans`` other than 3 the first convolution is adapted as timm adapts
    pretrained weights (:func:`timm.models.adapt_input_conv`: summed for one channel).
    """
    import torchvision
    from timm.models import adapt_input_conv

    from radiologynet.models._convert import to_timm_state_dict

    # inception_v3 without weights initialises itself (init_weights=True) after a warning
    # that the default may change; the authors' torchvision 0.15.2 did the same
    extra = {"init_weights": True} if arch.torchvision_name == "inception_v3" else {}
    network = torchvision.models.get_model(arch.torchvision_name, weights=None, **extra)
    converted = to_timm_state_dict(network.state_dict(), arch)
    body = {k: v for k, v in converted.items() if not k.startswith(f"{arch.classifier}.")}
    first = f"{arch.first_conv}.weight"
    if in_chans != 3:
        body[first] = adapt_input_conv(in_chans, body[first])
    return body


def apply_torchvision_init(
    model: nn.Module,
    arch: Architecture,
    body: dict[str, torch.Tensor] | None,
    *,
    new_head: bool,
) -> None:
    """Give ``model`` (the timm model of ``arch``) the authors' initialisation in place:
    ``body`` (from :func:`torchvision_random_state`; ``None`` keeps the loaded weights),
    then, when ``new_head``, the classifier re-initialised as a fresh ``nn.Linear``.

    Raises:
        InvalidArgumentError: ``model`` is not the plain classification network of
            ``arch`` (e.g. built with ``features_only``).
    """
    if body is not None:
        missing, unexpected = model.load_state_dict(body, strict=False)
        stray = [k for k in missing if not k.startswith(f"{arch.classifier}.")]
        if stray or unexpected:
            raise InvalidArgumentError(
                f"init_scheme='torchvision' initialises the classification network of "
                f"{arch.name}; this model differs from it ({(stray + unexpected)[:3]}). "
                "Use init_scheme='timm' with features_only and other variants."
            )
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if new_head and isinstance(head, nn.Linear):
        with torch.no_grad():
            nn.Linear.reset_parameters(head)
