"""Volume headers cannot make read_volume read a file outside their folder, whatever the
spelling ITK's MetaIO or teem's NRRD reader accepts (issue 23: a colon separator, over
1 MiB of padding, CR-only NRRD and a %d pattern through a link each got through), and no
reader opens a FIFO, a socket or a device.

Each bypass is checked both ways: refused by default, and read by SimpleITK with
``allow_outside_data=True``, which shows the spelling really does reach the outside file.
"""

from __future__ import annotations

import os
import signal
import socket
from contextlib import contextmanager

import numpy as np
import pytest
import SimpleITK as sitk

from radiologynet import io
from radiologynet.errors import ImageReadError

_MHD = "ObjectType = Image\nNDims = 3\nDimSize = 8 1 1\nElementType = MET_UCHAR\n"
_NRRD = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 8 1 1\nencoding: raw\n"
SECRET = bytes(range(8))

#: name -> header text; every one names ../outside.raw (or a link leading to it)
BYPASSES = {
    # the four of issue 23
    "colon.mhd": _MHD + "ElementDataFile : ../outside.raw\n",
    "padding.mhd": _MHD + " " * (1 << 20) + "\n" * 8 + "ElementDataFile = ../outside.raw\n",
    "cr_only.nhdr": (_NRRD + "data file: ../outside.raw\n").replace("\n", "\r"),
    "pattern.mhd": _MHD.replace("8 1 1", "4 1 2") + "ElementDataFile = s%d.raw 1 2 1\n",
    # more spellings the two readers accept
    "crlf.mhd": (_MHD + "ElementDataFile = ../outside.raw\n").replace("\n", "\r\n"),
    "datafile.nhdr": _NRRD + "datafile: ../outside.raw\n",
    "list.nhdr": _NRRD + "data file: LIST\n../outside.raw\n",
    "list_cr_only.nhdr": (_NRRD + "data file: LIST\n../outside.raw\n").replace("\n", "\r"),
    "pattern.nhdr": _NRRD.replace("8 1 1", "4 1 2") + "data file: s%d.raw 1 2 1 2\n",
}


@pytest.fixture
def folder(tmp_path):
    """``tmp/in``: the header's folder, with s1.raw inside and s2.raw a link to
    ``tmp/outside.raw`` (the file no header in ``in`` may read)."""
    (tmp_path / "outside.raw").write_bytes(SECRET)
    inside = tmp_path / "in"
    inside.mkdir()
    (inside / "s1.raw").write_bytes(bytes(4))
    (inside / "s2.raw").symlink_to(tmp_path / "outside.raw")
    return inside


@pytest.fixture(autouse=True)
def _quiet_itk():
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    yield
    sitk.ProcessObject.SetGlobalWarningDisplay(True)


@pytest.mark.parametrize("name", sorted(BYPASSES))
def test_every_spelling_of_a_data_file_outside_is_refused(folder, name):
    path = folder / name
    path.write_bytes(BYPASSES[name].encode())
    with pytest.raises(ImageReadError, match="outside the header's folder") as err:
        io.read_volume(path)
    assert name in str(err.value) and "allow_outside_data=True" in str(err.value)
    # the spelling is real: SimpleITK follows it to the outside file when allowed
    volume = io.read_volume(path, allow_outside_data=True)
    assert bytes(volume.array.ravel()[-4:].astype(np.uint8)) in SECRET  # outside bytes


def test_a_key_after_another_on_one_line_and_after_blank_lines_is_refused(folder):
    for text in (
        _MHD + "ElementDataFile =\n\n\n../outside.raw\n",
        _MHD + "Comment = x ElementDataFile = ../outside.raw\n",
        _MHD.replace("NDims = 3", "NDims = 3 elementdatafile: ../outside.raw"),
    ):
        (folder / "v.mhd").write_text(text, newline="")
        with pytest.raises(ImageReadError, match="outside"):
            io.read_volume(folder / "v.mhd")


def test_a_second_data_key_behind_a_local_one_is_refused(folder):
    # a first "ElementDataFile = LOCAL" hidden in another field's value must not end the scan
    text = _MHD + "Comment = y\rElementDataFile = LOCAL\nElementDataFile = ../outside.raw\n"
    (folder / "v.mhd").write_text(text, newline="")
    with pytest.raises(ImageReadError, match="outside"):
        io.read_volume(folder / "v.mhd")


