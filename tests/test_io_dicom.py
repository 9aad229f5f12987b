"""DICOM reading: pydicom's bundled examples and files these tests write with pydicom."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import examples
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_voi_lut
from pydicom.uid import CTImageStorage, JPEGLSLossless, RLELossless

from radiologynet import io
from radiologynet.errors import ImageReadError, ImageReadWarning


def make_dicom(
    path: Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    compress: str | None = None,
    **tags: object,
) -> Path:
    """Write a real DICOM file (CT storage) holding ``pixels`` and ``tags``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    if bits_stored is None:
        bits_stored = 8 if pixels.dtype.itemsize == 1 else 16
    ds.set_pixel_data(pixels, photometric, bits_stored)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if compress is not None:
        ds.compress(compress)
    ds.save_as(path, enforce_file_format=True)
    return path


def ramp(rows: int = 40, cols: int = 56, high: int = 4000) -> np.ndarray:
    return np.linspace(0, high, rows * cols).reshape(rows, cols).astype(np.uint16)


# --- pydicom's bundled examples -------------------------------------------------------


def test_ct_example_in_hounsfield_units_with_metadata():
    path = examples.get_path("ct")
    ds = pydicom.dcmread(path)
    image = io.read_image(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(image.pixels, expected)
    assert image.modality == "CT"
    assert image.spacing == (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))
    assert image.path == Path(path)
    assert image.pixels.min() < -500  # air, in HU


def test_mr_example_uses_its_window_tags_through_pydicom():
    path = examples.get_path("mr")
    ds = pydicom.dcmread(path)
    image = io.read_image(path)
    assert image.window == (float(ds.WindowCenter), float(ds.WindowWidth))
    out = io.to_radiologynet_uint8(image)
    reference = apply_voi_lut(ds.pixel_array.astype(float), ds)
    low, high = 0, 2**ds.BitsStored - 1 if ds.PixelRepresentation == 0 else None
    if high is None:
        low, high = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    expected = np.rint((reference - low) * 255.0 / (high - low)).astype(np.uint8)
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_ybr_multiframe_example_is_an_rgb_stack():
    image = io.read_image(examples.get_path("ybr_color"))
    assert image.photometric == "RGB" and image.frames > 1
    assert image.pixels.shape[0] == image.frames and image.pixels.shape[-1] == 3
    gray = io.to_radiologynet_uint8(image)
    assert gray.shape == image.pixels.shape[:3] and gray.dtype == np.uint8


def test_palette_colour_example_becomes_rgb():
    image = io.read_image(examples.get_path("palette_color"))
    assert image.photometric == "RGB" and image.pixels.shape[-1] == 3


# --- files written by the tests -------------------------------------------------------


def test_rescale_slope_intercept_to_hu(tmp_path):
    raw = ramp()
    path = make_dicom(tmp_path / "ct.dcm", raw, RescaleSlope=2, RescaleIntercept=-1024)
    image = io.read_image(path)
    np.testing.assert_allclose(image.pixels, raw * 2.0 - 1024)


def test_explicit_window_and_presets(tmp_path):
    hu = np.array([[-1000, -600, 40, 1000]], dtype=np.int16).repeat(4, 0)
    path = make_dicom(
        tmp_path / "w.dcm", (hu + 1024).astype(np.uint16), RescaleSlope=1, RescaleIntercept=-1024
    )
    brain = io.to_radiologynet_uint8(io.read_image(path, window="brain"))
    assert brain[0, 0] == brain[0, 1] == 0 and brain[0, 3] == 255
    assert abs(int(brain[0, 2]) - 128) <= 1  # 40 HU is the brain window's centre
    lung = io.to_radiologynet_uint8(io.read_image(path), window="lung")
    assert 0 < lung[0, 0] < lung[0, 1] < 255 and lung[0, 3] == 255
    explicit = io.to_radiologynet_uint8(io.read_image(path, window=(40, 80)))
    np.testing.assert_array_equal(explicit, brain)
    assert set(io.WINDOW_PRESETS) >= {"lung", "mediastinum", "bone", "brain", "abdomen"}
    with pytest.raises(ImageReadError, match="unknown window preset"):
        io.read_image(path, window="liver-ish")


