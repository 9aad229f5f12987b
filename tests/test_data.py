"""The decoded-image cache, the datasets built on it, unreadable files, and the
``preprocess`` command."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from test_io_dicom import make_dicom, ramp
from torch.utils.data import DataLoader

import radiologynet
from radiologynet import transforms
from radiologynet.cli import main
from radiologynet.data import (
    DecodedImageCache,
    DicomFolderDataset,
    ImageFolderDataset,
    ImageListDataset,
    build_cache,
)
from radiologynet.errors import DatasetNotFoundError, ImageReadError

PRE = radiologynet.Preprocessing(input_size=32)


def _pngs(folder: Path, n: int = 4, bits16: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    paths = []
    for i in range(n):
        shape = (20 + 7 * i, 30 + 3 * i)
        values = rng.integers(0, 65535 if bits16 else 255, shape).astype(
            np.uint16 if bits16 else np.uint8
        )
        paths.append(folder / f"img{i}.png")
        PILImage.fromarray(values).save(paths[-1])
    return paths


def test_cache_layout_contents_and_reuse(tmp_path):
    paths = _pngs(tmp_path / "src", bits16=True)
    cache = build_cache(paths, tmp_path / "cache", PRE, labels=[0, 1, 0, 1], progress=False)
    assert isinstance(cache.images, np.memmap) or cache.images.base is not None
    assert cache.images.shape == (4, 32, 32) and cache.images.dtype == np.uint8
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["size"] == 32 and [e["label"] for e in index["entries"]] == [0, 1, 0, 1]
    assert {"path", "mtime_ns", "bytes"} <= set(index["entries"][0])
    expected = transforms.for_weights(PRE).to_uint8(paths[2])[0].numpy()
    np.testing.assert_array_equal(cache[2], expected)
    assert cache.batch([3, 0]).shape == (2, 1, 32, 32)
    stamp = (tmp_path / "cache" / "images.npy").stat().st_mtime_ns
    again = build_cache(paths, tmp_path / "cache", PRE, labels=[0, 1, 0, 1], progress=False)
    assert (tmp_path / "cache" / "images.npy").stat().st_mtime_ns == stamp  # reused
    assert again.labels == [0, 1, 0, 1]
    assert not list((tmp_path / "cache").glob("*.tmp"))  # atomic: no leftovers
    pickled = pickle.dumps(again)  # what DataLoader workers receive: no pixel copy
    assert len(pickled) < again.images.nbytes
    np.testing.assert_array_equal(pickle.loads(pickled)[2], expected)


def test_cache_rebuilds_when_a_source_or_the_size_changes(tmp_path):
    paths = _pngs(tmp_path / "src")
    build_cache(paths, tmp_path / "cache", PRE, progress=False)
    PILImage.fromarray(np.full((10, 10), 200, np.uint8)).save(paths[1])
    os.utime(paths[1], ns=(1, 1))  # a different mtime even on coarse clocks
    rebuilt = build_cache(paths, tmp_path / "cache", PRE, progress=False)
    assert rebuilt[1].max() == 200
    bigger = build_cache(paths, tmp_path / "cache", 48, progress=False)
    assert bigger.images.shape == (4, 48, 48)
    assert not DecodedImageCache.open(tmp_path / "cache").matches(paths, PRE, None)


def test_cached_crops_are_the_transforms_crops_and_crop_pct_rebuilds(tmp_path):
    paths = _pngs(tmp_path / "src")
    for crop_pct in (1.0, 0.875):
        pre = radiologynet.Preprocessing(input_size=24, letterbox=False, crop_pct=crop_pct)
        cache = build_cache(paths, tmp_path / "cache", pre, progress=False)
        assert cache.geometry() == (24, "bilinear", False, crop_pct)
        for i, path in enumerate(paths):
            np.testing.assert_array_equal(cache[i], transforms.decode_uint8(path, pre)[0].numpy())
    index_path = tmp_path / "cache" / "index.json"
    index = json.loads(index_path.read_text())
    del index["crop_pct"]  # a cache written before crop_pct was recorded cropped 0.875
    index_path.write_text(json.dumps(index))
    old = DecodedImageCache.open(tmp_path / "cache")
    assert old.crop_pct == 0.875
    assert old.matches(paths, radiologynet.Preprocessing(24, letterbox=False, crop_pct=0.875), None)
    assert not old.matches(paths, radiologynet.Preprocessing(24, letterbox=False), None)


def test_unreadable_files_fail_listing_all_or_are_skipped_and_reported(tmp_path):
    paths = _pngs(tmp_path / "src")
    (tmp_path / "src" / "broken.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "src" / "fake.dcm").write_text("not dicom")
    bad = [tmp_path / "src" / "broken.png", tmp_path / "src" / "fake.dcm"]
    with pytest.raises(ImageReadError) as err:
        build_cache(paths + bad, tmp_path / "cache", PRE, progress=False)
    assert "broken.png" in str(err.value) and "fake.dcm" in str(err.value)
    assert not (tmp_path / "cache" / "index.json").exists()
    with pytest.warns(UserWarning, match="2 unreadable"):
        cache = build_cache(
            paths + bad, tmp_path / "cache", PRE, skip_unreadable=True, progress=False
        )
    assert len(cache) == 4 and {Path(p).name for p, _ in cache.unreadable} == {
        "broken.png",
        "fake.dcm",
    }
    with warnings.catch_warnings():  # reused, skipped files listed for the caller to report
        warnings.simplefilter("error")
        quiet = build_cache(
            paths + bad, tmp_path / "cache", PRE, skip_unreadable=True, progress=False, warn=False
        )
    assert quiet.unreadable == cache.unreadable
    with pytest.warns(UserWarning, match="unreadable"):
        ds = ImageListDataset(
            paths + bad, list(range(6)), skip_unreadable=True, size=32, progress=False
        )
    assert len(ds) == 4 and len(ds.unreadable) == 2 and ds.targets == [0, 1, 2, 3]
    with pytest.raises(ImageReadError, match="2 unreadable"):
        ImageListDataset(paths + bad, list(range(6)), size=32, progress=False)


def test_image_list_dataset_cached_equals_uncached_and_batches_on_device(tmp_path):
    paths = _pngs(tmp_path / "src", bits16=True)
    tf = transforms.for_weights(PRE)
    plain = ImageListDataset(paths, [0, 1, 2, 3], tf, progress=False)
    cached = ImageListDataset(paths, [0, 1, 2, 3], tf, cache=tmp_path / "c", progress=False)
    for i in range(4):
        torch.testing.assert_close(plain[i][0], cached[i][0])
        assert plain[i][1] == cached[i][1] == i
    raw = ImageListDataset(paths, [0, 1, 2, 3], cache=tmp_path / "c", size=32, progress=False)
    images, targets = next(iter(DataLoader(raw, batch_size=4)))
    assert images.dtype == torch.uint8 and images.shape == (4, 1, 32, 32)
    batch = transforms.BatchTransform(PRE)(images)
    torch.testing.assert_close(batch, torch.stack([cached[i][0] for i in range(4)]))
    assert targets.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="size"):
        ImageListDataset(paths, cache=tmp_path / "d", progress=False)


def test_image_folder_dataset_classes_and_cache(tmp_path):
    _pngs(tmp_path / "root" / "normal", 2)
    _pngs(tmp_path / "root" / "tumour", 3)
    ds = ImageFolderDataset(
        tmp_path / "root", transforms.for_weights(PRE), cache=tmp_path / "cache", progress=False
    )
    assert ds.classes == ["normal", "tumour"] and len(ds) == 5
    assert sorted(ds.targets) == [0, 0, 1, 1, 1]
    x, y = ds[4]
    assert x.shape == (3, 32, 32) and y == 1
    with pytest.raises(DatasetNotFoundError):
        ImageFolderDataset(tmp_path / "nowhere")


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # non-conformant on purpose
def test_dicom_folder_dataset_targets(tmp_path):
    for k, part in enumerate(["CHEST", "HAND", "chest "]):  # archives mix the case
        folder = tmp_path / ("a" if k < 2 else "b")
        folder.mkdir(exist_ok=True)
        make_dicom(folder / f"f{k}.dcm", ramp(24, 30), BodyPartExamined=part)
    noext = tmp_path / "b" / "IM0001"  # PACS exports often have no suffix
    make_dicom(tmp_path / "b" / "tmp.dcm", ramp(20, 20), BodyPartExamined="Hand").rename(noext)
    by_folder = DicomFolderDataset(tmp_path, transforms.for_weights(PRE), progress=False)
    assert by_folder.classes == ["a", "b"] and len(by_folder) == 4
    by_tag = DicomFolderDataset(
        tmp_path,
        transforms.for_weights(PRE),
        target="BodyPartExamined",
        cache=tmp_path.parent / f"{tmp_path.name}-cache",
        progress=False,
    )
    assert by_tag.classes == ["CHEST", "HAND"]  # one class per body part, as pseudolabel has
    assert sorted(by_tag.targets) == [0, 0, 1, 1]
    x, _ = by_tag[0]
    assert x.shape == (3, 32, 32) and float(x.max()) > 0.9


def test_preprocess_command(tmp_path, capsys):
    _pngs(tmp_path / "src" / "neg", 2)
    _pngs(tmp_path / "src" / "pos", 2)
    (tmp_path / "src" / "pos" / "bad.png").write_bytes(b"nope")
    out = tmp_path / "cache"
    code = main(
        [
            "preprocess",
            str(tmp_path / "src"),
            "--weights",
            "resnet18.radiologynet",
            "--size",
            "32",
            "--out",
            str(out),
        ]
    )
    assert code == 1 and "bad.png" in capsys.readouterr().err
    with pytest.warns(UserWarning):
        code = main(
            [
                "preprocess",
                str(tmp_path / "src"),
                "--weights",
                "resnet18.radiologynet",
                "--size",
                "32",
                "--out",
                str(out),
                "--skip-unreadable",
            ]
        )
    assert code == 0
    cache = DecodedImageCache.open(out)
    assert len(cache) == 4 and sorted(cache.labels) == ["neg", "neg", "pos", "pos"]
    assert "4 images, 32x32" in capsys.readouterr().out
    default = main(["preprocess", str(tmp_path / "src" / "neg"), "--out", str(tmp_path / "c2")])
    assert default == 0 and DecodedImageCache.open(tmp_path / "c2").size == 224


def test_cached_image_list_reads_whole_batches_like_the_dataloader(tmp_path):
    from radiologynet.data.samples import batch_loader

    paths = _pngs(tmp_path / "img", n=5)
    targets = [0.5, 1.5, 2.5, 3.5, 4.5]  # floats: collated as the DataLoader collates them
    cached = ImageListDataset(paths, targets, cache=tmp_path / "cache", size=32, progress=False)
    order = [3, 0, 4, 1, 2]
    fast = list(batch_loader(cached, order, 2))
    slow = list(DataLoader(torch.utils.data.Subset(cached, order), batch_size=2))
    assert len(fast) == len(slow) == 3
    for (fx, fy), (sx, sy) in zip(fast, slow, strict=True):
        assert torch.equal(fx, sx) and torch.equal(fy, sy) and fy.dtype == sy.dtype
    with_transform = ImageListDataset(
        paths, targets, transforms.for_weights(PRE), cache=tmp_path / "cache", progress=False
    )
    image, target = with_transform.get_batch([1, 2])  # per-image transform: item by item
    assert image.dtype == torch.float32 and image.shape == (2, 3, 32, 32)


def test_cache_refuses_a_side_below_one_pixel(tmp_path):
    from radiologynet.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="at least 1 pixel"):
        build_cache(_pngs(tmp_path / "img", n=1), tmp_path / "cache", 0, progress=False)
    assert not (tmp_path / "cache" / "images.npy").exists()
