"""Tiny fake copies of the four benchmark datasets' public layouts, in their real file
formats (JPEG/PNG images, CSV and XLSX sheets with the published column names), for the
loader and trainer tests. Each ``make_*`` builds one under a folder and returns what the
test needs to check the loader against.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from radiologynet.data.tasks import TaskInfo

SIZE = 16


def _image(path: Path, rng: np.random.Generator, *, rgb: bool = False, bits: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if bits == 16:
        pixels = rng.integers(0, 65536, size=(SIZE + 4, SIZE), dtype=np.uint16)
        pixels[0, 0], pixels[-1, -1] = 0, 65535  # the full range, as GRAZPEDWRI-DX's
        Image.fromarray(pixels).save(path)
        return
    shape = (SIZE, SIZE, 3) if rgb else (SIZE, SIZE)
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(path)


# --- Brain Tumor MRI ----------------------------------------------------------------------

BTMR_CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
BTMR_PREFIX = {"glioma": "gl", "meningioma": "me", "notumor": "no", "pituitary": "pi"}


def make_btmr(
    root: Path, train_counts: tuple[int, ...] = (8, 9, 12, 10), test_counts=(3, 3, 4, 3)
) -> Path:
    """``Training/<class>/Tr-<xx>_<nnnn>.jpg`` and ``Testing/<class>/Te-<xx>_<nnnn>.jpg``,
    every third JPEG stored with 3 channels as some of the real ones are. Returns ``root``."""
    rng = np.random.default_rng(0)
    for part, tag, counts in (("Training", "Tr", train_counts), ("Testing", "Te", test_counts)):
        for name, count in zip(BTMR_CLASSES, counts, strict=True):
            for i in range(count):
                file = root / part / name / f"{tag}-{BTMR_PREFIX[name]}_{i + 10:04d}.jpg"
                _image(file, rng, rgb=i % 3 == 0)
    return root


# --- COVID-19 Radiography -----------------------------------------------------------------

COVID_FOLDERS = ("COVID", "Normal", "Lung_Opacity", "Viral Pneumonia")


def make_covid19(root: Path, counts: dict[str, int] | None = None, *, legacy: bool = False) -> Path:
    """``COVID-19_Radiography_Dataset/<class>/{images,masks}/<class>-<n>.png`` plus the
    ``<class>.metadata.xlsx`` sheets (``legacy``: the first releases' images directly in
    ``<class>/``). Returns the ``COVID-19_Radiography_Dataset`` folder."""
    counts = counts or {"COVID": 16, "Normal": 40, "Lung_Opacity": 3, "Viral Pneumonia": 2}
    top = root / "COVID-19_Radiography_Dataset"
    rng = np.random.default_rng(1)
    for name in COVID_FOLDERS:
        images = top / name if legacy else top / name / "images"
        for n in range(1, counts[name] + 1):
            _image(images / f"{name}-{n}.png", rng)
            if not legacy:
                _image(top / name / "masks" / f"{name}-{n}.png", rng)
        sheet_name = "NORMAL" if name == "Normal" else name  # as in the real sheets
        pd.DataFrame(
            {
                "FILE NAME": [f"{sheet_name}-{n}" for n in range(1, counts[name] + 1)],
                "FORMAT": "PNG",
                "SIZE": "256*256",
                "URL": "https://example.org/source",
            }
        ).to_excel(top / f"{name}.metadata.xlsx", index=False)
    (top / "README.md.txt").write_text("COVID-19 Radiography Database (fake)\n")
    return top


# --- RSNA Pediatric Bone Age ----------------------------------------------------------------


def make_boneage(
    root: Path,
    *,
    variant: str = "kaggle",
    n_train: int = 30,
    n_val: int = 8,
    n_test: int = 6,
    male_style: str = "bool",
) -> dict[str, dict[int, tuple[float, int]]]:
    """The three sets in the layout of the Kaggle mirror (``variant="kaggle"``:
    ``boneage-training-dataset.csv``, images in ``boneage-training-dataset/
    boneage-training-dataset/``, an unlabelled ``boneage-test-dataset.csv``) or the RSNA
    original (``"rsna"``: ``train.csv``, flat image folders), with the validation CSV and
    images in ``boneage-validation-dataset-1/`` and ``-2/`` and the test ground truth in
    ``Bone age ground truth.xlsx``.

    ``male_style`` is how the ``male`` columns are written: ``"bool"`` (True/False, which
    pandas reads as booleans), ``"text"`` (true/FALSE/True mixed case, read as strings) or
    ``"int"`` (1/0). Returns, per split, image id -> (months, sex 1/0).
    """
    rng = np.random.default_rng(2)
    truth: dict[str, dict[int, tuple[float, int]]] = {}
    next_id = 1377
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        ids = [next_id + 3 * i for i in range(count)]
        next_id = ids[-1] + 5
        months = rng.integers(4, 228, size=count).astype(float)
        if split != "train":  # training ages are whole months; the others not always
            months[::4] += 0.5
        sexes = [int(i % 2 == 0) for i in range(count)]
        truth[split] = {i: (m, s) for i, m, s in zip(ids, months, sexes, strict=True)}

    def male(sex: int, i: int) -> object:
        if male_style == "bool":
            return bool(sex)
        if male_style == "int":
            return sex
        return ("true", "True", "TRUE")[i % 3] if sex else ("false", "False", "FALSE")[i % 3]

    train_dir = root / "boneage-training-dataset"
    if variant == "kaggle":
        train_dir = train_dir / "boneage-training-dataset"
    rows = [(i, int(m), male(s, k)) for k, (i, (m, s)) in enumerate(truth["train"].items())]
    train_csv = "boneage-training-dataset.csv" if variant == "kaggle" else "train.csv"
    _write_csv(root / train_csv, ["id", "boneage", "male"], rows)
    for i in truth["train"]:
        _image(train_dir / f"{i}.png", rng)

    val_rows = [(i, male(s, k), m) for k, (i, (m, s)) in enumerate(truth["val"].items())]
    _write_csv(root / "Validation Dataset.csv", ["Image ID", "male", "Bone Age (months)"], val_rows)
    for k, i in enumerate(truth["val"]):
        _image(root / f"boneage-validation-dataset-{1 + k % 2}" / f"{i}.png", rng)

    test_dir = root / ("boneage-test-dataset" if variant == "kaggle" else "Bone Age Test Set")
    pd.DataFrame(
        {
            "Case ID": list(truth["test"]),
            "Sex": ["M" if s else "F" for _, s in truth["test"].values()],
            "Ground truth bone age (months)": [m for m, _ in truth["test"].values()],
        }
    ).to_excel(root / "Bone age ground truth.xlsx", index=False)
    if variant == "kaggle":  # Kaggle's test sheet has no ages: the loader must skip it
        _write_csv(
            root / "boneage-test-dataset.csv",
            ["Case ID", "Sex"],
            [(i, "M" if s else "F") for i, (_, s) in truth["test"].items()],
        )
    for i in truth["test"]:
        _image(test_dir / f"{i}.png", rng)
    return truth


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


# --- GRAZPEDWRI-DX --------------------------------------------------------------------------

GRAZ_COLUMNS = (
    "filestem,patient_id,study_number,timehash,gender,age,laterality,projection,initial_exam,"
    "ao_classification,cast,diagnosis_uncertain,osteopenia,fracture_visible,metal,"
    "pixel_spacing,device_manufacturer"
).split(",")


def grazpedwri_rows(n_patients: int = 40, seed: int = 3) -> list[dict[str, object]]:
    """``dataset.csv`` rows for ``n_patients`` fake patients with 2-4 images each; about a
    third of the patients have osteopenia in some of their images."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(1, n_patients + 1):
        sex = "MF"[patient % 2]
        age = int(rng.integers(2, 18))
        sick = patient % 3 == 0
        for image in range(int(rng.integers(2, 5))):
            timehash = int(rng.integers(10**8, 10**9))
            side = "LR"[image % 2]
            projection = 1 + image % 2
            stem = f"{patient:04d}_{timehash:010d}_01_WRI-{side}{projection}_{sex}{age:03d}"
            rows.append(
                {
                    "filestem": stem,
                    "patient_id": patient,
                    "study_number": 1,
                    "timehash": timehash,
                    "gender": sex,
                    "age": age,
                    "laterality": side,
                    "projection": projection,
                    "initial_exam": 1,
                    "ao_classification": "23r-M/2.1",
                    "cast": "",
                    "diagnosis_uncertain": "",
                    "osteopenia": 1 if sick and image != 1 else "",
                    "fracture_visible": 1 if image == 0 else "",
                    "metal": "",
                    "pixel_spacing": 0.144,
                    "device_manufacturer": "Siemens",
                }
            )
    return rows