def test_window_tags_beat_minmax_and_explicit_window_beats_tags(tmp_path):
    raw = ramp(high=4000)
    path = make_dicom(tmp_path / "tags.dcm", raw, WindowCenter=1000, WindowWidth=500)
    out = io.to_radiologynet_uint8(io.read_image(path))
    assert out[raw < 700].max() == 0 and out[raw > 1300].min() == 255
    minmax = io.to_radiologynet_uint8(io.read_image(tmp_path / "tags.dcm", window=(2000, 4001)))
    assert minmax.min() == 0 and 0 < np.median(minmax) < 255


def test_voi_lut_sequence_applied_by_pydicom(tmp_path):
    raw = (np.arange(16 * 16).reshape(16, 16) % 256).astype(np.uint16)
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 0, 8])  # LUT Descriptor: 256 entries, 8-bit out
    item.add_new(0x00283006, "OW", np.arange(255, -1, -1, dtype="<u2").tobytes())  # inverting
    path = make_dicom(
        tmp_path / "lut.dcm", raw, bits_stored=8, VOILUTSequence=pydicom.Sequence([item])
    )
    out = io.to_radiologynet_uint8(io.read_image(path))
    np.testing.assert_array_equal(out, 255 - raw)
    # with a rescale (float HU values) and window tags too, pydicom's LUT still wins
    path = make_dicom(
        tmp_path / "lut2.dcm",
        raw,
        bits_stored=8,
        RescaleSlope=1,
        RescaleIntercept=0,
        WindowCenter=10,
        WindowWidth=5,
        VOILUTSequence=pydicom.Sequence([item]),
    )
    np.testing.assert_array_equal(io.to_radiologynet_uint8(io.read_image(path)), 255 - raw)


def test_minmax_when_no_window(tmp_path):
    raw = (ramp() + 100).astype(np.uint16)
    out = io.to_radiologynet_uint8(io.read_image(make_dicom(tmp_path / "m.dcm", raw)))
    assert out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out.astype(int), axis=1) >= 0)  # monotone: nothing wrapped


def test_monochrome1_is_inverted(tmp_path):
    raw = ramp()
    mono2 = io.to_radiologynet_uint8(io.read_image(make_dicom(tmp_path / "a.dcm", raw)))
    mono1 = io.to_radiologynet_uint8(
        io.read_image(make_dicom(tmp_path / "b.dcm", raw, photometric="MONOCHROME1"))
    )
    np.testing.assert_array_equal(mono1, 255 - mono2)
    assert io.read_image(tmp_path / "b.dcm").photometric == "MONOCHROME1"


