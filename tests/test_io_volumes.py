"""Volumes: MHD/RAW and NIfTI written by the tests, a DICOM series folder, geometry and
slicing, and bad volumes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import generate_uid
from test_io_dicom import make_dicom

from radiologynet import io
from radiologynet.errors import ImageReadError, ImageReadWarning


def _volume(shape=(5, 6, 7)) -> np.ndarray:
    return (np.arange(np.prod(shape)).reshape(shape) - 1000).astype(np.int16)


def _write_mhd(
    path,
    array,
    spacing=(0.7, 0.8, 2.5),
    origin=(-100.0, -120.0, 30.0),
    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1),
):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return path


def test_mhd_raw_with_geometry(tmp_path):
    array = _volume()
    path = _write_mhd(tmp_path / "scan.mhd", array)
    assert (tmp_path / "scan.raw").exists() or (tmp_path / "scan.zraw").exists()
    vol = io.read_volume(path)
    np.testing.assert_array_equal(vol.array, array)
    assert vol.spacing == pytest.approx((0.7, 0.8, 2.5))
    assert vol.spacing_zyx == pytest.approx((2.5, 0.8, 0.7))
    assert vol.origin == pytest.approx((-100.0, -120.0, 30.0))
    np.testing.assert_allclose(vol.direction, np.eye(3))


def test_world_to_voxel_matches_simpleitk_with_rotated_direction(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    direction = (c, -s, 0, s, c, 0, 0, 0, 1)
    path = _write_mhd(tmp_path / "rot.mhd", _volume(), direction=direction)
    vol = io.read_volume(path)
    reference = sitk.ReadImage(str(path))
    for index_xyz in [(0, 0, 0), (3, 2, 4), (6, 5, 1)]:
        world = reference.TransformIndexToPhysicalPoint(index_xyz)
        np.testing.assert_allclose(vol.world_to_voxel(world), index_xyz[::-1], atol=1e-9)
        np.testing.assert_allclose(vol.voxel_to_world(index_xyz[::-1]), world, atol=1e-9)
    many = np.array([reference.TransformIndexToPhysicalPoint((1, 2, 3))] * 4)
    assert vol.world_to_voxel(many).shape == (4, 3)


def test_nifti_written_with_nibabel(tmp_path):
    data_xyz = np.random.default_rng(0).normal(size=(7, 6, 5)).astype(np.float32)
    affine = np.diag([1.5, 2.0, 3.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]
    nib.save(nib.Nifti1Image(data_xyz, affine), tmp_path / "vol.nii.gz")
    vol = io.read_volume(tmp_path / "vol.nii.gz")
    assert vol.array.shape == (5, 6, 7)  # z, y, x
    np.testing.assert_allclose(vol.array, data_xyz.transpose(2, 1, 0), rtol=1e-6)
    assert vol.spacing == pytest.approx((1.5, 2.0, 3.0))
    # NIfTI is RAS, ITK reports LPS: x and y flip sign
    assert vol.origin == pytest.approx((-10.0, -20.0, 30.0))


def test_dicom_series_folder(tmp_path):
    series, study = generate_uid(), generate_uid()
    slices = [np.full((8, 9), 100 * (k + 1), dtype=np.uint16) for k in range(4)]
    for k, pixels in enumerate(slices):
        make_dicom(
            tmp_path / f"IM{k:04d}.dcm",
            pixels,
            SeriesInstanceUID=series,
            StudyInstanceUID=study,
            SOPInstanceUID=generate_uid(),
            InstanceNumber=k + 1,
            ImagePositionPatient=[0.0, 0.0, 2.0 * k],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            PixelSpacing=[0.5, 0.6],
            SliceThickness=2.0,
            RescaleSlope=1,
            RescaleIntercept=-1024,
        )
    vol = io.read_volume(tmp_path)
    assert vol.array.shape == (4, 8, 9)
    np.testing.assert_array_equal(vol.array[:, 0, 0], [100 * (k + 1) - 1024 for k in range(4)])
    assert vol.spacing == pytest.approx((0.6, 0.5, 2.0))
    assert pydicom.dcmread(tmp_path / "IM0000.dcm").SeriesInstanceUID == series


def test_two_series_need_a_choice(tmp_path):
    for k, series in enumerate([generate_uid(), generate_uid()]):
        make_dicom(
            tmp_path / f"s{k}.dcm",
            np.ones((4, 4), np.uint16),
            SeriesInstanceUID=series,
            ImagePositionPatient=[0, 0, 0],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        )
    with pytest.raises(ImageReadError, match="series_id"):
        io.read_volume(tmp_path)


@pytest.mark.parametrize("axis,shape", [("axial", (6, 7)), (1, (5, 7)), ("sagittal", (5, 6))])
def test_slicing_along_an_axis(axis, shape):
    array = _volume()
    vol = io.Volume(array=array)
    parts = list(vol.slices(axis))
    axis_index = {"axial": 0, 1: 1, "sagittal": 2}[axis]
    assert len(parts) == array.shape[axis_index] and parts[0].shape == shape
    np.testing.assert_array_equal(np.stack(parts, axis=axis_index), array)
    np.testing.assert_array_equal(vol.slice(2, axis), np.take(array, 2, axis=axis_index))
    assert io.to_radiologynet_uint8(parts[1]).dtype == np.uint8
    with pytest.raises(ValueError):
        list(vol.slices("oblique"))


def test_nan_and_inf_volume_rejected(tmp_path):
    array = np.zeros((3, 4, 5), np.float32)
    array[1, 2, 3] = np.nan
    array[0, 0, 0] = np.inf
    path = _write_mhd(tmp_path / "nan.mhd", array)
    with pytest.raises(ImageReadError, match="2 NaN or infinite") as err:
        io.read_volume(path)
    assert "nan.mhd" in str(err.value)


def test_missing_and_2d_and_garbage(tmp_path):
    with pytest.raises(ImageReadError, match="no such"):
        io.read_volume(tmp_path / "absent.nii")
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 5), np.uint8)), str(tmp_path / "flat.mha"))
    with pytest.raises(ImageReadError, match="3-D"):
        io.read_volume(tmp_path / "flat.mha")
    (tmp_path / "junk.nii").write_bytes(b"not a nifti" * 10)
    with pytest.raises(ImageReadError, match="junk.nii"):
        io.read_volume(tmp_path / "junk.nii")


@settings(max_examples=15, deadline=None)
@given(
    values=st.lists(
        st.sampled_from([0.0, 1.5, -3.0, np.nan, np.inf, -np.inf]), min_size=24, max_size=24
    )
)
def test_fuzzed_nonfinite_volumes(tmp_path_factory, values):
    array = np.array(values, np.float32).reshape(2, 3, 4)
    path = _write_mhd(tmp_path_factory.mktemp("v") / "f.mhd", array)
    if np.isfinite(array).all():
        np.testing.assert_array_equal(io.read_volume(path).array, array)
    else:
        with pytest.raises(ImageReadError, match="f.mhd"):
            io.read_volume(path)


# --- hostile volumes: the decisions documented in docs/preparing-images.md ---------------


def _nifti_bytes(tmp_path, name="whole.nii"):
    data = np.random.default_rng(1).normal(size=(7, 6, 5)).astype(np.float32) + 5
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / name)
    return (tmp_path / name).read_bytes()


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
@pytest.mark.parametrize("keep", [0.2, 0.35, 0.5, 0.7, 0.9, 0.99])
def test_truncated_nifti_is_refused(tmp_path, name, keep):
    whole = _nifti_bytes(tmp_path, "whole" + name[3:])
    (tmp_path / name).write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(ImageReadError, match="truncated|corrupt|cannot read") as err:
        io.read_volume(tmp_path / name)
    assert name in str(err.value)


def test_nan_voxel_in_nifti_is_refused(tmp_path):
    data = np.ones((4, 5, 6), np.float32)
    data[1, 2, 3] = np.nan
    for name in ("nan.nii", "nan.nii.gz"):
        nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / name)
        with pytest.raises(ImageReadError, match="1 NaN or infinite"):
            io.read_volume(tmp_path / name)


def test_zero_voxel_size_in_nifti_warns(tmp_path):
    image = nib.Nifti1Image(np.ones((4, 5, 6), np.float32), np.eye(4))
    image.header["pixdim"][1:4] = [0.0, 1.0, 1.0]
    nib.save(image, tmp_path / "flat.nii")
    with pytest.warns(ImageReadWarning, match="pixdim"):
        vol = io.read_volume(tmp_path / "flat.nii")
    assert vol.array.shape == (6, 5, 4)


def _mhd_pointing_at(tmp_path, target: str):
    _write_mhd(tmp_path / "ok.mhd", np.zeros((1, 1, 8), np.uint8))
    header = (
        (tmp_path / "ok.mhd")
        .read_text()
        .replace("ElementDataFile = ok.raw", f"ElementDataFile = {target}")
    )
    (tmp_path / "evil.mhd").write_text(header)
    return tmp_path / "evil.mhd"


@pytest.mark.parametrize(
    "target", ["../../etc/passwd", "/etc/passwd", "/proc/self/environ", "../outside.raw"]
)
def test_mhd_data_file_outside_its_folder_is_refused(tmp_path, target):
    (tmp_path / "outside.raw").write_bytes(bytes(range(8)))
    folder = tmp_path / "in"
    folder.mkdir()
    path = _mhd_pointing_at(folder, target)
    with pytest.raises(ImageReadError, match="outside the header's folder") as err:
        io.read_volume(path)
    assert "allow_outside_data=True" in str(err.value)


def test_mhd_data_file_outside_is_read_when_allowed(tmp_path):
    (tmp_path / "outside.raw").write_bytes(bytes(range(8)))
    folder = tmp_path / "in"
    folder.mkdir()
    vol = io.read_volume(_mhd_pointing_at(folder, "../outside.raw"), allow_outside_data=True)
    np.testing.assert_array_equal(vol.array.ravel(), np.arange(8))


def test_mhd_link_leading_out_is_refused(tmp_path):
    (tmp_path / "outside.raw").write_bytes(bytes(range(8)))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "inside.raw").symlink_to(tmp_path / "outside.raw")
    with pytest.raises(ImageReadError, match="outside"):
        io.read_volume(_mhd_pointing_at(folder, "inside.raw"))


def test_detached_nrrd_data_file_outside_is_refused(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "v.nhdr").write_text(
        "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n"
        "data file: /etc/passwd\n\n"
    )
    with pytest.raises(ImageReadError, match="outside"):
        io.read_volume(tmp_path / "in" / "v.nhdr")


@pytest.mark.parametrize(
    "field,value",
    [
        ("ElementSpacing", "0 1 1"),
        ("ElementSpacing", "nan 1 1"),
        ("ElementSpacing", "-1 1 1"),
        ("TransformMatrix", "0 0 0 0 0 0 0 0 0"),
    ],
)
def test_invalid_metaimage_geometry_is_refused(tmp_path, field, value):
    path = _write_mhd(tmp_path / "g.mhd", _volume(), spacing=(1, 1, 1))
    text = path.read_text().splitlines()
    path.write_text(
        "\n".join(f"{field} = {value}" if line.startswith(field) else line for line in text) + "\n"
    )
    with pytest.raises(ImageReadError, match=field) as err:
        io.read_volume(path)
    assert "g.mhd" in str(err.value)


def test_big_endian_32bit_dose_reads_like_read_image_in_gy(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, RTDoseStorage

    dose = (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 10 + 7).astype(np.uint32)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = RTDoseStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.Rows, ds.Columns, ds.NumberOfFrames = "RTDOSE", 5, 6, 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.PixelSpacing, ds.ImagePositionPatient = [2.0, 3.0], [-10.0, -20.0, 5.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.GridFrameOffsetVector, ds.FrameIncrementPointer = [0, 2.5, 5, 7.5], 0x3004000C
    ds.PixelData = dose.astype(">u4").tobytes()
    ds.save_as(tmp_path / "dose.dcm", enforce_file_format=True)
    vol = io.read_volume(tmp_path / "dose.dcm")
    np.testing.assert_array_equal(vol.array, dose)
    np.testing.assert_array_equal(vol.array, io.read_image(tmp_path / "dose.dcm").pixels)
    assert vol.spacing == pytest.approx((3.0, 2.0, 2.5))
    assert vol.origin == pytest.approx((-10.0, -20.0, 5.0))
    ds.DoseGridScaling = 2.5e-5  # the dose in Gy: the stored integers times this
    ds.save_as(tmp_path / "scaled.dcm", enforce_file_format=True)
    gray = io.read_volume(tmp_path / "scaled.dcm").array
    assert gray.dtype == np.float64
    np.testing.assert_allclose(gray, dose * 2.5e-5, rtol=1e-12)
    np.testing.assert_allclose(io.read_image(tmp_path / "scaled.dcm").pixels, gray, rtol=1e-12)
    for bad in ("0", "-1"):
        ds.DoseGridScaling = bad
        ds.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
        with pytest.raises(ImageReadError, match="bad.dcm: DoseGridScaling"):
            io.read_image(tmp_path / "bad.dcm")


def test_simpleitk_is_an_optional_dependency_of_volumes_only(tmp_path, monkeypatch):
    import subprocess
    import sys

    from radiologynet.errors import MissingDependencyError

    code = "import sys, radiologynet.io; print('SimpleITK' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "False"
    path = _write_mhd(tmp_path / "v.mhd", _volume())
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"radiologynet\[volumes\]"):
        io.read_volume(path)


# --- issue 23: NIfTI pairs and offsets, MetaImage compression -----------------------------


def test_nifti_bitpix_that_contradicts_the_datatype_is_refused(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) + 1
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "i16.nii")
    raw = bytearray((tmp_path / "i16.nii").read_bytes())
    raw[72:74] = (8).to_bytes(2, "little")  # bitpix 8 for an int16 datatype
    (tmp_path / "i16.nii").write_bytes(bytes(raw[: 352 + data.size]))  # and half missing
    with pytest.raises(ImageReadError, match="datatype 4 with bitpix 8"):
        io.read_volume(tmp_path / "i16.nii")


@pytest.mark.parametrize("offset", [0.0, 100.0, 348.0])
def test_nifti_vox_offset_inside_the_header_is_refused(tmp_path, offset):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "v.nii")
    raw = bytearray((tmp_path / "v.nii").read_bytes())
    raw[108:112] = np.float32(offset).tobytes()  # SimpleITK read header bytes as voxels
    (tmp_path / "v.nii").write_bytes(bytes(raw))
    with pytest.raises(ImageReadError, match="vox_offset"):
        io.read_volume(tmp_path / "v.nii")


def _pair(tmp_path, data):
    nib.save(nib.Nifti1Pair(data, np.eye(4)), tmp_path / "p.hdr")
    return tmp_path / "p.hdr", tmp_path / "p.img"


def test_nifti_pair_gets_the_truncation_and_nan_checks(tmp_path):
    data = np.random.default_rng(0).normal(size=(6, 5, 4)).astype(np.float32)
    header, image = _pair(tmp_path, data)
    np.testing.assert_allclose(io.read_volume(header).array, data.transpose(2, 1, 0))
    whole = image.read_bytes()
    image.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageReadError, match="truncated NIfTI"):
        io.read_volume(header)
    data[1, 2, 3] = np.nan
    header, image = _pair(tmp_path, data)
    with pytest.raises(ImageReadError, match="1 NaN"):
        io.read_volume(header)


def _compressed_mha(tmp_path, name="c.mha"):
    image = sitk.GetImageFromArray(_volume())
    sitk.WriteImage(image, str(tmp_path / name), useCompression=True)
    return tmp_path / name


def test_lying_compressed_data_size_is_refused(tmp_path):
    path = _compressed_mha(tmp_path)
    np.testing.assert_array_equal(io.read_volume(path).array, _volume())
    text = path.read_bytes()
    start = text.index(b"CompressedDataSize = ") + len(b"CompressedDataSize = ")
    end = text.index(b"\n", start)
    size = int(text[start:end])
    path.write_bytes(text[:start] + str(size // 2).encode() + text[end:])
    with pytest.raises(ImageReadError, match="CompressedDataSize"):
        io.read_volume(path)


def test_compressed_data_that_inflates_short_is_refused(tmp_path):
    import zlib

    path = _compressed_mha(tmp_path)
    text = path.read_bytes()
    header = text[: text.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")]
    short = zlib.compress(_volume().tobytes()[:100])
    header = header.replace(
        header[
            header.index(b"CompressedDataSize") : header.index(
                b"\n", header.index(b"CompressedDataSize")
            )
        ],
        b"CompressedDataSize = " + str(len(short)).encode(),
    )
    path.write_bytes(header + short)
    with pytest.raises(ImageReadError, match="inflates to 100 bytes"):
        io.read_volume(path)
