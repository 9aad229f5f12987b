"""The decoded-image cache: every image decoded, converted to 8-bit grayscale and
letterboxed once, stored as one memory-mapped ``uint8`` array ``(N, S, S)``.

Layout of a cache folder::

    images.npy    # numpy .npy, uint8, shape (N, S, S), read with mmap_mode="r"
    index.json    # {"format": 1, "size", "interpolation", "letterbox", "crop_pct",
                  #  "window", "count", "entries": [{"path", "mtime_ns", "bytes",
                  #  "ctime_ns", "inode", "sha256", "label"}],
                  #  "unreadable": [{"path", ..., "sha256", "reason"}]}

Each image is decoded by :func:`radiologynet.transforms.decode_uint8`, the function every
per-image path starts from, so a cached image is the one the transforms would make. A cache
is rebuilt only when its sources or its preprocessing (size, interpolation, letterbox or
crop, window) change.

Sources are keyed by content: each entry records the sha256 of the file it was decoded
from. A file whose size, modification time, status-change time and inode are all as
recorded is taken as unchanged without reading it (the fast path: no write can leave the
status-change time as it was); any other is hashed, and the cache is current only when
every hash matches (a copied or restored dataset is not decoded again, a file rewritten
with its old size and modification time is). A malformed ``index.json`` or a cache folder
left half-built is rebuilt, and temporaries a killed build left behind are removed.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from tqdm.auto import tqdm

from radiologynet._atomic import TEMP_SUFFIX, atomic_write_text, commit, temp_path_for
from radiologynet.errors import ImageReadError, InvalidArgumentError
from radiologynet.io.windowing import Window, resolve_window
from radiologynet.models._folder import sha256_file
from radiologynet.models._weights import Preprocessing
from radiologynet.transforms.pipeline import decode_uint8

FORMAT_VERSION = 1
IMAGES_FILE = "images.npy"
INDEX_FILE = "index.json"


#: What the fast path compares: a file with all of these as recorded is unchanged.
_FAST_KEYS = ("mtime_ns", "bytes", "ctime_ns", "inode")


def _source_stat(path: Path) -> dict[str, Any]:
    try:
        stat = path.stat()
    except OSError:
        return {"path": str(path), **dict.fromkeys(_FAST_KEYS)}
    return {
        "path": str(path),
        "mtime_ns": stat.st_mtime_ns,
        "bytes": stat.st_size,
        "ctime_ns": stat.st_ctime_ns,
        "inode": stat.st_ino,
    }


def _content_key(path: Path) -> str | None:
    """The sha256 of a source file (``None`` when it cannot be read)."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def _source_entry(path: Path) -> dict[str, Any]:
    """A source's stat fields and its content key, as the index records them."""
    return {**_source_stat(path), "sha256": _content_key(path)}


def _check_index(index: Any) -> None:
    """Raise ``ValueError`` unless ``index`` has the fields and types of an index.json."""
    if not isinstance(index, dict) or index.get("format") != FORMAT_VERSION:
        raise ValueError(f"not a format-{FORMAT_VERSION} index")
    for key, kind in (
        ("count", int),
        ("size", int),
        ("interpolation", str),
        ("letterbox", bool),
        ("entries", list),
    ):
        if not isinstance(index.get(key), kind) or isinstance(index.get(key), bool) != (
            kind is bool
        ):
            raise ValueError(f"{key!r} is missing or not a {kind.__name__}")
    window = index.get("window")
    if window is not None and not (
        isinstance(window, list) and len(window) == 2 and all(_is_number(v) for v in window)
    ):
        raise ValueError("'window' is not [center, width]")
    if not _is_number(index.get("crop_pct", 0.875)):
        raise ValueError("'crop_pct' is not a number")
    unreadable = index.get("unreadable", [])
    if not isinstance(unreadable, list) or len(index["entries"]) != index["count"]:
        raise ValueError("'unreadable' is not a list, or 'entries' does not hold 'count'")
    for entry in index["entries"] + unreadable:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ValueError("an entry without a 'path'")
    if any(not isinstance(u.get("reason"), str) for u in unreadable):
        raise ValueError("an unreadable entry without a 'reason'")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_unreadable(unreadable: Sequence[tuple[str | Path, str]], limit: int = 20) -> str:
    """The list of unreadable files as text, one ``path: reason`` per line."""
    lines = [
        f"  {reason}" if reason.startswith(str(path)) else f"  {path}: {reason}"
        for path, reason in unreadable[:limit]
    ]
    if len(unreadable) > limit:
        lines.append(f"  ... and {len(unreadable) - limit} more")
    return "\n".join(lines)


