"""PNG/JPEG reading (8 and 16 bits), the real GRAZPEDWRI-DX sample, and bad pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from radiologynet import io
from radiologynet.errors import ImageReadError, ImageReadWarning


@pytest.fixture(scope="module")
def sample_dir(shared_dir) -> Path:
    """The nine real GRAZPEDWRI-DX radiographs in ``../shared``."""
    path = shared_dir / "data" / "grazpedwri-sample" / "images"
    if not path.is_dir():
        pytest.skip(f"GRAZPEDWRI-DX sample not at {path}")
    return path


def test_16bit_png_keeps_its_dynamic_range(tmp_path):
    values = np.linspace(1000, 5000, 40 * 64).reshape(40, 64).astype(np.uint16)
    PILImage.fromarray(values).save(tmp_path / "x16.png")
    image = io.read_image(tmp_path / "x16.png")
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, values)
    out = io.to_radiologynet_uint8(image)
    assert out.min() == 0 and out.max() == 255
    # monotone in the input: no truncation (values & 0xFF) and no wrap-around
    order = np.argsort(values.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[order].astype(int)) >= 0)
    assert len(np.unique(out)) > 200  # the range is spread, not clipped to a few levels
    expected = np.rint((values - 1000.0) * 255.0 / 4000.0)
    assert np.abs(out - expected).max() <= 1


def test_8bit_png_is_kept_as_is(tmp_path):
    values = (np.arange(30 * 20).reshape(30, 20) % 200 + 20).astype(np.uint8)
    PILImage.fromarray(values).save(tmp_path / "x8.png")
    out = io.to_radiologynet_uint8(io.read_image(tmp_path / "x8.png"))
    np.testing.assert_array_equal(out, values)  # no min-max stretch of 8-bit inputs


def test_jpeg_rgb_becomes_grayscale(tmp_path):
    rgb = np.zeros((32, 48, 3), dtype=np.uint8)
    rgb[..., 1] = 180
    PILImage.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    image = io.read_image(tmp_path / "c.jpg")
    assert image.is_color
    gray = io.to_radiologynet_uint8(image)
    assert gray.shape == (32, 48) and abs(int(np.median(gray)) - round(0.587 * 180)) <= 3


def test_window_on_a_picture(tmp_path):
    values = np.array([[0, 100, 200, 300]], dtype=np.uint16)
    PILImage.fromarray(values).save(tmp_path / "w.png")
    out = io.to_radiologynet_uint8(io.read_image(tmp_path / "w.png", window=(150, 60)))
    assert out[0, 0] == out[0, 1] == 0 and out[0, 2] == out[0, 3] == 255


def test_real_grazpedwri_radiographs_are_16bit_and_convert_monotonically(sample_dir):
    files = sorted(sample_dir.glob("*.png"))
    assert len(files) == 9
    for path in files:
        image = io.read_image(path)
        assert image.pixels.dtype == np.uint16 and image.pixels.ndim == 2
        out = io.to_radiologynet_uint8(image)
        low, high = int(image.pixels.min()), int(image.pixels.max())
        expected = np.rint((image.pixels.astype(float) - low) * 255.0 / (high - low))
        assert np.abs(out.astype(int) - expected).max() <= 1
        naive_truncation = (image.pixels & 0xFF).astype(np.uint8)
        assert not np.array_equal(out, naive_truncation)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        io.read_image(tmp_path / "nope.png")


def test_corrupt_png(tmp_path):
    PILImage.fromarray(np.zeros((64, 64), np.uint8) + 9).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="bad.png"):
        io.read_image(tmp_path / "bad.png")


def test_text_file_behind_png_name(tmp_path):
    (tmp_path / "t.png").write_text("hello")
    with pytest.raises(ImageReadError, match="t.png"):
        io.read_image(tmp_path / "t.png")


def test_zero_size_array_and_one_pixel():
    with pytest.raises(ImageReadError, match="no pixels"):
        io.to_radiologynet_uint8(np.zeros((0, 5), dtype=np.uint16))
    assert io.to_radiologynet_uint8(np.array([[123]], dtype=np.uint16)).shape == (1, 1)


def test_unknown_suffix(tmp_path):
    (tmp_path / "x.xyz").write_bytes(b"abc")
    with pytest.raises(ImageReadError, match="unknown image type"):
        io.read_image(tmp_path / "x.xyz")


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=0, max_size=400), suffix=st.sampled_from([".png", ".jpg", ".dcm"]))
def test_fuzzed_bytes_raise_image_read_error(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("fz") / f"junk{suffix}"
    path.write_bytes(data)
    try:
        io.to_radiologynet_uint8(io.read_image(path))
    except ImageReadError as err:
        assert "junk" in str(err)


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    bits16=st.booleans(),
    seed=st.integers(0, 99),
)
def test_any_size_converts_to_uint8_same_shape(height, width, bits16, seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 65535 if bits16 else 255, (height, width)).astype(
        np.uint16 if bits16 else np.uint8
    )
    out = io.to_radiologynet_uint8(values)
    assert out.shape == (height, width) and out.dtype == np.uint8


# --- hostile pictures: the decisions documented in docs/preparing-images.md --------------


def png_claiming(tmp_path, width: int, height: int):
    """A PNG whose IHDR claims width x height (a decompression bomb when large)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def testpng_claiming_60000_squared_is_an_image_read_error(tmp_path):
    path = png_claiming(tmp_path, 60000, 60000)
    with pytest.raises(ImageReadError, match="too large") as err:
        io.read_image(path)
    assert "bomb.png" in str(err.value)


