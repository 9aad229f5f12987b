"""The shared atomic writer: whole files, no leftovers on failure, readable permissions."""

from __future__ import annotations

import json
import os
import stat

import pytest

from radiologynet._atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_file_appears_whole_through_a_temp_beside_it(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    seen = []

    def writer(tmp: str) -> None:
        seen.append(tmp)
        assert not target.exists()  # nothing at the final name while writing
        with open(tmp, "wb") as fh:
            fh.write(b"a" * 1000)
            fh.write(b"b" * 1000)

    assert atomic_write(target, writer) == target
    assert target.read_bytes() == b"a" * 1000 + b"b" * 1000
    tmp = seen[0]
    assert os.path.dirname(tmp) == str(target.parent)
    assert os.path.basename(tmp).startswith(".out.bin.") and tmp.endswith(".tmp")
    assert _leftovers(target.parent) == []


def test_failing_writer_keeps_old_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "data.txt"
    target.write_text("old")

    def writer(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write("half-writ")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, writer)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


def test_files_are_world_readable_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "card.md", "hi")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o044 == 0o044, oct(mode)
    assert mode == 0o644


def test_text_bytes_and_json_helpers_round_trip(tmp_path):
    assert atomic_write_text(tmp_path / "t.txt", "é\r\nx\n").read_bytes() == "é\r\nx\n".encode()
    assert atomic_write_text(tmp_path / "l.txt", "é", encoding="latin-1").read_bytes() == b"\xe9"
    assert atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    path = atomic_write_json(tmp_path / "j.json", {"a": [1, 2]})
    text = path.read_text()
    assert json.loads(text) == {"a": [1, 2]} and text.endswith("\n") and "\n  " in text
    assert _leftovers(tmp_path) == []


def test_json_that_cannot_serialise_leaves_old_file(tmp_path):
    target = atomic_write_json(tmp_path / "r.json", {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert _leftovers(tmp_path) == []