def test_multiframe_is_a_stack(tmp_path):
    frames = np.stack([ramp() // (i + 1) for i in range(3)])
    path = make_dicom(tmp_path / "mf.dcm", frames.astype(np.uint16), NumberOfFrames=3)
    image = io.read_image(path)
    assert image.frames == 3 and image.pixels.shape == (3, 40, 56)
    np.testing.assert_array_equal(image.frame(1).pixels, frames[1])
    assert io.to_radiologynet_uint8(image).shape == (3, 40, 56)


def test_rgb_dicom(tmp_path):
    rgb = np.zeros((8, 10, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    image = io.read_image(make_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB"))
    assert image.is_color and image.pixels.shape == (8, 10, 3)
    assert int(io.to_radiologynet_uint8(image)[0, 0]) == round(0.299 * 200)


def test_rle_lossless_compressed_file_decodes_natively(tmp_path):
    raw = ramp()
    plain = io.read_image(make_dicom(tmp_path / "plain.dcm", raw))
    rle = io.read_image(make_dicom(tmp_path / "rle.dcm", raw, compress=RLELossless))
    assert pydicom.dcmread(tmp_path / "rle.dcm").file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(plain.pixels, rle.pixels)


def test_compressed_without_plugin_names_the_package(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder

    path = make_dicom(tmp_path / "jls.dcm", ramp())
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8 not really jpeg-ls \xff\xd9"])
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path)
    with pytest.raises(ImageReadError) as err:
        io.read_image(path)
    assert str(path) in str(err.value)
    if not get_decoder(JPEGLSLossless).is_available:
        assert "pip install" in str(err.value) and "JPEG-LS" in str(err.value)


# --- bad input ------------------------------------------------------------------------


def test_non_dicom_behind_dcm_suffix(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 300)
    with pytest.raises(ImageReadError, match="not a DICOM file") as err:
        io.read_image(path)
    assert "fake.dcm" in str(err.value)


def test_no_pixel_data(tmp_path):
    path = make_dicom(tmp_path / "nopix.dcm", ramp())
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="no pixel data"):
        io.read_image(path)


def test_unsupported_photometric(tmp_path):
    path = make_dicom(tmp_path / "hsv.dcm", ramp())
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "HSV"
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="unsupported photometric interpretation 'HSV'"):
        io.read_image(path)


def test_truncated_pixel_data(tmp_path):
    path = make_dicom(tmp_path / "t.dcm", ramp())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ImageReadError) as err:
        io.read_image(path)
    assert "t.dcm" in str(err.value)


def test_zero_size_dicom(tmp_path):
    path = make_dicom(tmp_path / "z.dcm", ramp())
    ds = pydicom.dcmread(path)
    ds.Rows = 0
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="zero-size"):
        io.read_image(path)


def test_one_pixel_dicom_reads_and_converts(tmp_path):
    image = io.read_image(make_dicom(tmp_path / "one.dcm", np.array([[7]], dtype=np.uint16)))
    assert io.to_radiologynet_uint8(image).shape == (1, 1)


# --- hostile headers: the decisions documented in docs/preparing-images.md ---------------


def _rewrite(path: Path, **tags: object) -> Path:
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    return path


def test_rgb_label_on_one_sample_is_read_as_grayscale_with_a_warning(tmp_path):
    raw = ramp(60, 80)
    path = _rewrite(make_dicom(tmp_path / "rgb1.dcm", raw), PhotometricInterpretation="RGB")
    with pytest.warns(ImageReadWarning, match="SamplesPerPixel 1"):
        image = io.read_image(path)
    assert image.photometric == "MONOCHROME2" and image.pixels.shape == (60, 80)
    np.testing.assert_array_equal(image.pixels, raw)
    out = io.to_radiologynet_uint8(image)
    assert out.shape == (60, 80) and out.min() == 0 and out.max() == 255


def test_monochrome_label_on_three_samples_is_read_as_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3)).astype(np.uint8)
    path = _rewrite(
        make_dicom(tmp_path / "rgb3.dcm", rgb, photometric="RGB"),
        PhotometricInterpretation="MONOCHROME2",
    )
    with pytest.warns(ImageReadWarning, match="SamplesPerPixel 3"):
        image = io.read_image(path)
    assert image.is_color and image.pixels.shape == (60, 80, 3)
    expected = np.rint(rgb.astype(float) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    np.testing.assert_array_equal(io.to_radiologynet_uint8(image), expected)
    # the per-image path used by training keeps the whole (60, 80) picture, not one row
    from radiologynet.transforms import as_uint8_gray

    with pytest.warns(ImageReadWarning):
        assert as_uint8_gray(path).shape == (60, 80)


def test_empty_voi_lut_item_is_ignored_with_a_warning(tmp_path):
    raw = ramp()
    path = make_dicom(tmp_path / "voi.dcm", raw, VOILUTSequence=pydicom.Sequence([Dataset()]))
    with pytest.warns(ImageReadWarning, match="VOI LUT Sequence"):
        image = io.read_image(path)
    out = io.to_radiologynet_uint8(image)
    assert out.min() == 0 and out.max() == 255  # min-max, not an AttributeError
    # with window tags beside the broken LUT, the window is used
    path = make_dicom(
        tmp_path / "voi2.dcm",
        raw,
        WindowCenter=1000,
        WindowWidth=500,
        VOILUTSequence=pydicom.Sequence([Dataset()]),
    )
    with pytest.warns(ImageReadWarning):
        out = io.to_radiologynet_uint8(io.read_image(path))
    assert out[raw < 700].max() == 0 and out[raw > 1300].min() == 255


@pytest.mark.parametrize(
    "center,width", [("NaN", "NaN"), ("inf", "400"), ("100", "inf"), ("100", "0"), ("2000", None)]
)
def test_unusable_window_tags_fall_back_to_minmax_with_a_warning(tmp_path, center, width):
    raw = ramp(high=4000)
    tags = (
        {"WindowCenter": center}
        if width is None
        else {"WindowCenter": center, "WindowWidth": width}
    )
    path = make_dicom(tmp_path / "w.dcm", raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own "invalid value for DS" warning
        _rewrite(path, **tags)
    with pytest.warns(ImageReadWarning, match="not a usable window"):
        image = io.read_image(path)
    assert image.window is None and image.voi is None
    out = io.to_radiologynet_uint8(image)
    reference = io.to_radiologynet_uint8(io.read_image(make_dicom(tmp_path / "p.dcm", raw)))
    np.testing.assert_array_equal(out, reference)  # the documented default: min-max
    assert len(np.unique(out)) == 256


def test_explicit_nonfinite_window_is_refused(tmp_path):
    path = make_dicom(tmp_path / "x.dcm", ramp())
    with pytest.raises(ImageReadError, match="finite"):
        io.read_image(path, window=(float("nan"), 400))


def test_one_bit_dicom_becomes_0_and_255(tmp_path):
    from pydicom.pixels import pack_bits

    bits = (np.indices((16, 16)).sum(0) % 2).astype(np.uint8)
    path = make_dicom(tmp_path / "bit.dcm", bits)
    _rewrite(path, BitsAllocated=1, BitsStored=1, HighBit=0, PixelData=pack_bits(bits))
    image = io.read_image(path)
    np.testing.assert_array_equal(image.pixels, bits)  # the stored values stay 0/1
    assert image.bits_stored == 1
    np.testing.assert_array_equal(io.to_radiologynet_uint8(image), bits * 255)


def test_four_bit_dicom_scales_by_its_range(tmp_path):
    values = np.tile(np.arange(16, dtype=np.uint8), (4, 1))
    image = io.read_image(make_dicom(tmp_path / "nib.dcm", values, bits_stored=4))
    np.testing.assert_array_equal(io.to_radiologynet_uint8(image), values * 17)


def test_conversion_errors_name_the_file(tmp_path):
    image = io.Image(pixels=np.ones((4, 5)), path=tmp_path / "odd.dcm", photometric="RGB")
    with pytest.raises(ImageReadError, match="odd.dcm"):
        io.to_radiologynet_uint8(image)
    image = io.Image(pixels=np.ones((2, 3, 4, 5)), path=tmp_path / "deep.dcm")
    with pytest.raises(ImageReadError, match="deep.dcm"):
        io.to_radiologynet_uint8(image)


def test_invalid_pixel_spacing_is_unknown_with_a_warning(tmp_path):
    path = make_dicom(tmp_path / "sp.dcm", ramp(), PixelSpacing=[0.5])
    with pytest.warns(ImageReadWarning, match="PixelSpacing"):
        image = io.read_image(path)
    assert image.spacing is None and image.pixels.shape == (40, 56)
    path = make_dicom(tmp_path / "ok.dcm", ramp(), ImagerPixelSpacing=[0.2, 0.3])
    assert io.read_image(path).spacing == (0.2, 0.3)


def test_header_text_is_one_spelling_per_value():
    from pydicom.multival import MultiValue

    assert io.header_text(" chest  wall ") == io.header_text("CHEST WALL") == "CHEST WALL"
    assert io.header_text(None) == io.header_text("") == ""
    assert io.header_text(MultiValue(str, ["ORIGINAL", "primary"])) == "ORIGINAL\\PRIMARY"
