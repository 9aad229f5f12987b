"""Dataset sheets that would mix or invent data are refused, naming the file and the row
(issue 23, deliverable 9): duplicated and non-integer ids, empty splits, non-finite
values, empty patient ids."""

from __future__ import annotations

import pytest
from datasets_fakes import grazpedwri_rows, make_boneage, write_grazpedwri_csv

from radiologynet.data import read_splits
from radiologynet.data.benchmarks import boneage, grazpedwri
from radiologynet.errors import DatasetFormatError

HEADER = "seriesuid,coordX,coordY,coordZ,diameter_mm\n"


def _edit_train_sheet(root, edit):
    sheet = root / "train.csv"
    lines = sheet.read_text().splitlines()
    sheet.write_text("\n".join(edit(lines)) + "\n")
    return sheet


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda ls: [*ls, ls[1]], r"row 32: id 1377 is already on row 2"),
        (
            lambda ls: [*ls, ls[1].replace(ls[1].split(",")[1], "99", 1)],
            r"row 32: id 1377 is already on row 2",
        ),
        (lambda ls: [ls[0], "1377.9" + ls[1][4:], *ls[2:]], r"row 2: id '?1377.9'? is not a whole"),
        (lambda ls: [ls[0], "inf" + ls[1][4:], *ls[2:]], r"row 2: id '?inf'? is not a whole"),
        (lambda ls: [ls[0]], r"no train sample"),
    ],
)
def test_boneage_training_sheet_problems_name_file_and_row(tmp_path, edit, says):
    """Before: duplicates used twice, 1377.9 read as image 1377, a header-only sheet gave
    zero training samples, inf raised a raw OverflowError."""
    make_boneage(tmp_path, variant="rsna")
    _edit_train_sheet(tmp_path, edit)
    with pytest.raises(DatasetFormatError, match=says) as err:
        boneage.load(tmp_path)
    assert "train.csv" in str(err.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-3"])
def test_boneage_non_finite_or_negative_age_is_refused(tmp_path, value):
    make_boneage(tmp_path, variant="rsna")

    def edit(lines):
        first = lines[1].split(",")
        first[1] = value
        return [lines[0], ",".join(first), *lines[2:]]

    _edit_train_sheet(tmp_path, edit)
    with pytest.raises(DatasetFormatError, match=r"train\.csv, row 2: bone age"):
        boneage.load(tmp_path)


@pytest.mark.parametrize("column", ["patient_id", "filestem"])
def test_grazpedwri_empty_ids_are_refused(tmp_path, column):
    """Before: an empty patient_id raised a raw error from the group split."""
    rows = grazpedwri_rows(12)
    rows[3][column] = ""
    write_grazpedwri_csv(tmp_path / "dataset.csv", rows)
    with pytest.raises(DatasetFormatError, match=f"dataset.csv, row 5: {column} is empty"):
        grazpedwri.splits_from_csv(tmp_path / "dataset.csv")


def test_grazpedwri_duplicated_image_is_refused(tmp_path):
    rows = grazpedwri_rows(12)
    rows.append(dict(rows[0]))
    write_grazpedwri_csv(tmp_path / "dataset.csv", rows)
    with pytest.raises(DatasetFormatError, match="filestem .* is already on row"):
        grazpedwri.splits_from_csv(tmp_path / "dataset.csv")


def test_grazpedwri_header_only_sheet_is_refused(tmp_path):
    write_grazpedwri_csv(tmp_path / "dataset.csv", [])
    with pytest.raises(DatasetFormatError, match="dataset.csv: no image sample"):
        grazpedwri.splits_from_csv(tmp_path / "dataset.csv")


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ("1.2.3,nan,2,3,4", "coordX is 'nan'"),
        ("1.2.3,1,inf,3,4", "coordY is 'inf'"),
        ("1.2.3,1,2,-inf,4", "coordZ is '-inf'"),
        ("1.2.3,1,2,3,-4", "diameter_mm is '-4'"),
        ("1.2.3,1,2,3,0", "diameter_mm is '0'"),
        ("1.2.3,1,2,3,NaN", "diameter_mm is 'NaN'"),
        (",1,2,3,4", "seriesuid is empty"),
    ],
)
def test_luna16_non_finite_and_negative_nodules_are_refused(tmp_path, row, says):
    """Before: NaN, inf and negative nodule values were accepted."""
    from radiologynet.data.benchmarks.luna16 import read_annotations

    (tmp_path / "annotations.csv").write_text(HEADER + "1.2.3,1,2,3,4\n" + row + "\n")
    with pytest.raises(DatasetFormatError, match=says) as err:
        read_annotations(tmp_path)
    assert "annotations.csv line 3" in str(err.value)


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ("train,a.png,1.5,,\ntrain,a.png,2,,\n", "row 3: path .* already on row 2"),
        ("train,a.png,nan,,\n", "row 2: target is 'nan'"),
        ("train,a.png,inf,,\n", "row 2: target is 'inf'"),
        ("val,a.png,1,,\n", "no train sample"),
    ],
)
def test_a_split_file_that_mixes_or_invents_samples_is_refused(tmp_path, rows, says):
    (tmp_path / "s.csv").write_text("split,path,target,sex,group\n" + rows)
    with pytest.raises(DatasetFormatError, match=says):
        read_splits(tmp_path / "s.csv", "boneage", tmp_path)


def test_a_classification_target_of_1_point_5_is_refused(tmp_path):
    (tmp_path / "s.csv").write_text("split,path,target,sex,group\ntrain,a.png,1.5,,\n")
    with pytest.raises(DatasetFormatError, match="row 2: target '?1.5'? is not a whole"):
        read_splits(tmp_path / "s.csv", "covid19", tmp_path)