def report_unreadable(
    unreadable: Sequence[tuple[str | Path, str]],
    skip_unreadable: bool,
    what: str,
    *,
    stacklevel: int = 2,
) -> None:
    """The rule for inputs that could not be read: nothing to say when there are none;
    with ``skip_unreadable`` a warning listing them (``skipped N <what>``); otherwise an
    :class:`ImageReadError` listing them all and the two ways out. ``stacklevel`` as for
    ``warnings.warn`` from the caller.

    Raises:
        ImageReadError: some inputs are unreadable and ``skip_unreadable`` is false.
    """
    if not unreadable:
        return
    listing = format_unreadable(unreadable)
    if not skip_unreadable:
        raise ImageReadError(
            f"{len(unreadable)} {what}:\n{listing}\n"
            "Fix or remove them, or pass skip_unreadable=True to leave them out."
        )
    warnings.warn(f"skipped {len(unreadable)} {what}:\n{listing}", stacklevel=stacklevel + 1)


@dataclass
class DecodedImageCache:
    """An opened cache folder.

    Attributes:
        root: the folder.
        images: the memory-mapped ``uint8`` array ``(N, S, S)``.
        paths: the source file of each image.
        labels: the label stored with each image (``None`` where none was given).
        size, interpolation, letterbox, crop_pct, window: the preprocessing it was built
            with (``crop_pct`` applies when ``letterbox`` is false).
        unreadable: ``(path, reason)`` for the sources that were skipped.
    """

    root: Path
    images: np.ndarray
    paths: list[Path]
    labels: list[Any]
    size: int
    interpolation: str
    letterbox: bool
    window: tuple[float, float] | None
    crop_pct: float = 1.0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    _index: dict[str, Any] = field(default_factory=dict, repr=False)
    _restated: bool = field(default=False, repr=False)

    def relabel(self, labels: Sequence[Any]) -> None:
        """Store ``labels`` (one per cached image, in :attr:`paths` order) in the index,
        rewriting it only when they changed."""
        labels = list(labels)
        if labels == self.labels:
            return
        for entry, label in zip(self._index["entries"], labels, strict=True):
            entry["label"] = label
        self._save_index()
        self.labels = labels

    @classmethod
    def open(cls, root: str | PathLike[str]) -> DecodedImageCache:
        """Open an existing cache folder.

        Raises:
            ImageReadError: the folder is not a complete cache (missing or inconsistent
                files); rebuild it with :func:`build_cache`.
        """
        root = Path(root)
        index_path, images_path = root / INDEX_FILE, root / IMAGES_FILE
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            _check_index(index)
            images = np.load(images_path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise ImageReadError(
                f"{root}: not a decoded-image cache ({err}); build it with "
                "build_cache() or `radiologynet preprocess`."
            ) from err
        count, size = int(index.get("count", -1)), int(index.get("size", -1))
        if (
            index.get("format") != FORMAT_VERSION
            or images.shape != (count, size, size)
            or images.dtype != np.uint8
        ):
            raise ImageReadError(
                f"{root}: {IMAGES_FILE} {images.shape} does not match "
                f"{INDEX_FILE} (count {count}, size {size}); rebuild it."
            )
        window = index.get("window")
        return cls(
            root=root,
            images=images,
            paths=[Path(e["path"]) for e in index["entries"]],
            labels=[e.get("label") for e in index["entries"]],
            size=size,
            interpolation=index["interpolation"],
            letterbox=index["letterbox"],
            window=tuple(window) if window is not None else None,  # type: ignore[arg-type]
            # caches from before 0.2 cropped with resize_center_crop's default, 0.875
            crop_pct=float(index.get("crop_pct", 0.875)),
            unreadable=[(u["path"], u["reason"]) for u in index.get("unreadable", [])],
            _index=index,
        )

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get the folder, not a copy of the pixels; they re-map it
        state = dict(self.__dict__)
        state["images"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.images = np.load(self.root / IMAGES_FILE, mmap_mode="r")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> np.ndarray:
        """The cached ``(S, S)`` uint8 image."""
        return np.asarray(self.images[index])

    def tensor(self, index: int) -> torch.Tensor:
        """The cached image as a uint8 tensor ``(1, S, S)``."""
        return torch.from_numpy(np.array(self.images[index])).unsqueeze(0)

    def geometry(self) -> tuple[int, str, bool, float | None]:
        """``(size, interpolation, letterbox, crop_pct)``; ``crop_pct`` is ``None`` for a
        letterbox, where it plays no part."""
        return (
            self.size,
            self.interpolation,
            self.letterbox,
            None if self.letterbox else self.crop_pct,
        )

    def batch(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Several cached images as one uint8 tensor ``(B, 1, S, S)`` (one memmap read)."""
        order = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(np.ascontiguousarray(self.images[order])).unsqueeze(1)

    def matches(
        self,
        paths: Sequence[str | PathLike[str]],
        preprocessing: Preprocessing,
        window: tuple[float, float] | None,
    ) -> bool:
        """Whether this cache holds exactly ``paths`` (unchanged on disk, readable ones) as
        ``preprocessing`` and ``window`` decode them."""
        if self.geometry() != _geometry(preprocessing):
            return False
        if (list(self.window) if self.window else None) != (list(window) if window else None):
            return False
        skipped = {u[0] for u in self.unreadable}
        wanted = [str(Path(p)) for p in paths]
        if [p for p in wanted if p not in skipped] != [str(p) for p in self.paths]:
            return False
        return self._sources_unchanged()

    def _sources_unchanged(self) -> bool:
        """Whether every source still has the content it was decoded from: the fast path
        (size, modification and status-change time, inode as recorded), else its sha256.
        Entries whose content matched under new stat fields get those fields (saved by
        :func:`build_cache`)."""
        for entry in self._index.get("entries", []) + self._index.get("unreadable", []):
            now = _source_stat(Path(entry["path"]))
            if all(now[k] == entry.get(k) for k in _FAST_KEYS):
                continue
            if entry.get("sha256") is None or entry["sha256"] != _content_key(Path(entry["path"])):
                return False
            entry.update(now)
            self._restated = True
        return True

    def _save_index(self) -> None:
        atomic_write_text(self.root / INDEX_FILE, json.dumps(self._index))
        self._restated = False


def _geometry(preprocessing: Preprocessing) -> tuple[int, str, bool, float | None]:
    letterboxed = bool(preprocessing.letterbox)
    return (
        int(preprocessing.input_size),
        preprocessing.interpolation,
        letterboxed,
        None if letterboxed else float(preprocessing.crop_pct),
    )


def build_cache(
    paths: Sequence[str | PathLike[str]],
    root: str | PathLike[str],
    preprocessing: Preprocessing | int,
    labels: Sequence[Any] | None = None,
    window: Window = None,
    skip_unreadable: bool = False,
    rebuild: bool = False,
    num_workers: int = 0,
    progress: bool = True,
    *,
    warn: bool = True,
) -> DecodedImageCache:
    """Decode ``paths`` once into a cache folder at ``root``, or reuse it when it is current.

    Args:
        paths: the image files (DICOM, PNG, JPEG, ...), in dataset order.
        root: the cache folder (created if needed).
        preprocessing: the weight's :class:`~radiologynet.Preprocessing` (its input size,
            interpolation and letterbox), or just the side ``S`` (bilinear letterbox).
        labels: one JSON-serialisable label per path, stored in the index.
        window: ``(center, width)`` or a preset for DICOM inputs.
        skip_unreadable: leave unreadable files out (listed in ``cache.unreadable`` and,
            with ``warn``, warned about) instead of failing.
        rebuild: rebuild even when the cache is current.
        num_workers: decoding threads (0: in this thread).
        progress: show a tqdm progress bar.
        warn: warn about the skipped files; ``False`` for a caller that reports
            ``cache.unreadable`` itself (the image datasets, which tell image-less DICOM
            files from unreadable ones).

    Returns:
        The opened :class:`DecodedImageCache`.

    Raises:
        ImageReadError: some files are unreadable (all of them are listed) and
            ``skip_unreadable`` is false.
        InvalidArgumentError: a side below 1 pixel.
    """
    if isinstance(preprocessing, int):
        preprocessing = Preprocessing(input_size=preprocessing)
    size = int(preprocessing.input_size)
    if size < 1:
        raise InvalidArgumentError(
            f"cache {root}: the image side must be at least 1 pixel, got {size} (preprocess --size)"
        )
    resolved = resolve_window(window)
    sources = [Path(p) for p in paths]
    if labels is not None and len(labels) != len(sources):
        raise ValueError(f"labels has {len(labels)} entries for {len(sources)} paths")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".lock")):
        remove_build_temporaries(root)  # the lock is ours: any temp is a killed build's
        if not rebuild and (root / INDEX_FILE).exists():
            try:
                cache = DecodedImageCache.open(root)
            except ImageReadError:  # a malformed or half-written cache: rebuilt
                cache = None
            if cache is not None and cache.matches(sources, preprocessing, resolved):
                if cache._restated:
                    cache._save_index()
                if labels is not None:
                    by_path = {str(p): label for p, label in zip(sources, labels, strict=True)}
                    cache.relabel([by_path[str(p)] for p in cache.paths])
                if not skip_unreadable or warn:
                    report_unreadable(cache.unreadable, skip_unreadable, _unreadable_in(root))
                return cache
        cache = _build(
            sources, root, preprocessing, resolved, labels, skip_unreadable, num_workers, progress
        )
    if warn:
        report_unreadable(cache.unreadable, skip_unreadable, _unreadable_in(root))
    return cache


def remove_build_temporaries(root: Path) -> list[Path]:
    """Remove the temporaries (``.images.npy.*.tmp``, ``.index.json.*.tmp``) a build killed
    midway left in the cache folder ``root``; called with the folder's lock held, when no
    other build can be writing them. Returns what was removed."""
    removed = []
    for name in (IMAGES_FILE, INDEX_FILE):
        for temp in root.glob(f".{name}.*{TEMP_SUFFIX}"):
            temp.unlink(missing_ok=True)
            removed.append(temp)
    return removed


def _unreadable_in(root: Path) -> str:
    return f"unreadable image(s) for cache {root}"


def _shrink(tmp: Path, root: Path, count: int, size: int) -> None:
    """Cut the images file ``tmp`` down to its first ``count`` (the readable) images."""
    full = np.load(tmp, mmap_mode="r")
    small_name = temp_path_for(root / IMAGES_FILE)
    small = np.lib.format.open_memmap(
        small_name, mode="w+", dtype=np.uint8, shape=(count, size, size)
    )
    small[:] = full[:count]
    small.flush()
    del small, full
    os.replace(small_name, tmp)


def _build(
    sources: list[Path],
    root: Path,
    preprocessing: Preprocessing,
    window: tuple[float, float] | None,
    labels: Sequence[Any] | None,
    skip_unreadable: bool,
    num_workers: int,
    progress: bool,
) -> DecodedImageCache:
    def decode(path: Path) -> tuple[np.ndarray | ImageReadError, dict[str, Any]]:
        entry = _source_entry(path)  # before decoding: a change while decoding rebuilds
        try:
            return decode_uint8(path, preprocessing, window)[0].numpy(), entry
        except ImageReadError as err:
            return err, entry

    size, interpolation, letterboxed, _ = _geometry(preprocessing)
    tmp = temp_path_for(root / IMAGES_FILE)
    try:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8, shape=(len(sources), size, size)
        )
        entries: list[dict[str, Any]] = []
        unreadable: list[tuple[str, str]] = []
        skipped: list[dict[str, Any]] = []
        bar = tqdm(
            total=len(sources), desc=f"decoding to {root.name}", unit="img", disable=not progress
        )
        with ThreadPoolExecutor(max_workers=max(num_workers, 1)) as pool:
            results = pool.map(decode, sources) if num_workers > 0 else map(decode, sources)
            for i, (path, (result, entry)) in enumerate(zip(sources, results, strict=True)):
                bar.update(1)
                if isinstance(result, ImageReadError):
                    unreadable.append((str(path), str(result)))
                    skipped.append({**entry, "reason": str(result)})
                    continue
                out[len(entries)] = result
                entry["label"] = labels[i] if labels is not None else None
                entries.append(entry)
        bar.close()
        if not skip_unreadable:  # before anything is committed
            report_unreadable(unreadable, False, _unreadable_in(root))
        out.flush()
        del out
        if len(entries) != len(sources):
            _shrink(tmp, root, len(entries), size)
        index = {
            "format": FORMAT_VERSION,
            "size": size,
            "interpolation": interpolation,
            "letterbox": letterboxed,
            "crop_pct": float(preprocessing.crop_pct),
            "window": list(window) if window else None,
            "count": len(entries),
            "entries": entries,
            "unreadable": skipped,
        }
        commit(tmp, root / IMAGES_FILE)
        atomic_write_text(root / INDEX_FILE, json.dumps(index))
    finally:
        tmp.unlink(missing_ok=True)
    return DecodedImageCache.open(root)
