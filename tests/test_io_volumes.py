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
from radiologynet.errors import ImageReadError


def _volume(shape=(5, 6, 7)) -> np.ndarray:
    return (np.arange(np.prod(shape)).reshape(shape) - 1000).astype(np.int16)


def _write_mhd(path, array, spacing=(0.7, 0.8, 2.5), origin=(-100.0, -120.0, 30.0),
               direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
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
        make_dicom(tmp_path / f"IM{k:04d}.dcm", pixels, SeriesInstanceUID=series,
                   StudyInstanceUID=study, SOPInstanceUID=generate_uid(), InstanceNumber=k + 1,
                   ImagePositionPatient=[0.0, 0.0, 2.0 * k],
                   ImageOrientationPatient=[1, 0, 0, 0, 1, 0], PixelSpacing=[0.5, 0.6],
                   SliceThickness=2.0, RescaleSlope=1, RescaleIntercept=-1024)
    vol = io.read_volume(tmp_path)
    assert vol.array.shape == (4, 8, 9)
    np.testing.assert_array_equal(vol.array[:, 0, 0], [100 * (k + 1) - 1024 for k in range(4)])
    assert vol.spacing == pytest.approx((0.6, 0.5, 2.0))
    assert pydicom.dcmread(tmp_path / "IM0000.dcm").SeriesInstanceUID == series


def test_two_series_need_a_choice(tmp_path):
    for k, series in enumerate([generate_uid(), generate_uid()]):
        make_dicom(tmp_path / f"s{k}.dcm", np.ones((4, 4), np.uint16), SeriesInstanceUID=series,
                   ImagePositionPatient=[0, 0, 0], ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
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
@given(values=st.lists(st.sampled_from([0.0, 1.5, -3.0, np.nan, np.inf, -np.inf]),
                       min_size=24, max_size=24))
def test_fuzzed_nonfinite_volumes(tmp_path_factory, values):
    array = np.array(values, np.float32).reshape(2, 3, 4)
    path = _write_mhd(tmp_path_factory.mktemp("v") / "f.mhd", array)
    if np.isfinite(array).all():
        np.testing.assert_array_equal(io.read_volume(path).array, array)
    else:
        with pytest.raises(ImageReadError, match="f.mhd"):
            io.read_volume(path)
