"""What a weight expects as input, as data: :class:`Preprocessing`, its timm
``pretrained_cfg`` form both ways, and the per-channel statistics for a model with another
number of input channels. No torch: ``radiologynet.transforms`` builds the tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from radiologynet.errors import InvalidArgumentError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What a weight expects as input.

    Images are grayscale, letterboxed to ``input_size`` (longest side resized with
    ``interpolation``, aspect kept, centred zero padding), scaled to [0, 1], repeated to
    three channels when ``grayscale_to_rgb``, then normalised with ``mean``/``std`` when
    those are not ``None``. Without ``letterbox`` (timm's ``crop_mode="center"``) the
    shorter side goes to ``floor(input_size / crop_pct)`` and the centre is cropped.
    """

    input_size: int
    interpolation: str = "bilinear"
    letterbox: bool = True
    grayscale_to_rgb: bool = True
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    crop_pct: float = 1.0

    def timm_cfg(self) -> dict[str, object]:
        """The keys of a timm ``pretrained_cfg`` that describe this preprocessing."""
        return {
            "input_size": (3, self.input_size, self.input_size),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "crop_mode": "border" if self.letterbox else "center",
            "mean": tuple(self.mean) if self.mean is not None else (0.0, 0.0, 0.0),
            "std": tuple(self.std) if self.std is not None else (1.0, 1.0, 1.0),
        }

    @classmethod
    def from_timm_cfg(cls, cfg: Mapping[str, Any]) -> Preprocessing:
        """A timm ``pretrained_cfg`` (or a weights folder's ``config.json`` content holding
        one) as a :class:`Preprocessing`: input size, interpolation, crop mode
        (``"border"`` is the letterbox), crop_pct and mean/std (mean 0 / std 1 is read as "no
        normalisation"). Missing keys take timm's defaults."""
        cfg = cfg.get("pretrained_cfg", cfg)
        if not isinstance(cfg, Mapping):
            raise InvalidArgumentError(
                f"pretrained_cfg must be a mapping, got {type(cfg).__name__}"
            )
        input_size = cfg.get("input_size") or (3, 224, 224)
        height, width = int(input_size[-2]), int(input_size[-1])
        if height != width:
            raise InvalidArgumentError(
                "only square inputs are supported; pretrained_cfg input_size is "
                f"{tuple(input_size)}"
            )
        mean, std = cfg.get("mean"), cfg.get("std")
        identity = (
            mean is not None
            and std is not None
            and all(float(v) == 0.0 for v in mean)
            and all(float(v) == 1.0 for v in std)
        )
        if identity:
            mean = std = None
        return cls(
            input_size=height,
            interpolation=str(cfg.get("interpolation") or "bicubic"),
            letterbox=cfg.get("crop_mode") == "border",
            grayscale_to_rgb=True,
            mean=tuple(float(v) for v in mean) if mean is not None else None,  # type: ignore
            std=tuple(float(v) for v in std) if std is not None else None,  # type: ignore
            crop_pct=float(cfg.get("crop_pct") or 0.875),
        )


def channel_mean_std(
    mean: Sequence[float] | None, std: Sequence[float] | None, in_chans: int
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """A weight's mean/std for a model with ``in_chans`` input channels (``None``: no
    normalisation).

    A grey image repeated to three channels and normalised per channel meets the RGB
    filters ``W_c`` as ``sum_c W_c (x - m_c) / s_c``. A one-channel model made with
    ``in_chans=1`` (timm sums the filters: ``W = sum_c W_c``) sees ``W (x - m) / s``. The
    two agree exactly when the RGB filters are equal if ``1 / s`` is the mean of
    ``1 / s_c`` and ``m / s`` the mean of ``m_c / s_c``, which is the rule used: for ImageNet,
    ``s = 0.22598``, ``m = 0.44880`` (pixel 128 -> 0.2352; taking the red channel's
    statistics gives 0.0741, wrong by a factor of three). timm itself leaves three values in
    ``pretrained_cfg`` and its transform fails on a one-channel model.

    Raises:
        InvalidArgumentError: statistics whose length fits neither 1, 3 nor ``in_chans``.
    """
    if mean is None and std is None:
        return None
    means = [float(v) for v in (mean if mean is not None else [0.0])]
    stds = [float(v) for v in (std if std is not None else [1.0])]
    if len(means) != len(stds):
        if len(means) == 1:
            means = means * len(stds)
        elif len(stds) == 1:
            stds = stds * len(means)
        else:
            raise InvalidArgumentError(
                f"mean {tuple(means)} and std {tuple(stds)} differ in length"
            )
    if any(s <= 0 for s in stds):
        raise InvalidArgumentError(f"std must be positive; got {tuple(stds)}")
    if len(means) == in_chans:
        return tuple(means), tuple(stds)
    if len(means) == 1:
        return tuple(means * in_chans), tuple(stds * in_chans)
    if in_chans == 1:
        inv = sum(1.0 / s for s in stds) / len(stds)
        ratio = sum(m / s for m, s in zip(means, stds, strict=True)) / len(stds)
        return (ratio / inv,), (1.0 / inv,)
    raise InvalidArgumentError(
        f"mean/std have {len(means)} values but the model takes "
        f"{in_chans} input channels; pass {in_chans} values"
    )
