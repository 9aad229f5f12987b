"""Files that used to escape the readers as other exceptions are now ImageReadErrors, so
``preprocess --skip-unreadable`` and ``skip_unreadable=True`` skip and count them, while
files that are merely odd (a contradictory header) are read and kept."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from test_io_dicom import make_dicom, ramp
from test_io_images import png_claiming

from radiologynet.cli import main
from radiologynet.data import ImageListDataset
from radiologynet.errors import ImageReadWarning


def _folder(tmp_path: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """Good pictures, odd-but-readable DICOMs and unreadable files in one folder."""
    src = tmp_path / "src"
    src.mkdir()
    good = []
    for k in range(3):
        PILImage.fromarray(np.full((20, 24), 60 * k, np.uint8)).save(src / f"ok{k}.png")
        good.append(src / f"ok{k}.png")
    odd = [
        make_dicom(src / "rgb_label.dcm", ramp(30, 40)),
        make_dicom(
            src / "empty_voi.dcm",
            ramp(30, 40),
            VOILUTSequence=pydicom.Sequence([pydicom.Dataset()]),
        ),
    ]
    ds = pydicom.dcmread(odd[0])
    ds.PhotometricInterpretation = "RGB"
    ds.save_as(odd[0])
    bomb = png_claiming(src, 60000, 60000)
    two = make_dicom(src / "two_samples.dcm", ramp(30, 40))
    ds = pydicom.dcmread(two)
    ds.SamplesPerPixel = 2
    ds.save_as(two)
    cut = make_dicom(src / "cut.ima", ramp(30, 40))
    cut.write_bytes(cut.read_bytes()[:-700])
    return good, odd, [bomb, two, cut]


def test_preprocess_skip_unreadable_skips_and_counts(tmp_path, capsys):
    good, odd, bad = _folder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageReadWarning)
        warnings.simplefilter("ignore", UserWarning)
        code = main(
            [
                "preprocess",
                str(tmp_path / "src"),
                "--out",
                str(tmp_path / "cache"),
                "--size",
                "32",
                "--skip-unreadable",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0
    assert f"{len(good) + len(odd)} images" in out and f"{len(bad)} unreadable skipped" in out
    for path in bad:
        assert f"skipped {path}" in out
    for path in good + odd:
        assert f"skipped {path}" not in out


def test_preprocess_without_skip_fails_with_one_error_listing_them(tmp_path, capsys):
    _, _, bad = _folder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(
            ["preprocess", str(tmp_path / "src"), "--out", str(tmp_path / "cache"), "--size", "32"]
        )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert all(path.name in err for path in bad)


@pytest.mark.filterwarnings("ignore::radiologynet.errors.ImageReadWarning")  # the odd files
def test_dataset_skip_unreadable_counts_the_same_files(tmp_path):
    good, odd, bad = _folder(tmp_path)
    paths = good + odd + bad
    with pytest.warns(UserWarning, match=f"skipped {len(bad)} unreadable"):
        ds = ImageListDataset(
            paths, list(range(len(paths))), size=32, skip_unreadable=True, progress=False
        )
    assert len(ds) == len(good) + len(odd)
    assert {Path(p) for p, _ in ds.unreadable} == set(bad)
    assert all(ds[i][0].shape == (1, 32, 32) for i in range(len(ds)))


def test_dicom_folder_by_header_tag_skips_and_counts_unreadable_headers(tmp_path):
    from radiologynet.data import DicomFolderDataset
    from radiologynet.errors import ImageReadError

    for k, part in enumerate(["CHEST", "HAND"]):
        make_dicom(tmp_path / f"f{k}.dcm", ramp(20, 20), BodyPartExamined=part)
    (tmp_path / "junk.dcm").write_bytes(b"not a dicom header" * 10)
    with pytest.raises(ImageReadError, match="junk.dcm"):
        DicomFolderDataset(tmp_path, target="BodyPartExamined", size=16, progress=False)
    with pytest.warns(UserWarning, match="unreadable DICOM header"):
        ds = DicomFolderDataset(
            tmp_path, target="BodyPartExamined", size=16, skip_unreadable=True, progress=False
        )
    assert ds.classes == ["CHEST", "HAND"] and len(ds) == 2
    assert [Path(p).name for p, _ in ds.unreadable] == ["junk.dcm"]


@pytest.mark.filterwarnings("ignore::radiologynet.errors.ImageReadWarning")  # the odd files
def test_a_cached_dataset_reports_its_unreadable_files_once(tmp_path):
    import warnings

    good, odd, bad = _folder(tmp_path)
    paths = good + odd + bad
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageListDataset(
            paths,
            list(range(len(paths))),
            size=32,
            cache=tmp_path / "cache",
            skip_unreadable=True,
            progress=False,
        )
    skipped = [w for w in caught if "skipped" in str(w.message)]
    assert len(skipped) == 1 and "ImageListDataset" in str(skipped[0].message)
    assert {Path(p) for p, _ in ds.unreadable} == set(bad)