def write_grazpedwri_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write ``rows`` as GRAZPEDWRI-DX's ``dataset.csv``: UTF-8 with a BOM, CRLF line ends,
    flags ``1`` or empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.DictWriter(f, fieldnames=GRAZ_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_grazpedwri(root: Path, n_patients: int = 40, parts: int = 2) -> list[dict[str, object]]:
    """``dataset.csv`` plus one 16-bit PNG per row spread over ``images_part1..N/``.
    Returns the rows."""
    rows = grazpedwri_rows(n_patients)
    write_grazpedwri_csv(root / "dataset.csv", rows)
    rng = np.random.default_rng(4)
    for k, row in enumerate(rows):
        _image(root / f"images_part{1 + k % parts}" / f"{row['filestem']}.png", rng, bits=16)
    return rows


# --- any folder of labelled images (the folder task) ---------------------------------------


def make_image_folder(
    root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 2
) -> Path:
    """``root/{train,val}/<class>/<i>.png``, the layout of the ``folder`` task."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in classes:
            for i in range(per_class):
                _image(root / split / name / f"{i}.png", rng)
    return root


def make_class_folder(
    root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 8
) -> Path:
    """``root/<class>/<i>.png`` (no split folders: the ``folder`` task splits it), plus a
    hidden ``.ipynb_checkpoints`` folder holding an image, which is no class."""
    rng = np.random.default_rng(1)
    for name in classes:
        for i in range(per_class):
            _image(root / name / f"{i}.png", rng)
    _image(root / ".ipynb_checkpoints" / "0.png", rng)
    return root


def make_labels_csv(
    root: Path,
    classes: tuple[str, ...] = ("a", "b"),
    per_class: int = 8,
    *,
    patients: int | None = None,
    split: bool = False,
) -> Path:
    """``root/images/<i>.png`` and ``root/labels.csv`` (``path,label[,split][,patient]``,
    paths relative to the CSV's folder); with ``patients``, image ``i`` belongs to
    patient ``i % patients``; with ``split``, every 4th image is validation, the rest
    training."""
    rng = np.random.default_rng(2)
    header = ["path", "label"] + (["split"] if split else []) + (["patient"] if patients else [])
    rows = []
    for number in range(per_class * len(classes)):
        path = f"images/{number:03d}.png"
        _image(root / path, rng)
        row = [path, classes[number % len(classes)]]
        row += ["val" if number % 4 == 3 else "train"] if split else []
        row += [f"P{number % patients:02d}"] if patients else []
        rows.append(row)
    with (root / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return root / "labels.csv"


# --- a plugged protocol task -------------------------------------------------------------


def toy_task_info(name: str, aliases: tuple[str, ...] = ()) -> TaskInfo:
    """A two-class task record for plug-in tests (its loader reads nothing)."""
    return TaskInfo(
        name=name,
        title="a toy task",
        kind="multiclass",
        classes=("a", "b"),
        num_outputs=2,
        input_needs_sex=False,
        download_url="",
        expected_tree="",
        load=lambda root, **kw: None,
        aliases=aliases,
    )
