"""The decode budget (issue 23): every reader checks the size a header claims before it
decodes a pixel, refuses what is over budget naming the argument and the environment
variable that raise it, and refuses a decompression bomb even under a raised budget."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image as PILImage
from test_io_dicom import make_dicom, ramp

from radiologynet import io
from radiologynet.errors import ImageReadError, InvalidArgumentError
from radiologynet.io import DecodeBudget
from radiologynet.io.budget import check_decode, resolve_budget


@pytest.fixture(autouse=True)
def _no_budget_from_the_environment(monkeypatch):
    for variable in (
        "RADIOLOGYNET_MAX_PIXELS",
        "RADIOLOGYNET_MAX_VOXELS",
        "RADIOLOGYNET_MAX_RATIO",
    ):
        monkeypatch.delenv(variable, raising=False)


def test_over_budget_says_what_the_file_claims_and_how_to_raise_it(tmp_path):
    with pytest.raises(ImageReadError) as err:
        check_decode(tmp_path / "x.png", (11000, 11000), DecodeBudget())
    message = str(err.value)
    assert "x.png" in message and "11000 x 11000 pixels" in message and "121 M" in message
    assert "budget=DecodeBudget(max_pixels=...)" in message
    assert "RADIOLOGYNET_MAX_PIXELS" in message
    with pytest.raises(ImageReadError, match="RADIOLOGYNET_MAX_VOXELS"):
        check_decode("v.mha", (256, 2000, 2000), DecodeBudget(), volume=True)
    check_decode("v.mha", (250, 2000, 2000), DecodeBudget(), volume=True)  # 1e9: within


def test_a_bomb_is_refused_even_under_a_raised_budget_unless_asked():
    raised = DecodeBudget(max_pixels=10**9, max_voxels=10**10)
    with pytest.raises(ImageReadError, match="decompression bomb") as err:
        check_decode("b.png", (11000, 11000), raised, bytes_per_value=3, stored_bytes=344_000)
    assert "max_ratio=None" in str(err.value) and "RADIOLOGYNET_MAX_RATIO" in str(err.value)
    unchecked = DecodeBudget(max_pixels=10**9, max_voxels=10**10, max_ratio=None)
    check_decode("b.png", (11000, 11000), unchecked, bytes_per_value=3, stored_bytes=344_000)
    # a large scan that compresses like a scan (3:1) is read under the raised budget
    check_decode("s.png", (11000, 11000), raised, bytes_per_value=3, stored_bytes=120_000_000)
    # and a small image may compress as well as it likes
    check_decode("z.png", (5000, 5000), DecodeBudget(), bytes_per_value=3, stored_bytes=100)


def test_the_environment_sets_the_default_budget(monkeypatch):
    monkeypatch.setenv("RADIOLOGYNET_MAX_PIXELS", "250000000")
    monkeypatch.setenv("RADIOLOGYNET_MAX_VOXELS", "2e9")
    monkeypatch.setenv("RADIOLOGYNET_MAX_RATIO", "none")
    assert resolve_budget(None) == DecodeBudget(250_000_000, 2_000_000_000, None)
    assert resolve_budget(DecodeBudget()) == DecodeBudget()  # an argument wins
    monkeypatch.setenv("RADIOLOGYNET_MAX_PIXELS", "lots")
    with pytest.raises(InvalidArgumentError, match="RADIOLOGYNET_MAX_PIXELS"):
        resolve_budget(None)
    monkeypatch.setenv("RADIOLOGYNET_MAX_PIXELS", "-3")
    with pytest.raises(InvalidArgumentError, match="max_pixels"):
        resolve_budget(None)


@pytest.mark.parametrize(
    "field,value", [("max_pixels", 0), ("max_voxels", 1.5), ("max_ratio", 0.5)]
)
def test_an_invalid_budget_is_refused(field, value):
    with pytest.raises(InvalidArgumentError, match=field):
        DecodeBudget(**{field: value})


def test_pictures_are_checked_before_decoding(tmp_path, monkeypatch):
    PILImage.fromarray(np.zeros((300, 200), np.uint8)).save(tmp_path / "p.png")
    assert io.read_image(tmp_path / "p.png").pixels.shape == (300, 200)
    with pytest.raises(ImageReadError, match="300 x 200 pixels"):
        io.read_image(tmp_path / "p.png", budget=DecodeBudget(max_pixels=50_000))
    monkeypatch.setenv("RADIOLOGYNET_MAX_PIXELS", "50000")
    with pytest.raises(ImageReadError, match="max_pixels"):
        io.read_image(tmp_path / "p.png")
    image = io.read_image(tmp_path / "p.png", budget=DecodeBudget(max_pixels=60_000))
    assert image.pixels.shape == (300, 200)


def test_tiff_pages_count_together(tmp_path):
    pages = [PILImage.fromarray(np.full((30, 40), i, np.uint8)) for i in range(5)]
    pages[0].save(tmp_path / "s.tif", save_all=True, append_images=pages[1:])
    assert io.read_image(tmp_path / "s.tif").pixels.shape == (5, 30, 40)
    with pytest.raises(ImageReadError, match="5 frames of 30 x 40 pixels"):
        io.read_image(tmp_path / "s.tif", budget=DecodeBudget(max_voxels=5000))


def test_dicom_frames_are_checked_one_by_one_and_together(tmp_path):
    path = make_dicom(tmp_path / "m.dcm", np.stack([ramp()] * 3), NumberOfFrames=3)
    with pytest.raises(ImageReadError, match="pixels per image"):
        io.read_image(path, budget=DecodeBudget(max_pixels=2000))
    with pytest.raises(ImageReadError, match="3 frames of 40 x 56 pixels"):
        io.read_image(path, budget=DecodeBudget(max_voxels=6000))
    assert io.read_image(path, budget=DecodeBudget(max_voxels=6720)).pixels.shape == (3, 40, 56)


def test_volumes_are_checked_before_simpleitk_reads_them(tmp_path):
    import nibabel as nib

    array = np.zeros((6, 7, 8), np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "v.mha"), True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "v.nii.gz")
    for name in ("v.mha", "v.nii.gz"):
        assert io.read_volume(tmp_path / name).array.size == array.size
        with pytest.raises(ImageReadError, match="voxels") as err:
            io.read_volume(tmp_path / name, budget=DecodeBudget(max_voxels=300))
        assert name in str(err.value)


def test_a_dicom_series_is_checked_before_gdcm_reads_it(tmp_path):
    series = pydicom.uid.generate_uid()
    for index in range(3):
        make_dicom(
            tmp_path / f"s{index}.dcm",
            ramp(),
            SeriesInstanceUID=series,
            ImagePositionPatient=[0, 0, index],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            PixelSpacing=[1, 1],
        )
    assert io.read_volume(tmp_path).array.shape == (3, 40, 56)
    with pytest.raises(ImageReadError, match="3 x 40 x 56 voxels"):
        io.read_volume(tmp_path, budget=DecodeBudget(max_voxels=6000))
