"""One definition of the image suffixes (radiologynet.io), used by every folder scan."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from test_io_dicom import make_dicom, ramp

import radiologynet
from radiologynet import io
from radiologynet.data import ImageFolderDataset

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
    from radiologynet.data.benchmarks import folder
    from radiologynet.pretraining.reconstruction import find_images

    _tree(tmp_path)
    splits = folder.load(tmp_path)
    assert {Path(s.path).suffix for s in splits.train} == set(io.DICOM_SUFFIXES)
    dataset = ImageFolderDataset(tmp_path / "train", size=16, progress=False)
    assert {p.suffix for p in dataset.paths} == set(io.DICOM_SUFFIXES)
    assert len(find_images(tmp_path)) == 12


def test_dataset_lister_takes_the_shared_suffixes(tmp_path):
    for suffix in (".png", ".ima", ".txt"):
        (tmp_path / f"f{suffix}").write_bytes(np.zeros(4, np.uint8).tobytes())
    assert [p.suffix for p in io.list_image_files(tmp_path, recursive=False)] == [".ima", ".png"]


def _dicom_without_pixels(path: Path) -> Path:
    """A DICOM file holding no image (a DICOMDIR index, a structured report)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_one_lister_skips_hidden_files_and_finds_suffixless_dicom(tmp_path):
    from radiologynet.analysis import explain

    (tmp_path / "a.png").write_bytes(b"png")
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS junk
    make_dicom(tmp_path / "IM0001", ramp(8, 8))  # a PACS export without suffix
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.png").write_bytes(b"png")
    (tmp_path / ".Trashes").mkdir()
    (tmp_path / ".Trashes" / "c.png").write_bytes(b"png")
    flat = [tmp_path / "IM0001", tmp_path / "a.png"]
    assert io.list_image_files(tmp_path) == [*flat, tmp_path / "sub" / "b.png"]
    assert io.list_image_files(tmp_path, recursive=False) == flat
    assert explain.list_images(tmp_path) == flat
    assert io.list_image_files(tmp_path, io.DICOM_SUFFIXES) == [tmp_path / "IM0001"]


def test_dicom_archive_scan_and_dicom_dataset_find_the_same_images(tmp_path):
    """DICOMDIR (silently), DICOM files without pixel data and dot-files are not images
    to the pseudo-labeller nor to DicomFolderDataset."""
    import pytest

    from radiologynet.data import DicomFolderDataset
    from radiologynet.pretraining.pseudolabel.features import scan_archive

    folder = tmp_path / "a"
    folder.mkdir()
    for name in ("x.dcm", "._x.dcm", "IM0002"):  # a dot-file copy is still not an image
        make_dicom(folder / name, ramp(8, 8))
    _dicom_without_pixels(tmp_path / "DICOMDIR")
    _dicom_without_pixels(folder / "report.dcm")
    scan = scan_archive(tmp_path, progress=False)
    assert scan.paths == ["a/IM0002", "a/x.dcm"]
    assert [p for p, _ in scan.skipped] == ["a/report.dcm"]
    with pytest.warns(UserWarning, match=r"left out 1 DICOM file\(s\) without pixel data"):
        dataset = DicomFolderDataset(tmp_path, size=8, progress=False)
    assert [p.relative_to(tmp_path).as_posix() for p in dataset.paths] == scan.paths
    assert dataset.unreadable == []
    with pytest.warns(UserWarning, match="without pixel data"):
        cached = DicomFolderDataset(tmp_path, size=8, cache=tmp_path.parent / "c", progress=False)
    assert cached.paths == dataset.paths and cached.unreadable == []
