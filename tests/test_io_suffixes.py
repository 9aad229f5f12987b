"""One definition of the image suffixes (radiologynet.io), used by every folder scan."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from test_io_dicom import make_dicom, ramp

import radiologynet
from radiologynet import io
from radiologynet.torchdata import ImageFolderDataset

PACKAGE = Path(radiologynet.__file__).parent
SUFFIX_TUPLE = re.compile(r"""\(\s*["']\.(png|dcm|jpe?g|tiff?)["']\s*,""")


def test_suffixes_are_one_definition():
    assert io.IMAGE_SUFFIXES == io.PICTURE_SUFFIXES + io.DICOM_SUFFIXES
    assert {".dcm", ".dicom", ".ima", ".png", ".jpg", ".tif"} <= set(io.IMAGE_SUFFIXES)
    copies = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "suffixes.py" and SUFFIX_TUPLE.search(p.read_text())
    ]
    assert copies == [], f"image suffix tuples outside radiologynet/io/suffixes.py: {copies}"


def _tree(root: Path) -> None:
    for split in ("train", "val"):
        for k, name in enumerate(("a", "b")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for suffix in io.DICOM_SUFFIXES:
                make_dicom(folder / f"x{suffix}", ramp(8, 8, high=100 * (k + 1)))


def test_folder_task_dataset_and_pretraining_accept_every_dicom_suffix(tmp_path):
    from radiologynet.protocol.builtin import folder_splits
    from radiologynet.segmentation.reconstruction import find_images

    _tree(tmp_path)
    splits = folder_splits(tmp_path)
    assert {Path(s.path).suffix for s in splits.train} == set(io.DICOM_SUFFIXES)
    dataset = ImageFolderDataset(tmp_path / "train", size=16, progress=False)
    assert {p.suffix for p in dataset.paths} == set(io.DICOM_SUFFIXES)
    assert len(find_images(tmp_path)) == 12


def test_dataset_lister_takes_the_shared_suffixes(tmp_path):
    from radiologynet.datasets.base import list_images

    for suffix in (".png", ".ima", ".txt"):
        (tmp_path / f"f{suffix}").write_bytes(np.zeros(4, np.uint8).tobytes())
    assert [p.suffix for p in list_images(tmp_path)] == [".ima", ".png"]
