"""From benchmark samples to training batches: decoded-image datasets.

Images are decoded once to 8-bit grayscale, letterboxed to the model's input side and kept
as ``uint8`` (in memory, or memory-mapped through :mod:`radiologynet.data` when a cache
folder is given), so an epoch after the first costs no decoding. Everything float happens
on the device, per batch, in :class:`radiologynet.transforms.BatchTransform`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from radiologynet.models._weights import Preprocessing
from radiologynet.transforms import decode_uint8

#: The paper's augmentation for BTMR, COVID-19 and GRAZPEDWRI-DX (flip, +-15 deg,
#: brightness 0.8-1.2, contrast 0.8-1.3), a name of :data:`radiologynet.transforms.AUGMENTATIONS`.
PAPER_AUGMENT = "default"
#: The paper's augmentation for bone age (flip, +-20 deg, translate 0.2, scale 0.8-1.2).
BONE_AGE_AUGMENT = "boneage"


def decode(path: str | Path, size: int) -> torch.Tensor:
    """An image file as the letterboxed ``uint8`` tensor ``(1, size, size)``, decoded
    exactly as the on-disk cache and :class:`radiologynet.transforms.ImageTransform` decode
    it (:func:`radiologynet.transforms.decode_uint8`: 8-bit grayscale, bilinear letterbox,
    the geometry of every zoo weight)."""
    return decode_uint8(path, Preprocessing(input_size=int(size)))


class SampleDataset(torch.utils.data.Dataset):
    """Benchmark samples as ``(image, target)`` items (``((image, sex), target)`` when
    ``with_sex``); ``image`` is a ``uint8`` tensor ``(1, size, size)``. ``size`` is the
    side (a bilinear letterbox, the zoo weights' geometry) or a weight's
    :class:`~radiologynet.Preprocessing` (its geometry:
    :func:`radiologynet.transforms.decode_uint8`).

    Images are decoded once: into memory (``preload`` decodes them all up front, with
    threads, so DataLoader workers forked afterwards share them), or, with ``cache_dir``,
    into a memory-mapped :class:`radiologynet.data.cache.DecodedImageCache` on disk that
    later processes and runs reuse.
    """

    def __init__(
        self,
        samples: Sequence[Any],
        size: int | Preprocessing,
        *,
        with_sex: bool = False,
        target_dtype: torch.dtype = torch.long,
        cache_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        self.samples = tuple(samples)
        self.preprocessing = (
            size if isinstance(size, Preprocessing) else Preprocessing(input_size=int(size))
        )
        self.size = int(self.preprocessing.input_size)
        self.with_sex = with_sex
        self.target_dtype = target_dtype
        self._cache: dict[int, torch.Tensor] = {}
        self._disk = None
        if cache_dir is not None and self.samples:
            from radiologynet.data.cache import build_cache

            paths = [s.path for s in self.samples]
            key = hashlib.sha1("\n".join(paths).encode("utf-8")).hexdigest()[:16]
            self._disk = build_cache(
                paths, Path(cache_dir) / f"{key}-{self.size}", self.preprocessing, progress=progress
            )

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int) -> torch.Tensor:
        """The decoded, letterboxed ``uint8`` image of sample ``index``."""
        if self._disk is not None:
            return self._disk.tensor(index)
        cached = self._cache.get(index)
        if cached is None:
            cached = decode_uint8(self.samples[index].path, self.preprocessing).contiguous()
            self._cache[index] = cached
        return cached

    def preload(self, threads: int = 4, progress: bool = False) -> SampleDataset:
        """Decode every image now (in ``threads`` threads); returns ``self``."""
        if self._disk is not None:
            return self
        missing = [i for i in range(len(self)) if i not in self._cache]
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for _ in tqdm(
                pool.map(self.image, missing),
                total=len(missing),
                leave=False,
                desc="decoding",
                disable=not progress,
            ):
                pass
        return self

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        sample = self.samples[index]
        target = torch.tensor(sample.target, dtype=self.target_dtype)
        if self.with_sex:
            sex = torch.tensor(float(sample.sex or 0), dtype=torch.float32)
            return (self.image(index), sex), target
        return self.image(index), target

    def get_batch(self, indices: Sequence[int]) -> tuple[Any, torch.Tensor]:
        """Items ``indices`` already collated, as the DataLoader would collate them: from
        the disk cache in one memory-map read (the trainer's fast path, see
        :func:`batch_loader`)."""
        rows = [int(i) for i in indices]
        if self._disk is not None:
            images = self._disk.batch(rows)
        else:
            images = torch.stack([self.image(i) for i in rows])
        target = torch.tensor([self.samples[i].target for i in rows], dtype=self.target_dtype)
        if self.with_sex:
            sex = torch.tensor([float(self.samples[i].sex or 0) for i in rows], dtype=torch.float32)
            return (images, sex), target
        return images, target


class _Batches(torch.utils.data.Dataset):
    """Batch ``k`` of a dataset with ``get_batch``: the DataLoader's item is a batch."""

    def __init__(self, dataset: Any, chunks: list[list[int]]) -> None:
        self.dataset, self.chunks = dataset, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> Any:
        return self.dataset.get_batch(self.chunks[index])


def _base_indices(dataset: Any, indices: Sequence[int]) -> tuple[Any, list[int]]:
    # see through (nested) Subsets to the dataset that holds the items
    rows = [int(i) for i in indices]
    while isinstance(dataset, torch.utils.data.Subset):
        rows = [int(dataset.indices[i]) for i in rows]
        dataset = dataset.dataset
    return dataset, rows


def batch_loader(
    dataset: torch.utils.data.Dataset,
    indices: Sequence[int],
    batch_size: int,
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
    generator: torch.Generator | None = None,
) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` items ``indices``, in that order, ``batch_size`` at a time.

    A dataset with ``get_batch(indices) -> (inputs, target)`` (such as
    :class:`SampleDataset`, also behind ``Subset``) is read a whole batch per call, in one
    read of the decoded-image cache, instead of item by item and collated: the fast path,
    taken without configuration. Other datasets go through a plain ``DataLoader``. Both
    yield the same tensors. ``generator`` seeds the workers (the global RNG is not drawn).
    """
    base, rows = _base_indices(dataset, indices)
    options = dict(
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=generator,
        persistent_workers=False,
    )
    if callable(getattr(base, "get_batch", None)):
        chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
        return torch.utils.data.DataLoader(_Batches(base, chunks), batch_size=None, **options)
    subset = torch.utils.data.Subset(dataset, [int(i) for i in indices])
    return torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False, **options)
