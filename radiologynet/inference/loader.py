"""The batched image loader of inference: files decoded in DataLoader worker processes
(overlapped with the model's forward pass in the main process) into the letterboxed
``uint8`` batches a :class:`~radiologynet.transforms.BatchTransform` finishes. An
unreadable file gives an error record (its index, a blank image and the reason), never an
abort."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from radiologynet.errors import DatasetFormatError, ImageReadError
from radiologynet.io.dicom import header_text, is_dicom
from radiologynet.io.windowing import Window
from radiologynet.models._preprocessing import Preprocessing
from radiologynet.transforms.pipeline import decode_uint8

#: ``sex`` of an image whose sex is unknown.
SEX_UNKNOWN = -1.0


def parse_sex(value: object) -> float:
    """1.0 for male, 0.0 for female, as the bone-age sheets spell it (``M``/``F``,
    ``male``/``female``, 1/0, True/False: :func:`radiologynet.data.benchmarks.boneage.parse_sex`),
    :data:`SEX_UNKNOWN` for anything else (empty, ``O``)."""
    from radiologynet.data.benchmarks.boneage import parse_sex as sheet_sex

    for kind in ("MF", "male"):
        try:
            return float(sheet_sex(value, kind, "sex"))
        except DatasetFormatError:
            continue
    return SEX_UNKNOWN


def dicom_sex(path: Path) -> float:
    """The DICOM header's PatientSex (0010,0040) as :func:`parse_sex` reads it;
    :data:`SEX_UNKNOWN` for other files and headers without it."""
    if not is_dicom(path):
        return SEX_UNKNOWN
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientSex"])
    except Exception:  # noqa: BLE001  unreadable headers surface when the image is decoded
        return SEX_UNKNOWN
    return parse_sex(header_text(ds.get("PatientSex", "")))


class DecodedImages(Dataset):
    """Image files as items ``{"index", "image", "error", "sex"}``: ``image`` the
    letterboxed ``uint8`` tensor ``(1, S, S)`` of ``preprocessing`` (zeros when the file
    cannot be read), ``error`` the reason (``""`` when read), ``sex`` 1/0/-1 from
    ``sex`` or, when asked, the DICOM header."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        preprocessing: Preprocessing,
        *,
        window: Window = None,
        sex: Sequence[float] | None = None,
        sex_from_header: bool = False,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.preprocessing = preprocessing
        self.window = window
        self.sex = list(sex) if sex is not None else None
        self.sex_from_header = sex_from_header
        size = int(preprocessing.input_size)
        self._blank = torch.zeros(1, size, size, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        error = ""
        try:
            image = decode_uint8(path, self.preprocessing, self.window)
        except (ImageReadError, OSError, MemoryError) as err:
            image, error = self._blank, str(err) or type(err).__name__
        sex = self.sex[index] if self.sex is not None else SEX_UNKNOWN
        if sex == SEX_UNKNOWN and self.sex_from_header and not error:
            sex = dicom_sex(path)
        return {"index": index, "image": image, "error": error, "sex": float(sex)}


@dataclass(frozen=True)
class Batch:
    """One batch of :class:`DecodedImages`: ``indices`` into the paths, ``images``
    ``(B, 1, S, S)`` uint8, ``errors`` (``""`` where read) and ``sex`` ``(B,)``."""

    indices: list[int]
    images: torch.Tensor
    errors: list[str]
    sex: torch.Tensor

    @property
    def readable(self) -> torch.Tensor:
        """A bool mask of the images that were read."""
        return torch.tensor([not e for e in self.errors], dtype=torch.bool)


def default_workers() -> int:
    """Decoding processes: one per core beyond the one the model uses, at least one (so
    decoding overlaps the forward pass), at most four."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def image_batches(
    dataset: DecodedImages,
    batch_size: int,
    *,
    num_workers: int | None = None,
    pin_memory: bool = False,
) -> Iterator[Batch]:
    """The batches of ``dataset`` in order, decoded by ``num_workers`` worker processes
    (``0``: in this process; default :func:`default_workers`) while the caller computes
    on the previous ones."""
    workers = default_workers() if num_workers is None else int(num_workers)
    workers = min(workers, max(1, -(-len(dataset) // max(1, batch_size))))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    for item in loader:
        yield Batch(
            indices=[int(i) for i in item["index"]],
            images=item["image"],
            errors=list(item["error"]),
            sex=item["sex"].float(),
        )
