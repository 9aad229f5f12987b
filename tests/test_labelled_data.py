"""Labelled images as users have them (issue 19): the ``folder`` task reads ROOT/<class>/
(split here, stratified and seeded), pre-split folders, and a CSV with an optional split
and patient column (a patient-grouped split)."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from radiologynet.data import load_task
from radiologynet.data.benchmarks.folder import read_labelled
from radiologynet.errors import DatasetFormatError, DatasetNotFoundError
from tests.datasets_fakes import make_class_folder, make_image_folder, make_labels_csv


def test_class_folders_are_split_stratified_and_seeded_and_hidden_folders_are_no_class(
    tmp_path,
):
    root = make_class_folder(tmp_path / "data", ("ct", "mr"), per_class=8)
    splits = load_task("folder", root, seed=0)
    assert splits.classes == ("ct", "mr")
    for name, share in (("train", 6), ("val", 1), ("test", 1)):
        assert Counter(splits.classes[s.target] for s in splits.split(name)) == {
            "ct": share,
            "mr": share,
        }
    assert not [s for s in splits.train + splits.val + splits.test if ".ipynb" in s.path]
    assert load_task("folder", root, seed=0) == splits  # seeded: the same again
    others = [load_task("folder", root, seed=seed).test for seed in range(1, 6)]
    assert any(test != splits.test for test in others)
    assert splits.to_csv_text().splitlines()[1].startswith("train,ct/")  # relative paths


def test_read_labelled_gives_path_label_split_rows_for_every_layout(tmp_path):
    pre = make_image_folder(tmp_path / "pre", ("a", "b"), per_class=2)
    rows = read_labelled(pre)
    assert {(r.label, r.split) for r in rows} == {
        ("a", "train"),
        ("b", "train"),
        ("a", "val"),
        ("b", "val"),
    }
    plain = read_labelled(make_class_folder(tmp_path / "plain", ("a", "b"), per_class=2))
    assert len(plain) == 4 and {r.split for r in plain} == {None}
    table = read_labelled(make_labels_csv(tmp_path / "csv", per_class=3, patients=2))
    assert [(r.label, r.patient) for r in table[:3]] == [("a", "P00"), ("b", "P01"), ("a", "P00")]
    assert all(r.path.startswith(str(tmp_path / "csv" / "images")) for r in table)


def test_csv_split_column_is_kept(tmp_path):
    labels = make_labels_csv(tmp_path, per_class=8, split=True)
    splits = load_task("folder", labels)
    assert len(splits.train) == 12 and len(splits.val) == 4 and splits.test == ()
    assert splits.to_csv_text().splitlines()[1] == "train,images/000.png,0,,"


def test_csv_patient_column_gives_a_patient_grouped_split(tmp_path):
    labels = make_labels_csv(tmp_path, per_class=12, patients=12)
    splits = load_task("folder", labels, seed=3)
    sides = {name: {s.group for s in splits.split(name)} for name in ("train", "val", "test")}
    assert sides["val"] and sides["test"]
    assert not sides["train"] & sides["val"] and not sides["train"] & sides["test"]
    assert not sides["val"] & sides["test"]
    few = make_labels_csv(tmp_path / "few", per_class=6, patients=3)
    with pytest.raises(DatasetFormatError, match="3 patients.*at least 8"):
        load_task("folder", few)


def test_bad_csvs_are_refused_naming_the_row(tmp_path):
    labels = make_labels_csv(tmp_path, per_class=2, split=True)
    rows = list(csv.reader(labels.open()))
    rows[2][2] = "validation"
    with labels.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(DatasetFormatError, match="row 3: split 'validation'"):
        load_task("folder", labels)
    rows[2][2], rows[3][2] = "val", ""
    with labels.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(DatasetFormatError, match="some rows name a split"):
        load_task("folder", labels)
    (tmp_path / "images" / "000.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="1 image.*images/000.png"):
        load_task("folder", labels)
    bare = tmp_path / "bare.csv"
    bare.write_text("file,class\nx.png,a\n")
    with pytest.raises(DatasetFormatError, match="missing column"):
        load_task("folder", bare)


def test_run_folders_are_named_by_the_data():
    from radiologynet.protocol.runner import data_label

    assert data_label("/data/wrist x-rays/") == "wrist_x_rays"
    assert data_label("/data/wrist/labels.csv") == "wrist_labels"
