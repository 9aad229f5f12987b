"""The decode budget: how many pixels a reader may decode from one file, checked from the
file's header before any pixel is decoded, so that a small hostile file (a deflated DICOM
claiming 16384 x 16384 pixels, an APNG of a hundred 6000 x 6000 frames) is refused instead
of taking the machine's memory. Every reader of :mod:`radiologynet.io` uses this one check.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike

from radiologynet.errors import ImageReadError, InvalidArgumentError

__all__ = ["BUDGET_ENVIRONMENT", "DecodeBudget", "check_decode", "resolve_budget"]

#: The environment variables that raise (or lower) the default budget, by field.
BUDGET_ENVIRONMENT: Mapping[str, str] = {
    "max_pixels": "RADIOLOGYNET_MAX_PIXELS",
    "max_voxels": "RADIOLOGYNET_MAX_VOXELS",
    "max_ratio": "RADIOLOGYNET_MAX_RATIO",
}


@dataclass(frozen=True)
class DecodeBudget:
    """How much one file may decode to.

    Attributes:
        max_pixels: pixels of one 2-D image (one frame of a multi-frame DICOM, one page of
            a TIFF, one frame of an APNG). The default, 100 million, is about ten times
            the largest radiograph (a 43 x 43 cm detector at 0.1 mm).
        max_voxels: values of one file in all: every frame or page together, or a volume's
            voxels. The default is one billion (a 1024 x 1024 x 950 CT).
        max_ratio: decoded bytes per byte on disk above which a compressed file that is
            also over the *default* budget is refused even when the budget was raised (a
            decompression bomb, not a large scan); ``None`` turns this check off.
    """

    max_pixels: int = 100_000_000
    max_voxels: int = 1_000_000_000
    max_ratio: float | None = 100.0

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_voxels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(
                    f"DecodeBudget {name} must be an int >= 1, got {value!r}"
                )
        ratio = self.max_ratio
        if ratio is not None and not (isinstance(ratio, (int, float)) and ratio >= 1):
            raise InvalidArgumentError(
                f"DecodeBudget max_ratio must be >= 1 or None, got {ratio!r}"
            )

    @classmethod
    def from_env(cls) -> DecodeBudget:
        """The default budget with each field replaced by its environment variable
        (:data:`BUDGET_ENVIRONMENT`) where set; ``RADIOLOGYNET_MAX_RATIO=none`` (or ``0``)
        turns the ratio check off.

        Raises:
            InvalidArgumentError: a variable that is not a number (the message names it).
        """
        values: dict[str, int | float | None] = {}
        for field, variable in BUDGET_ENVIRONMENT.items():
            text = os.environ.get(variable, "").strip()
            if not text:
                continue
            try:
                if field == "max_ratio":
                    number = float(text) if text.lower() not in ("none", "off") else 0.0
                    values[field] = None if number == 0 else number
                else:
                    values[field] = int(float(text)) if "e" in text.lower() else int(text)
            except ValueError as err:
                raise InvalidArgumentError(
                    f"environment variable {variable}={text!r} is not a number"
                ) from err
        try:
            return cls(**values)  # type: ignore[arg-type]
        except InvalidArgumentError as err:
            raise InvalidArgumentError(f"{err} (from the environment)") from err


_DEFAULT = DecodeBudget()


def resolve_budget(budget: DecodeBudget | None) -> DecodeBudget:
    """``budget``, or the default one as the environment adjusts it when ``None``."""
    return budget if budget is not None else DecodeBudget.from_env()


def _count(n: int) -> str:
    for size, unit in ((10**9, "G"), (10**6, "M")):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return str(n)


def check_decode(
    path: str | PathLike[str],
    shape: tuple[int, ...],
    budget: DecodeBudget,
    *,
    frames: int = 1,
    volume: bool = False,
    bytes_per_value: float = 1.0,
    stored_bytes: int | None = None,
) -> None:
    """Refuse a file whose header claims more than ``budget`` before it is decoded.

    Args:
        path: the file, named in the message.
        shape: what the header claims: ``(rows, columns)`` of one frame or page, or a
            volume's ``(z, y, x)``.
        budget: the limits (see :func:`resolve_budget`).
        frames: how many such frames or pages the file claims (2-D images).
        volume: ``shape`` is a volume, checked against ``max_voxels`` only.
        bytes_per_value: decoded bytes of one pixel or voxel (all its samples).
        stored_bytes: the compressed bytes the pixels come from, for the ratio check;
            ``None`` for uncompressed data.

    Raises:
        ImageReadError: over budget, or a compressed file decoding to more than
            ``max_ratio`` times its size while over the default budget. The message says
            what the file claims and how to raise the limit.
    """
    if any(int(n) < 0 for n in shape) or frames < 0:
        raise ImageReadError(f"{path}: the header claims a negative size {shape}.")
    plane = math.prod(int(n) for n in shape[-2:]) if shape else 0
    total = math.prod(int(n) for n in shape) * (1 if volume else frames)
    what = " x ".join(str(int(n)) for n in shape) + (" voxels" if volume else " pixels")
    if frames > 1 and not volume:
        what = f"{frames} frames of {what}"
    if not volume and plane > budget.max_pixels:
        _refuse(path, what, f"{_count(plane)} pixels per image", budget, "max_pixels")
    if total > budget.max_voxels:
        _refuse(path, what, f"{_count(total)} values in all", budget, "max_voxels")
    over_default = total > _DEFAULT.max_voxels or (not volume and plane > _DEFAULT.max_pixels)
    if stored_bytes is None or budget.max_ratio is None or not over_default:
        return
    decoded = total * bytes_per_value
    if decoded > budget.max_ratio * max(stored_bytes, 1):
        variable = BUDGET_ENVIRONMENT["max_ratio"]
        raise ImageReadError(
            f"{path}: claims {what} ({decoded / 1e9:.1f} GB decoded) from {stored_bytes} "
            f"bytes of compressed data, {decoded / max(stored_bytes, 1):.0f} times its size: "
            "a decompression bomb, not a scan; refused even under a raised budget. If the "
            "file is trusted, pass budget=DecodeBudget(..., max_ratio=None) or set "
            f"{variable}=none."
        )


def _refuse(path: object, what: str, amount: str, budget: DecodeBudget, field: str) -> None:
    limit = getattr(budget, field)
    raise ImageReadError(
        f"{path}: claims {what} ({amount}), over the decode budget of {_count(limit)} "
        f"({field}). If the file is trusted, raise it with budget=DecodeBudget({field}=...) "
        f"or the environment variable {BUDGET_ENVIRONMENT[field]}."
    )
