"""The decoded-image cache keys its sources by content, rebuilds a malformed index and
cleans what a killed build left (issue 23, deliverable 9)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image as PILImage
from test_data import PRE, _pngs

from radiologynet.cli import main
from radiologynet.data import build_cache


def _rewrite_keeping_size_and_mtime(path, value):
    """Overwrite an image with other pixels, then set its size and mtime back."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    PILImage.fromarray(np.full((16, 16), value, np.uint8)).save(path)
    new = path.read_bytes()
    assert len(new) <= len(data)
    path.write_bytes(new + b"\0" * (len(data) - len(new)))  # PNG ignores trailing bytes
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_source_changed_with_the_same_size_and_mtime_is_decoded_again(tmp_path):
    """Before: size + mtime were the key, so the stale pixels were kept."""
    paths = _pngs(tmp_path / "src")
    build_cache(paths, tmp_path / "cache", PRE, progress=False)
    _rewrite_keeping_size_and_mtime(paths[1], 200)
    cache = build_cache(paths, tmp_path / "cache", PRE, progress=False)
    assert cache[1].max() == 200 and cache[1].min() in (0, 200)


def test_a_copied_dataset_with_the_same_content_is_not_decoded_again(tmp_path):
    paths = _pngs(tmp_path / "src")
    build_cache(paths, tmp_path / "cache", PRE, progress=False)
    stamp = (tmp_path / "cache" / "images.npy").stat().st_mtime_ns
    for path in paths:  # new inode and ctime, same bytes and mtime
        shutil.copy2(path, path.with_suffix(".tmpcopy"))
        path.with_suffix(".tmpcopy").replace(path)
    again = build_cache(paths, tmp_path / "cache", PRE, progress=False)
    assert (tmp_path / "cache" / "images.npy").stat().st_mtime_ns == stamp  # reused
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["entries"][0]["inode"] == paths[0].stat().st_ino  # fast path again
    assert len(again) == 4


@pytest.mark.parametrize(
    "index",
    [
        "{not json",
        "[]",
        '{"format": 1}',
        '{"format": 1, "count": "4", "size": 32, "interpolation": "bilinear", '
        '"letterbox": true, "entries": []}',
        '{"format": 1, "count": 1, "size": 32, "interpolation": "bilinear", '
        '"letterbox": true, "entries": [7]}',
        '{"format": 1, "count": 0, "size": 32, "interpolation": "bilinear", '
        '"letterbox": true, "entries": [], "window": "lung"}',
    ],
)
def test_a_malformed_index_is_rebuilt_by_preprocess(tmp_path, index, capsys):
    """Before: a valid-JSON index of the wrong shape crashed `preprocess` with a raw error."""
    paths = _pngs(tmp_path / "src")
    out = tmp_path / "cache"
    assert main(["preprocess", str(tmp_path / "src"), "--out", str(out), "--size", "32"]) == 0
    (out / "index.json").write_text(index)
    assert main(["preprocess", str(tmp_path / "src"), "--out", str(out), "--size", "32"]) == 0
    assert json.loads((out / "index.json").read_text())["count"] == len(paths)
    assert "Traceback" not in capsys.readouterr().err


def test_temporaries_of_a_killed_build_are_removed(tmp_path):
    """Before: a SIGKILLed build's .images.npy.*.tmp stayed for ever."""
    paths = _pngs(tmp_path / "src")
    root = tmp_path / "cache"
    root.mkdir()
    left = [root / ".images.npy.abc123.tmp", root / ".index.json.xyz.tmp"]
    for temp in left:
        temp.write_bytes(b"\0" * 1000)
    build_cache(paths, root, PRE, progress=False)
    assert not any(t.exists() for t in left)
    assert sorted(p.name for p in root.iterdir()) == [".lock", "images.npy", "index.json"]
