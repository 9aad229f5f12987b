"""The batched image loader of inference: files decoded in DataLoader worker processes
(overlapped with the model's forward pass in the main process) into the letterboxed
``uint8`` batches a :class:`~radiologynet.transforms.BatchTransform` finishes. An
unreadable file gives an error record (its index, a blank image and the reason), never an
abort."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from radiologynet.errors import DatasetFormatError, ImageReadError, InvalidArgumentError
from radiologynet.inference.loading import LoadedModel
from radiologynet.io.dicom import header_text, is_dicom
from radiologynet.io.windowing import Window
from radiologynet.models._preprocessing import Preprocessing
from radiologynet.train.config import PRECISIONS, autocast, check_device
from radiologynet.transforms.batch import BatchTransform
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


#: Outputs of one batch: ``compute(images, batch, readable)`` on the readable images.
Compute = Callable[[torch.Tensor, Batch, torch.Tensor], torch.Tensor]


def run_batches(
    loaded: LoadedModel,
    paths: Sequence[str | os.PathLike[str]],
    compute: Compute,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    num_workers: int | None = None,
    window: Window = None,
    sex: Sequence[float] | None = None,
    sex_from_header: bool = False,
    progress: bool | None = None,
    desc: str = "images",
) -> Iterator[tuple[Batch, torch.Tensor | None]]:
    """Run ``compute`` over the images of ``paths`` batch by batch, under the model's own
    preprocessing (:class:`~radiologynet.transforms.BatchTransform` on ``device``), with
    decoding in worker processes overlapping the computation, and a progress bar
    (``progress=None`` leaves tqdm to switch it off where the output is no terminal).

    Yields:
        Each :class:`Batch` and ``compute``'s outputs (float32, on the CPU) for its
        readable images, in their order (``None`` when none of them could be read).

    Raises:
        InvalidArgumentError: a batch size below one, an unknown precision or device.
    """
    if int(batch_size) < 1:
        raise InvalidArgumentError(f"--batch-size {batch_size}: must be at least 1")
    if precision not in PRECISIONS:
        raise InvalidArgumentError(
            f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}"
        )
    target = check_device(device) if device is not None else _model_device(loaded.model)
    transform = BatchTransform(
        loaded.preprocessing, train=False, in_chans=loaded.in_chans, augment=None
    ).to(target)
    loaded.model.to(target).eval()
    dataset = DecodedImages(
        paths, loaded.preprocessing, window=window, sex=sex, sex_from_header=sex_from_header
    )
    batches = image_batches(
        dataset, int(batch_size), num_workers=num_workers, pin_memory=target.type == "cuda"
    )
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=progress_off(progress)) as bar:
        for batch in batches:
            readable = batch.readable
            outputs = None
            if bool(readable.any()):
                images = batch.images[readable].to(target, non_blocking=True)
                with torch.inference_mode(), autocast(target, precision):
                    outputs = compute(transform(images), batch, readable).float().cpu()
            bar.update(len(batch.indices))
            yield batch, outputs


def progress_off(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for a ``progress`` setting: ``None`` (automatic: off where the
    output is no terminal), ``True`` on, ``False`` off."""
    return None if progress is None else not progress


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
