"""The shared atomic writer: whole files, no leftovers on failure, readable permissions."""

from __future__ import annotations

import json
import os
import stat

import pytest

from radiologynet._atomic import (
    atomic_dir,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    commit,
    make_shared_dir,
    temp_path_for,
)
from radiologynet.errors import OutputWriteError


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


def _device_node(path):
    """A character device (1, 3: what /dev/null is) at ``path``, in a temp folder."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root (CAP_MKNOD)")
    return path


def _fifo(path):
    os.mkfifo(path)
    return path


def _socket(path):
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


@pytest.mark.parametrize(
    ("make", "what"),
    [(_fifo, "FIFO"), (_device_node, "character device"), (_socket, "socket")],
)
def test_special_file_at_the_target_is_refused_not_replaced(tmp_path, make, what):
    target = make(tmp_path / "out.csv")
    before = os.lstat(target)
    with pytest.raises(OutputWriteError, match=what) as err:
        atomic_write_text(target, "a,b\n")
    assert str(target) in str(err.value)
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (
        before.st_mode,
        before.st_ino,
        before.st_rdev,
    )
    assert _leftovers(tmp_path) == []


def test_symlink_to_a_special_file_is_refused(tmp_path):
    fifo = _fifo(tmp_path / "pipe")
    link = tmp_path / "out.json"
    link.symlink_to(fifo)
    with pytest.raises(OutputWriteError, match="FIFO"):
        atomic_write_json(link, {"a": 1})
    assert link.is_symlink() and stat.S_ISFIFO(os.stat(link).st_mode)


def test_folder_where_a_file_is_written_and_the_reverse_are_refused(tmp_path):
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_folder" / "keep").write_text("x")
    with pytest.raises(OutputWriteError, match="is a folder"):
        atomic_write_bytes(tmp_path / "a_folder", b"data")
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(OutputWriteError, match="is a regular file"):
        with atomic_dir(tmp_path / "a_file") as staging:
            (staging / "x").write_text("y")
    assert (tmp_path / "a_file").read_text() == "mine"
    assert (tmp_path / "a_folder" / "keep").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder"]


def test_commit_refuses_a_fifo_that_appeared_while_writing(tmp_path):
    target = tmp_path / "index.json"
    tmp = temp_path_for(target)
    tmp.write_text("{}")
    _fifo(target)
    with pytest.raises(OutputWriteError, match="FIFO"):
        commit(tmp, target)
    assert stat.S_ISFIFO(os.lstat(target).st_mode)


def test_parent_folders_are_never_made_over_a_file(tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(OutputWriteError, match="taken"):
        atomic_write_text(tmp_path / "taken" / "sub" / "out.txt", "x")
    with pytest.raises(OutputWriteError, match="taken"):
        make_shared_dir(tmp_path / "taken" / "sub")
    assert (tmp_path / "taken").read_text() == "not a folder"
