"""torch.hub entry points: one per RadiologyNET architecture, generated from the registry.

    model = torch.hub.load("<this repo or github>", "resnet50", source="local",
                           weights="radiologynet", num_classes=4)

Each entry point forwards ``weights`` (a tag such as ``"radiologynet"`` or ``"imagenet"``,
a path, or ``None`` for random initialisation) and any timm keyword argument to
``radiologynet.create_model``.
"""

dependencies = ["torch", "timm", "huggingface_hub", "safetensors"]


def _entry_point(arch_name: str, original_name: str, input_size: int):
    def entry_point(weights=None, **kwargs):
        from radiologynet import create_model

        return create_model(arch_name, weights=weights, **kwargs)

    entry_point.__name__ = entry_point.__qualname__ = arch_name
    entry_point.__doc__ = (
        f"RadiologyNET {original_name} as a timm model (pretrained at {input_size} px).\n\n"
        "Args:\n"
        "    weights: 'radiologynet', 'imagenet', another tag of this architecture, a path "
        "to a weights folder or checkpoint, or None (random initialisation).\n"
        "    **kwargs: num_classes, in_chans, features_only, drop_rate, ... (see "
        "radiologynet.create_model and timm.create_model).\n"
    )
    return entry_point


def _register_entry_points() -> None:
    from radiologynet.models._registry import ARCHITECTURES

    for _arch in ARCHITECTURES.values():
        globals()[_arch.name] = _entry_point(_arch.name, _arch.original_name, _arch.input_size)


_register_entry_points()
