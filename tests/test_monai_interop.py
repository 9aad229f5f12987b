"""MONAI interop: the W x H trap of MONAI's LoadImage reproduced, and the dictionary
transform that applies a weight's preprocessing without falling into it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from radiologynet import Preprocessing
from radiologynet.errors import InvalidArgumentError
from radiologynet.io import read_image
from radiologynet.transforms import for_weights
from radiologynet.transforms.monai import monai_xy_order

monai = pytest.importorskip("monai")
from monai.data import PILReader  # noqa: E402
from monai.transforms import Compose, EnsureChannelFirstd, LoadImage, LoadImaged  # noqa: E402

PRE = Preprocessing(input_size=32)


def _picture(path, height: int, width: int):
    """An 8-bit picture spanning 0..255 with a bright block in its top-left corner."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 200, size=(height, width), dtype=np.uint8)
    pixels[: height // 3, : width // 4] = 255
    pixels[-1, -1] = 0
    Image.fromarray(pixels).save(path)
    return path


def test_the_trap_monai_loadimage_is_w_by_h(tmp_path):
    """MONAI's array is the transpose of radiologynet's, and the plain transform given it
    silently makes the mirrored image: the trap the issue found."""
    path = _picture(tmp_path / "r.png", 40, 60)
    ours = read_image(path).pixels
    theirs = LoadImage(image_only=True)(str(path))
    assert ours.shape == (40, 60) and tuple(theirs.shape) == (60, 40)
    np.testing.assert_array_equal(np.asarray(theirs), ours.T)
    reference = for_weights(PRE)(path)
    naive = for_weights(PRE)(np.asarray(theirs).astype(np.uint8))
    assert not torch.allclose(naive, reference)
    torch.testing.assert_close(naive, reference.transpose(-1, -2))


@pytest.mark.parametrize("shape", [(40, 60), (60, 40), (48, 48)])
def test_the_dictionary_transform_undoes_it(shape, tmp_path):
    from radiologynet.transforms.monai import RadiologyNetPreprocessd

    path = _picture(tmp_path / "r.png", *shape)
    reference = for_weights(PRE)(path)
    pipeline = Compose(
        [
            LoadImaged(keys=["image"]),
            EnsureChannelFirstd(keys=["image"]),
            RadiologyNetPreprocessd(keys=["image"], weights=PRE),
        ]
    )
    out = pipeline({"image": str(path), "label": 2})
    assert out["label"] == 2
    torch.testing.assert_close(out["image"], reference)  # float 0..255 kept as 8-bit, too
    # a path is read with radiologynet's own reader
    direct = RadiologyNetPreprocessd(keys=["image"], weights=PRE)({"image": path})
    torch.testing.assert_close(direct["image"], reference)


def test_a_reader_without_reverse_indexing_is_told_by_the_size(tmp_path):
    from radiologynet.transforms.monai import RadiologyNetPreprocessd

    path = _picture(tmp_path / "r.png", 40, 60)
    image = LoadImage(image_only=True, reader=PILReader(reverse_indexing=False))(str(path))
    assert tuple(image.shape) == (40, 60)
    out = RadiologyNetPreprocessd(keys=["image"], weights=PRE)({"image": image})
    torch.testing.assert_close(out["image"], for_weights(PRE)(path))


def test_the_order_rule():
    assert monai_xy_order((40, 60), None) is False  # plain numpy: (H, W)
    assert monai_xy_order((60, 40), {"width": 60, "height": 40}) is True
    assert monai_xy_order((40, 60), {"spatial_shape": np.array([60, 40])}) is False
    assert monai_xy_order((48, 48), {"width": 48, "height": 48}) is True  # MONAI's default
    assert monai_xy_order((48, 48), {"width": 48, "height": 48}, layout="yx") is False
    with pytest.raises(InvalidArgumentError, match="does not fit the recorded size"):
        monai_xy_order((30, 30), {"width": 60, "height": 40})
    with pytest.raises(InvalidArgumentError, match="layout must be"):
        monai_xy_order((30, 30), None, layout="hw")
