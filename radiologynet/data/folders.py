"""Generic datasets yielding ``(tensor, target)``: a list of files, a labelled folder
(one subfolder per class), a folder of DICOM files; optionally read from the cache."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import pydicom
import torch
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from radiologynet.errors import DatasetNotFoundError, ImageReadError
from radiologynet.io import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    has_pixel_data,
    header_text,
    list_image_files,
    read_image,
)
from radiologynet.io.windowing import Window
from radiologynet.models._weights import Preprocessing
from radiologynet.transforms.pipeline import ImageTransform, as_uint8_gray, decode_uint8

from .cache import DecodedImageCache, build_cache, report_unreadable
from .splits import class_folders


class ImageListDataset(Dataset):
    """Images from a list of files with one target each; yields ``(image, target)``.

    With an :class:`~radiologynet.transforms.ImageTransform` (``transforms.for_weights``)
    the image is the float tensor the weights expect. With ``transform=None`` it is the
    8-bit grayscale image as a uint8 tensor ``(1, H, W)`` (letterboxed to ``S`` when
    ``size`` or a cache is given), ready for a :class:`~radiologynet.transforms.BatchTransform`
    on the GPU. Any other callable receives that uint8 tensor.

    Args:
        paths: image files (DICOM, PNG, JPEG, ...).
        targets: one target per path (``None``: every target is ``-1``).
        transform: see above.
        cache: a cache folder (built once, reused while the sources are unchanged) or an
            opened :class:`~radiologynet.data.DecodedImageCache`; ``None`` decodes on
            every access.
        size: the letterbox side when ``transform`` is not an ``ImageTransform``.
        window: ``(center, width)`` or a preset name for DICOM inputs.
        skip_unreadable: leave unreadable files out (listed in ``self.unreadable`` and
            warned about) instead of raising an ``ImageReadError`` that lists them.
        validate: without a cache, decode every file once now to find unreadable ones
            (``False`` defers the error to the first access of a bad file).
        num_workers: decoding threads while building the cache.
    """

    def __init__(
        self,
        paths: Sequence[str | PathLike[str]],
        targets: Sequence[Any] | None = None,
        transform: Callable[[Any], Any] | None = None,
        *,
        cache: str | PathLike[str] | DecodedImageCache | None = None,
        size: int | None = None,
        window: Window = None,
        skip_unreadable: bool = False,
        validate: bool = True,
        num_workers: int = 0,
        progress: bool = True,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.targets = list(targets) if targets is not None else [-1] * len(self.paths)
        if len(self.targets) != len(self.paths):
            raise ValueError(f"{len(self.targets)} targets for {len(self.paths)} paths")
        self.transform = transform
        self.window = window if window is not None else getattr(transform, "window", None)
        self.preprocessing = self._preprocessing(transform, size)
        self.unreadable: list[tuple[str, str]] = []
        self.cache: DecodedImageCache | None = None
        if cache is not None:
            if self.preprocessing is None:
                raise ValueError("a cache needs a size: pass size= or an ImageTransform")
            self._use_cache(cache, skip_unreadable, num_workers, progress)
        elif validate or skip_unreadable:
            self._validate(skip_unreadable, progress)

    @staticmethod
    def _preprocessing(transform: Any, size: int | None) -> Preprocessing | None:
        if isinstance(transform, ImageTransform):
            return transform.preprocessing
        return Preprocessing(input_size=size) if size is not None else None

    def _use_cache(
        self,
        cache: str | PathLike[str] | DecodedImageCache,
        skip_unreadable: bool,
        num_workers: int,
        progress: bool,
    ) -> None:
        if isinstance(cache, DecodedImageCache):
            opened = cache
            self._report(list(opened.unreadable), skip_unreadable)
        else:  # skipped files listed, not warned about: reported once, below
            opened = build_cache(
                self.paths,
                cache,
                self.preprocessing,
                window=self.window,
                skip_unreadable=True,
                num_workers=num_workers,
                progress=progress,
                warn=False,
            )
            self._report(list(opened.unreadable), skip_unreadable)
        by_path = {str(p): i for i, p in enumerate(opened.paths)}
        missing = [
            p
            for p in self.paths
            if str(p) not in by_path and str(p) not in {u[0] for u in opened.unreadable}
        ]
        if missing:
            raise ImageReadError(
                f"cache {opened.root} does not hold {len(missing)} of the "
                f"files, e.g. {missing[0]}; rebuild it."
            )
        keep = [i for i, p in enumerate(self.paths) if str(p) in by_path]
        self.paths = [self.paths[i] for i in keep]
        self.targets = [self.targets[i] for i in keep]
        self._rows = [by_path[str(p)] for p in self.paths]
        self.cache = opened

    def _validate(self, skip_unreadable: bool, progress: bool) -> None:
        bad: list[tuple[str, str]] = []
        for path in tqdm(self.paths, desc="checking images", unit="img", disable=not progress):
            try:
                as_uint8_gray(read_image(path, window=self.window))
            except ImageReadError as err:
                bad.append((str(path), str(err)))
        self._report(bad, skip_unreadable)
        skipped = {p for p, _ in bad}
        keep = [i for i, p in enumerate(self.paths) if str(p) not in skipped]
        self.paths = [self.paths[i] for i in keep]
        self.targets = [self.targets[i] for i in keep]

    def _report(self, bad: list[tuple[str, str]], skip_unreadable: bool) -> None:
        what = f"unreadable image(s) in {type(self).__name__}"
        report_unreadable(bad, skip_unreadable, what, stacklevel=4)
        if bad:
            self.unreadable = bad

    def __len__(self) -> int:
        return len(self.paths)

    def load_uint8(self, index: int) -> torch.Tensor:
        """The image as a uint8 tensor ``(1, H, W)`` (``(1, S, S)`` when a size is set)."""
        if self.cache is not None:
            return self.cache.tensor(self._rows[index])
        if self.preprocessing is not None:
            return decode_uint8(self.paths[index], self.preprocessing, self.window)
        return torch.from_numpy(as_uint8_gray(self.paths[index], self.window)).unsqueeze(0)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = self.load_uint8(index)
        if isinstance(self.transform, ImageTransform):
            image = self.transform.from_uint8(image)
        elif self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]

    def get_batch(self, indices: Sequence[int]) -> tuple[Any, Any]:
        """Items ``indices`` collated as a DataLoader collates them; from a cache without a
        per-image transform, in one memory-map read (the trainer's fast path,
        :func:`radiologynet.data.samples.batch_loader`)."""
        rows = [int(i) for i in indices]
        if self.cache is None or self.transform is not None:
            return default_collate([self[i] for i in rows])
        images = self.cache.batch([self._rows[i] for i in rows])
        return images, default_collate([self.targets[i] for i in rows])


class ImageFolderDataset(ImageListDataset):
    """A labelled folder, one subfolder per class (``root/<class>/<image>``), as
    torchvision's ``ImageFolder``; targets are class indices in sorted class order.

    Attributes:
        classes: the class names; ``class_to_idx``: name -> index.

    Other arguments as :class:`ImageListDataset`.
    """

    def __init__(
        self,
        root: str | PathLike[str],
        transform: Callable[[Any], Any] | None = None,
        *,
        suffixes: Sequence[str] = IMAGE_SUFFIXES,
        **kwargs: Any,
    ) -> None:
        self.root = Path(root)
        self.classes = class_folders(self.root)
        if not self.classes:
            raise DatasetNotFoundError(
                f"{self.root}: no class subfolders (expected root/<class>/<image files>)."
            )
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        paths, targets = [], []
        for name in self.classes:
            for path in list_image_files(self.root / name, suffixes):
                paths.append(path)
                targets.append(self.class_to_idx[name])
        if not paths:
            raise DatasetNotFoundError(
                f"{self.root}: the class folders hold no images with "
                f"suffixes {', '.join(suffixes)}."
            )
        super().__init__(paths, targets, transform, **kwargs)


class DicomFolderDataset(ImageListDataset):
    """Every DICOM image under a folder (:func:`radiologynet.io.list_image_files`: a
    ``.dcm``-like suffix or the ``DICM`` magic; hidden files and ``DICOMDIR`` left out).
    DICOM files without pixel data (structured reports, presentation states) are not
    images: they are left out with a warning, not counted as unreadable.

    Args:
        root: the folder.
        target: ``"folder"`` (the first-level subfolder is the class), a DICOM keyword
            such as ``"BodyPartExamined"`` (its values, sorted, become class indices), a
            callable ``path -> target``, or ``None`` (every target ``-1``).

    Other arguments as :class:`ImageListDataset`; multi-frame files give their middle
    frame.

    Attributes:
        classes / class_to_idx: for ``"folder"`` and keyword targets.
    """

    def __init__(
        self,
        root: str | PathLike[str],
        transform: Callable[[Any], Any] | None = None,
        *,
        target: str | Callable[[Path], Any] | None = "folder",
        **kwargs: Any,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"{self.root}: no such folder.")
        paths = list_image_files(self.root, DICOM_SUFFIXES)
        if not paths:
            raise DatasetNotFoundError(f"{self.root}: no DICOM files found.")
        self.classes: list[str] = []
        header_errors: list[tuple[str, str]] = []
        if target is None:
            targets: list[Any] = [-1] * len(paths)
        elif callable(target):
            targets = [target(p) for p in paths]
        elif target == "folder":
            names = [
                p.relative_to(self.root).parts[0] if len(p.relative_to(self.root).parts) > 1 else ""
                for p in paths
            ]
            if "" in names:
                raise DatasetNotFoundError(
                    f"{self.root}: target='folder' needs every file inside a class subfolder; "
                    "pass target=None or a DICOM keyword instead."
                )
            targets, self.classes = self._index(names)
        else:
            paths, values, header_errors = self._header_values(
                paths, target, bool(kwargs.get("skip_unreadable"))
            )
            targets, self.classes = self._index(values)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        super().__init__(paths, targets, transform, **kwargs)
        if header_errors:  # skipped (and reported) above; counted with the unreadable pixels
            self.unreadable = header_errors + self.unreadable

    def _report(self, bad: list[tuple[str, str]], skip_unreadable: bool) -> None:
        imageless = {p for p, _ in bad if _without_pixels(p)}
        if imageless:
            warnings.warn(
                f"{type(self).__name__}: left out {len(imageless)} DICOM file(s) without "
                f"pixel data (not images), e.g. {min(imageless)}",
                stacklevel=4,
            )
        super()._report([b for b in bad if b[0] not in imageless], skip_unreadable)

    @classmethod
    def _header_values(
        cls, paths: list[Path], keyword: str, skip_unreadable: bool
    ) -> tuple[list[Path], list[str], list[tuple[str, str]]]:
        """The readable paths, their ``keyword`` values, and the unreadable ones (an
        ``ImageReadError`` listing them all unless ``skip_unreadable``)."""
        kept, values, bad = [], [], []
        for path in paths:
            try:
                values.append(cls._header_value(path, keyword))
                kept.append(path)
            except ImageReadError as err:
                bad.append((str(path), str(err)))
        what = f"file(s) with an unreadable DICOM header in {cls.__name__}"
        report_unreadable(bad, skip_unreadable, what, stacklevel=4)
        return kept, values, bad

    @staticmethod
    def _index(values: list[str]) -> tuple[list[int], list[str]]:
        classes = sorted(set(values))
        lookup = {name: i for i, name in enumerate(classes)}
        return [lookup[v] for v in values], classes

    @staticmethod
    def _header_value(path: Path, keyword: str) -> str:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[keyword])
        except Exception as err:
            raise ImageReadError(f"{path}: cannot read its DICOM header ({err}).") from err
        return header_text(ds.get(keyword))


def _without_pixels(path: str) -> bool:
    """Whether ``path`` is a readable DICOM file that holds no image."""
    try:
        return not has_pixel_data(path)
    except ImageReadError:
        return False
