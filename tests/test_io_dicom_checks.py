"""DICOM headers checked against their own pixel data before decoding (issue 23): mutations
of pydicom's files that used to read silently into a plausible but wrong image are refused
with ImageReadError, or repaired with an ImageReadWarning."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_fragments
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless
from test_io_dicom import make_dicom, ramp

from radiologynet import io
from radiologynet.errors import ImageReadError, ImageReadWarning


def _pydicom_file(name: str, tmp_path, **tags: object):
    """A copy of one of pydicom's bundled test files, with ``tags`` changed."""
    ds = pydicom.dcmread(get_testdata_file(name, download=False))
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    path = tmp_path / name
    ds.save_as(path)
    return path


def _quiet_read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom's own notes
        return io.read_image(path)


def test_extra_frames_beyond_number_of_frames_are_refused(tmp_path):
    stack = np.stack([ramp(8, 6) + i for i in range(22)])
    path = make_dicom(tmp_path / "f.dcm", stack, NumberOfFrames=22)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 15  # pydicom returned all 22 with only its own warning
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="7 frames more than NumberOfFrames") as err:
        _quiet_read(path)
    assert "f.dcm" in str(err.value)


@pytest.mark.parametrize("tags", [{"Rows": 30}, {"Columns": 50}, {"Rows": 40, "Columns": 28}])
def test_rows_and_columns_that_lie_about_pixel_data_are_refused(tmp_path, tags):
    path = make_dicom(tmp_path / "r.dcm", ramp())
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="Rows x Columns"):
        _quiet_read(path)


def test_rows_written_as_bytes_is_refused(tmp_path):
    path = make_dicom(tmp_path / "vr.dcm", ramp(10, 15))
    ds = pydicom.dcmread(path)
    del ds.Rows
    ds.add_new(0x00280010, "OB", b"\x01\x00")  # a VR lie: read as 150 frames of 1 x 10
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="Rows"):
        _quiet_read(path)


def test_zero_padding_after_the_image_is_dropped_with_a_warning():
    path = get_testdata_file("MR_small_padded.dcm", download=False)
    with pytest.warns(ImageReadWarning, match="128 zero bytes of padding"):
        image = io.read_image(path)
    reference = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False)).pixel_array
    np.testing.assert_array_equal(image.pixels, reference)


def test_jpeg_relabelled_as_jpeg_2000_and_back_is_refused(tmp_path):
    as_j2k = _pydicom_file("SC_rgb_jpeg_dcmtk.dcm", tmp_path)
    ds = pydicom.dcmread(as_j2k)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.save_as(as_j2k)
    with pytest.raises(ImageReadError, match="does not start like one"):
        _quiet_read(as_j2k)
    as_jpeg = _pydicom_file("JPEG2000.dcm", tmp_path)
    ds = pydicom.dcmread(as_jpeg)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(as_jpeg)
    with pytest.raises(ImageReadError, match="does not start like one"):
        _quiet_read(as_jpeg)


def test_compressed_frame_of_another_size_than_rows_columns_is_refused(tmp_path):
    path = _pydicom_file("SC_rgb_jpeg_dcmtk.dcm", tmp_path, Rows=50)
    with pytest.raises(ImageReadError, match="compressed frame is 100 x 100"):
        _quiet_read(path)


def test_rle_segments_that_do_not_match_the_header_are_refused(tmp_path):
    path = make_dicom(tmp_path / "rle.dcm", ramp(), compress=RLELossless)
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7  # two segments read as one
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="RLE stream"):
        _quiet_read(path)


def test_basic_offset_table_pointing_between_frames_is_refused(tmp_path):
    path = _pydicom_file("SC_rgb_rle_2frame.dcm", tmp_path)
    ds = pydicom.dcmread(path)
    frames = list(generate_fragments(ds.PixelData))[1:]
    data = bytearray(encapsulate(frames, has_bot=True))
    data[12:16] = (600).to_bytes(4, "little")  # the second frame's offset, off target
    ds.PixelData = bytes(data)
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="Basic Offset Table"):
        _quiet_read(path)


def test_encapsulated_frames_beyond_number_of_frames_are_refused(tmp_path):
    path = _pydicom_file("SC_rgb_rle_2frame.dcm", tmp_path, NumberOfFrames=1)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate(list(generate_fragments(ds.PixelData))[1:], has_bot=False)
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="holds 2 frames"):
        _quiet_read(path)


def test_voi_lut_descriptor_lying_about_its_data_is_refused(tmp_path):
    lut = Dataset()
    lut.add_new(0x00283002, "US", [128, 0, 8])  # 128 entries said, 256 given
    lut.add_new(0x00283006, "OW", np.arange(255, -1, -1, dtype="<u2").tobytes())
    path = make_dicom(tmp_path / "lut.dcm", (ramp() % 256).astype(np.uint16), VOILUTSequence=[lut])
    with pytest.raises(ImageReadError, match="says 128 entries"):
        _quiet_read(path)


def test_palette_descriptor_lying_about_its_data_is_refused(tmp_path):
    name = "examples_palette.dcm"
    ds = pydicom.dcmread(get_testdata_file(name, download=False))
    entries, first, depth = ds.RedPaletteColorLookupTableDescriptor
    ds.RedPaletteColorLookupTableDescriptor = [entries // 2, first, depth]
    ds.save_as(tmp_path / name)
    with pytest.raises(ImageReadError, match="Red palette LUT descriptor"):
        _quiet_read(tmp_path / name)


def test_deflated_data_longer_than_its_header_is_refused(tmp_path):
    source = get_testdata_file("image_dfl.dcm", download=False)
    data = open(source, "rb").read()  # noqa: PTH123
    meta = pydicom.filereader.read_file_meta_info(source)
    start = 132 + 12 + meta.FileMetaInformationGroupLength
    dataset = zlib.decompress(data[start:], -15)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    longer = packer.compress(dataset + bytes(4 << 20)) + packer.flush()  # 4 MB behind it
    (tmp_path / "dfl.dcm").write_bytes(data[:start] + longer)
    with pytest.raises(ImageReadError, match="inflates to more than"):
        _quiet_read(tmp_path / "dfl.dcm")
    assert _quiet_read(source).pixels.shape == (512, 512)


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "MR_small_RLE.dcm",
        "SC_rgb_rle_2frame.dcm",
        "image_dfl.dcm",
        "rtdose.dcm",
        "rtdose_rle.dcm",
        "examples_ybr_color.dcm",
        "examples_palette.dcm",
    ],
)
def test_pydicoms_own_valid_files_still_read_without_a_warning(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageReadWarning)
        image = _quiet_read(get_testdata_file(name, download=False))
    assert image.pixels.size > 0