def test_multipage_tiff_of_equal_pages_is_a_stack(tmp_path):
    pages = [np.full((12, 16), 40 * (k + 1), dtype=np.uint8) for k in range(3)]
    pages[1][0, 0] = 0
    first, *rest = (PILImage.fromarray(p) for p in pages)
    first.save(tmp_path / "stack.tif", save_all=True, append_images=rest)
    image = io.read_image(tmp_path / "stack.tif")
    assert image.frames == 3 and image.pixels.shape == (3, 12, 16)
    np.testing.assert_array_equal(image.pixels, np.stack(pages))
    from radiologynet.transforms import as_uint8_gray

    np.testing.assert_array_equal(as_uint8_gray(tmp_path / "stack.tif"), pages[1])  # middle


def test_multipage_tiff_of_unequal_pages_gives_page_one_with_a_warning(tmp_path):
    big = np.tile(np.arange(32, dtype=np.uint8), (24, 1))
    PILImage.fromarray(big).save(
        tmp_path / "pyr.tif", save_all=True, append_images=[PILImage.fromarray(big[::2, ::2])]
    )
    with pytest.warns(ImageReadWarning, match="only the first page"):
        image = io.read_image(tmp_path / "pyr.tif")
    assert image.frames == 1
    np.testing.assert_array_equal(image.pixels, big)


#: EXIF orientation -> how the stored raster is turned for display (EXIF 2.3, Table 6)
DISPLAYED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".tiff-deflate", ".tiff-rgb"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_exactly_once_in_every_format(tmp_path, suffix, orientation):
    # Pillow 13 turns TIFF pages itself while loading (and scrambled 5-8); PNG and JPEG not
    stored = np.zeros((20, 30), dtype=np.uint8)
    stored[:4, :8] = 255  # a bright block in the stored top-left corner
    stored[12:, 24:] = 120  # and a grey one bottom-right: every turn and flip differs
    rgb = suffix == ".tiff-rgb"
    pil = PILImage.fromarray(np.stack([stored] * 3, -1) if rgb else stored)
    exif = pil.getexif()
    exif[0x0112] = orientation
    options = {".jpg": {"quality": 100}, ".tiff-deflate": {"compression": "tiff_deflate"}}
    path = tmp_path / ("photo" + suffix.split("-")[0])
    pil.save(path, exif=exif, **options.get(suffix, {}))
    image = io.read_image(path)
    expected = DISPLAYED[orientation](np.stack([stored] * 3, -1) if rgb else stored)
    assert image.pixels.shape == expected.shape
    assert np.abs(image.pixels.astype(int) - expected).max() <= (12 if suffix == ".jpg" else 0)


def test_exif_orientation_of_every_tiff_page(tmp_path):
    pages = [np.arange(12, dtype=np.uint8).reshape(3, 4) * 10 + i for i in range(3)]
    exif = PILImage.Exif()
    exif[0x0112] = 6
    first, *rest = (PILImage.fromarray(page) for page in pages)
    first.save(tmp_path / "pages.tif", save_all=True, append_images=rest, exif=exif)
    image = io.read_image(tmp_path / "pages.tif")
    np.testing.assert_array_equal(image.pixels, np.stack([np.rot90(p, -1) for p in pages]))


def _grey_alpha_16_png(path, grey: np.ndarray, alpha: np.ndarray):
    """A 16-bit grey+alpha PNG (colour type 4), written by hand: Pillow cannot write one."""
    import struct
    import zlib

    samples = np.stack([grey, alpha], -1).astype(">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in samples.reshape(grey.shape[0], -1))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    height, width = grey.shape
    header = struct.pack(">IIBBBBB", width, height, 16, 4, 0, 0, 0)
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def test_16bit_grey_alpha_png_keeps_16_bits(tmp_path):
    grey = np.linspace(0, 65535, 9 * 13).reshape(9, 13).astype(np.uint16)
    alpha = np.full_like(grey, 40000)
    image = io.read_image(_grey_alpha_16_png(tmp_path / "ga.png", grey, alpha))
    assert image.pixels.dtype == np.uint16  # was uint8: the high byte only
    np.testing.assert_array_equal(image.pixels, grey)