def test_a_pattern_with_a_string_conversion_is_refused(folder):
    (folder / "v.mhd").write_text(_MHD + "ElementDataFile = s%s.raw 1 2 1\n")
    with pytest.raises(ImageReadError, match="one integer conversion"):
        io.read_volume(folder / "v.mhd")


def test_a_pattern_inside_the_folder_reads(folder):
    (folder / "s2.raw").unlink()
    (folder / "s2.raw").write_bytes(bytes([9, 8, 7, 6]))
    (folder / "v.mhd").write_text(BYPASSES["pattern.mhd"])
    volume = io.read_volume(folder / "v.mhd")
    np.testing.assert_array_equal(volume.array.ravel(), [0, 0, 0, 0, 9, 8, 7, 6])


def test_nifti_pair_whose_image_links_out_is_refused(tmp_path):
    import nibabel as nib

    nib.save(nib.Nifti1Pair(np.ones((2, 3, 4), np.float32), np.eye(4)), tmp_path / "p.hdr")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "p.hdr").write_bytes((tmp_path / "p.hdr").read_bytes())
    (tmp_path / "in" / "p.img").symlink_to(tmp_path / "p.img")
    with pytest.raises(ImageReadError, match="outside"):
        io.read_volume(tmp_path / "in" / "p.hdr")
    assert io.read_volume(tmp_path / "p.hdr").array.shape == (4, 3, 2)


# --- FIFOs, sockets and devices ------------------------------------------------------------


@contextmanager
def _no_blocking(seconds: int = 20):
    """Fail (instead of hanging the suite) if the body blocks."""

    def _alarm(signum, frame):
        raise TimeoutError("the read blocked")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", ["pipe.dcm", "pipe.png", "pipe", "pipe.mha", "pipe.nii"])
def test_a_fifo_is_refused_without_blocking(tmp_path, name):
    os.mkfifo(tmp_path / name)
    with _no_blocking():
        reader = io.read_volume if name.endswith((".mha", ".nii")) else io.read_image
        with pytest.raises(ImageReadError, match="FIFO") as err:
            reader(tmp_path / name)
        assert not io.is_dicom(tmp_path / name)
    assert name in str(err.value)


def test_a_fifo_as_a_headers_data_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "v.raw")
    (tmp_path / "v.mhd").write_text(_MHD + "ElementDataFile = v.raw\n")
    with _no_blocking(), pytest.raises(ImageReadError, match="FIFO"):
        io.read_volume(tmp_path / "v.mhd")


def test_a_fifo_in_a_series_folder_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "slice.dcm")
    with _no_blocking(), pytest.raises(ImageReadError, match="FIFO"):
        io.read_volume(tmp_path)


def test_a_socket_and_a_device_are_refused(tmp_path):
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "s.png"))
        with pytest.raises(ImageReadError, match="socket"):
            io.read_image(tmp_path / "s.png")
    finally:
        server.close()
    (tmp_path / "null.dcm").symlink_to(os.devnull)  # a character device, read through a link
    with pytest.raises(ImageReadError, match="character device"):
        io.read_image(tmp_path / "null.dcm")


def test_the_luna16_loader_refuses_a_header_reading_outside(folder):
    from radiologynet.data.benchmarks.luna16 import build_series_samples

    path = folder / "1.2.840.1.mhd"
    path.write_bytes(BYPASSES["colon.mhd"].encode())
    with pytest.raises(ImageReadError, match="outside the header's folder"):
        build_series_samples(path, [])


def test_a_nrrd_line_that_crashes_teem_is_refused(folder):
    # a field teem cannot parse, ~1,000 characters long, killed the process (SIGSEGV)
    for line in (" " * 2000 + "data file: s1.raw", "space: " + "x" * 3000):
        (folder / "v.nhdr").write_text(_NRRD + line + "\ndata file: s1.raw\n")
        with pytest.raises(ImageReadError, match="crashes the process"):
            io.read_volume(folder / "v.nhdr", allow_outside_data=True)
