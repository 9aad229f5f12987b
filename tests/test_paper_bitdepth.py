"""The authors' 16-bit conversion (cv2.IMREAD_GRAYSCALE: v >> 8) against the project's
per-image min-max, on the real GRAZPEDWRI-DX samples."""

from __future__ import annotations

import numpy as np
import pytest

from radiologynet import io
from radiologynet.errors import ImageReadError
from radiologynet.io import paper_uint8


def test_minmax_differs_from_the_papers_conversion_by_one_grey_level(shared_dir):
    images = sorted((shared_dir / "data/grazpedwri-sample/images").glob("*.png"))
    if not images:
        pytest.skip("no GRAZPEDWRI-DX sample images in the shared folder")
    for path in images:
        pixels = io.read_image(path).pixels
        assert pixels.dtype == np.uint16  # a real 16-bit radiograph
        paper = paper_uint8(pixels)
        assert paper.dtype == np.uint8 and paper.max() == 255  # the full range is kept
        assert np.array_equal(paper, (pixels // 256).astype(np.uint8))
        ours = io.to_radiologynet_uint8(io.read_image(path)).astype(int)
        assert np.abs(ours - paper.astype(int)).max() <= 1


def test_paper_conversion_keeps_8_bit_and_refuses_other_types():
    eight = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert paper_uint8(eight) is eight
    assert paper_uint8(np.array([[0, 255, 256, 65535]], dtype=np.uint16)).tolist() == [
        [0, 0, 1, 255]
    ]
    with pytest.raises(ImageReadError, match="float32"):
        paper_uint8(np.zeros((2, 2), dtype=np.float32))


def test_paper_uint8_is_an_io_conversion_not_a_transform():
    from radiologynet import transforms

    assert io.paper_uint8 is paper_uint8 and "paper_uint8" in io.__all__
    assert not hasattr(transforms, "paper_uint8")
