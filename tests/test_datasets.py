"""The benchmark loaders against tiny fake copies of each public layout (and the real
GRAZPEDWRI-DX dataset.csv for the patient split): the paper's splits, their determinism,
training-only fractions, the bone-age sex input, and the errors for mis-laid data."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasets_fakes import (
    BTMR_CLASSES,
    grazpedwri_rows,
    make_boneage,
    make_btmr,
    make_covid19,
    make_grazpedwri,
    make_image_folder,
    write_grazpedwri_csv,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from radiologynet.data import TASKS, ImageFolderDataset, get_task, load_task, read_splits
from radiologynet.data.benchmarks import boneage, btmr, covid19, grazpedwri
from radiologynet.data.splits import (
    Sample,
    Splits,
    cut_sizes,
    split_per_class,
    subsample_training,
)
from radiologynet.errors import (
    DatasetFormatError,
    DatasetNotFoundError,
    InvalidArgumentError,
    UnknownTaskError,
)


def stems(samples) -> set[str]:
    return {Path(s.path).name for s in samples}


def check_disjoint(splits: Splits) -> None:
    train, val, test = (stems(splits.split(n)) for n in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test


# --- registry -----------------------------------------------------------------------------


def test_registry_lists_the_papers_tasks():
    assert list(TASKS)[:5] == ["btmr", "covid19", "boneage", "grazpedwri", "luna16"]
    with pytest.raises(UnknownTaskError, match="btmr"):
        get_task("mnist")


@pytest.mark.parametrize(
    "module", [btmr, covid19, boneage, grazpedwri], ids=lambda m: m.__name__.rsplit(".")[-1]
)
def test_task_records_match_their_modules(module):
    task = TASKS[module.NAME]
    assert task.load is module.load and get_task(module.NAME.upper()) is task
    assert (task.num_outputs, task.input_needs_sex) == (module.NUM_OUTPUTS, module.INPUT_NEEDS_SEX)
    assert task.expected_tree == module.EXPECTED_TREE and module.DOWNLOAD_URL.startswith("https://")
    expected_outputs = len(task.classes) if task.kind == "multiclass" else 1
    assert task.num_outputs == expected_outputs
    assert (task.kind == "regression") == (task.classes == ())


# --- any folder of labelled images --------------------------------------------------------


def test_folder_task_leaves_hidden_folders_out_of_the_classes(tmp_path):
    """The folder task took .ipynb_checkpoints as a class (review 5.1)."""
    make_image_folder(tmp_path, ("cat", "dog"))
    for split in ("train", "val"):
        make_image_folder(tmp_path / split / ".ipynb_checkpoints", ("cat",), per_class=1)
    splits = load_task("folder", tmp_path, seed=0)
    assert splits.classes == ("cat", "dog")
    assert not [s for s in splits.train + splits.val if ".ipynb" in s.path]
    assert ImageFolderDataset(tmp_path / "train", size=16, progress=False).classes == ["cat", "dog"]


def test_folder_task_keeps_a_stratified_fraction_and_checks_its_arguments(tmp_path):
    make_image_folder(tmp_path, ("a", "b"), per_class=4)
    half = load_task("folder", tmp_path, seed=1, fraction=0.5)
    assert Counter(s.target for s in half.train) == {0: 2, 1: 2} and len(half.val) == 8
    with pytest.raises(InvalidArgumentError, match="fraction"):
        load_task("folder", tmp_path, fraction=2.0)
    # train/ alone is a ROOT/<class>/ folder, split here: 4 images a class give no
    # validation image (cut 3/0/1), which is refused with what to do
    with pytest.raises(DatasetNotFoundError, match="0 validation images; both are needed"):
        load_task("folder", tmp_path / "train")


# --- Brain Tumor MRI ------------------------------------------------------------------------


def test_btmr_paper_split(tmp_path):
    make_btmr(tmp_path)
    splits = load_task("btmr", tmp_path, seed=0)
    assert splits.classes == BTMR_CLASSES and splits.kind == "multiclass"
    testing = {p.name for p in (tmp_path / "Testing").rglob("*.jpg")}
    training = {p.name for p in (tmp_path / "Training").rglob("*.jpg")}
    assert stems(splits.test) == testing
    assert stems(splits.train) | stems(splits.val) == training
    check_disjoint(splits)
    counts = splits.counts()
    for index, name in enumerate(BTMR_CLASSES):
        n = len(list((tmp_path / "Training" / name).iterdir()))
        assert [counts["train"][name], counts["val"][name]] == cut_sizes(n, (0.75, 0.25))
        assert all(s.target == index for s in splits.train if f"/{name}/" in s.path)
    assert all(Path(s.path).is_absolute() and Path(s.path).is_file() for s in splits.train)
    assert all(isinstance(s.target, int) and s.sex is None for s in splits.val)


def test_btmr_found_inside_the_archive_folder(tmp_path):
    make_btmr(tmp_path / "brain-tumor-mri-dataset")
    assert len(btmr.load(tmp_path).test) == 13


def test_splits_are_reproducible_from_the_seed(tmp_path):
    make_btmr(tmp_path)
    a, b, c = (btmr.load(tmp_path, seed=s).to_csv_text() for s in (7, 7, 8))
    assert a == b
    assert a != c


def test_mislaid_btmr_names_the_download_and_the_tree(tmp_path):
    make_btmr(tmp_path)
    (tmp_path / "Testing").rename(tmp_path / "Test")
    with pytest.raises(DatasetNotFoundError) as info:
        btmr.load(tmp_path)
    message = str(info.value)
    assert btmr.DOWNLOAD_URL in message
    assert "Testing/" in message  # the expected tree
    assert "Test/" in message and "Training/" in message  # what was found
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        btmr.load(tmp_path / "nowhere")


# --- COVID-19 --------------------------------------------------------------------------------


def test_covid19_balanced_paper_split(tmp_path):
    top = make_covid19(tmp_path)
    splits = covid19.load(tmp_path, seed=0)
    assert splits.classes == ("Normal", "COVID") and splits.kind == "binary"
    check_disjoint(splits)
    for name in ("train", "val", "test"):
        counts = splits.counts()[name]
        assert counts["Normal"] == counts["COVID"]
    assert [splits.counts()[n]["COVID"] for n in ("train", "val", "test")] == [12, 2, 2]
    everything = [s for n in ("train", "val", "test") for s in splits.split(n)]
    assert {Path(s.path).parent.parent.name for s in everything} == {"COVID", "Normal"}
    assert all(Path(s.path).parent.name == "images" for s in everything)  # never masks/
    covid = {p.name for p in (top / "COVID" / "images").iterdir()}
    assert {Path(s.path).name for s in everything if s.target == 1} == covid


def test_covid19_undersampling_is_a_seeded_random_draw(tmp_path):
    top = make_covid19(tmp_path)
    first_in_order = sorted((top / "Normal" / "images").iterdir())[:16]

    def normals(seed):
        splits = covid19.load(top, seed=seed)
        return frozenset(
            s.path for n in ("train", "val", "test") for s in splits.split(n) if s.target == 0
        )

    drawn = {normals(seed) for seed in range(4)}
    assert len(drawn) == 4  # each seed draws its own Normal images
    assert frozenset(str(p) for p in first_in_order) not in drawn  # not "the first 3,616"
    assert normals(2) == normals(2)


def test_covid19_first_release_layout(tmp_path):
    make_covid19(tmp_path, legacy=True)
    splits = covid19.load(tmp_path)
    assert len(splits.train) == 24


def test_covid19_missing_class_folder(tmp_path):
    top = make_covid19(tmp_path)
    (top / "Normal").rename(top / "normal-images")
    with pytest.raises(DatasetNotFoundError, match="kaggle.com/datasets/tawsifurrahman"):
        covid19.load(tmp_path)


# --- RSNA Pediatric Bone Age -------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["kaggle", "rsna"])
@pytest.mark.parametrize("male_style", ["bool", "text", "int"])
def test_boneage_published_sets_and_sex(tmp_path, variant, male_style):
    truth = make_boneage(tmp_path, variant=variant, male_style=male_style)
    splits = load_task("boneage", tmp_path)
    assert splits.kind == "regression" and splits.classes == ()
    for name in ("train", "val", "test"):
        got = {int(Path(s.path).stem): (s.target, s.sex) for s in splits.split(name)}
        assert got == truth[name]
        assert all(isinstance(s.target, float) for s in splits.split(name))
    sexes = [s.sex for n in ("train", "val", "test") for s in splits.split(n)]
    assert set(sexes) == {0, 1}  # the authors' loader made them all 0
    folders = {Path(s.path).parent.name for s in splits.val}
    assert folders == {"boneage-validation-dataset-1", "boneage-validation-dataset-2"}
    assert all("boneage-training-dataset" in s.path for s in splits.train)


@pytest.mark.parametrize(
    ("value", "kind", "sex"),
    [
        (True, "male", 1),
        (False, "male", 0),
        (np.bool_(True), "male", 1),
        ("True", "male", 1),
        ("false", "male", 0),
        (" TRUE ", "male", 1),
        (1, "male", 1),
        (0.0, "male", 0),
        ("1", "male", 1),
        ("M", "MF", 1),
        ("F", "MF", 0),
        ("f", "MF", 0),
        ("Male", "MF", 1),
    ],
)
def test_parse_sex(value, kind, sex):
    assert boneage.parse_sex(value, kind, "sheet.csv") == sex


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("F", "male"),
        ("yes please", "male"),
        (float("nan"), "male"),
        (2, "male"),
        ("True", "MF"),
        ("X", "MF"),
    ],
)
def test_parse_sex_rejects_other_values(value, kind):
    with pytest.raises(DatasetFormatError, match="sheet.csv"):
        boneage.parse_sex(value, kind, "sheet.csv")


def test_boneage_bad_sex_value_names_the_row(tmp_path):
    make_boneage(tmp_path, variant="rsna")
    sheet = tmp_path / "train.csv"
    rows = sheet.read_text().splitlines()
    rows[3] = rows[3].rsplit(",", 1)[0] + ",unknown"
    sheet.write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetFormatError, match=r"train\.csv, row 4"):
        boneage.load(tmp_path)


def test_boneage_missing_pieces(tmp_path):
    truth = make_boneage(tmp_path, variant="rsna")
    image = tmp_path / "boneage-training-dataset" / f"{next(iter(truth['train']))}.png"
    image.unlink()
    with pytest.raises(DatasetNotFoundError, match=rf"1 of the 30 train images.*{image.name}"):
        boneage.load(tmp_path)
    (tmp_path / "Bone age ground truth.xlsx").unlink()
    with pytest.raises(DatasetNotFoundError, match="Ground truth bone age") as info:
        boneage.load(tmp_path)
    assert "rsna.org" in str(info.value)


# --- GRAZPEDWRI-DX -------------------------------------------------------------------------


def patients(samples) -> set[str]:
    return {s.group for s in samples}


@pytest.fixture(scope="module")
def real_graz_csv(shared_dir) -> Path:
    path = shared_dir / "data" / "grazpedwri-sample" / "dataset.csv"
    if not path.is_file():
        pytest.skip(f"the real GRAZPEDWRI-DX dataset.csv is not at {path}")
    return path


@pytest.fixture(scope="module")
def real_graz_splits(real_graz_csv) -> Splits:
    return grazpedwri.splits_from_csv(real_graz_csv, seed=0)


def test_grazpedwri_real_csv_patient_split(real_graz_splits, real_graz_csv):
    splits = real_graz_splits
    everything = [s for n in ("train", "val", "test") for s in splits.split(n)]
    labels = Counter(s.target for s in everything)
    assert labels == {1: 2473, 0: 2473}
    assert len({s.path for s in everything}) == 4946
    train, val, test = (patients(splits.split(n)) for n in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    for name, size in (("train", 3708), ("val", 618), ("test", 620)):
        part = splits.split(name)
        assert abs(len(part) - size) <= 0.02 * 4946
        share = sum(s.target for s in part) / len(part)
        assert 0.45 <= share <= 0.55, (name, share)
    import pandas as pd

    table = pd.read_csv(real_graz_csv, encoding="utf-8-sig", dtype={"filestem": str})
    positives = set(table.loc[table["osteopenia"] == 1, "filestem"] + ".png")
    assert {s.path for s in everything if s.target == 1} == positives
    negatives = {s.path for s in everything if s.target == 0}
    assert not negatives & positives
    first_rows = set(table.loc[table["osteopenia"] != 1, "filestem"].head(2473) + ".png")
    assert negatives != first_rows  # a random draw, not the authors' first 2,473 rows


def test_grazpedwri_real_csv_reproducible_and_seed_dependent(real_graz_splits, real_graz_csv):
    again = grazpedwri.splits_from_csv(real_graz_csv, seed=0)
    other = grazpedwri.splits_from_csv(real_graz_csv, seed=1)
    assert again.to_csv_text() == real_graz_splits.to_csv_text()
    assert other.to_csv_text() != real_graz_splits.to_csv_text()
    assert patients(other.test) != patients(real_graz_splits.test)


def test_grazpedwri_load_finds_images_in_every_part(tmp_path):
    rows = make_grazpedwri(tmp_path, parts=3)
    splits = load_task("grazpedwri", tmp_path, seed=1)
    everything = [s for n in ("train", "val", "test") for s in splits.split(n)]
    assert {Path(s.path).parent.name for s in everything} == {
        "images_part1",
        "images_part2",
        "images_part3",
    }
    assert all(Path(s.path).is_file() for s in everything)
    n_pos = sum(r["osteopenia"] == 1 for r in rows)
    assert Counter(s.target for s in everything) == {0: n_pos, 1: n_pos}
    train, val, test = (patients(splits.split(n)) for n in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    stem_to_patient = {r["filestem"]: str(r["patient_id"]) for r in rows}
    assert all(stem_to_patient[Path(s.path).stem] == s.group for s in everything)


def test_grazpedwri_csv_only_matches_load(tmp_path):
    make_grazpedwri(tmp_path)
    from_csv = grazpedwri.splits_from_csv(tmp_path / "dataset.csv", seed=5)
    loaded = grazpedwri.load(tmp_path, seed=5)
    for name in ("train", "val", "test"):
        assert stems(from_csv.split(name)) == stems(loaded.split(name))


def test_grazpedwri_missing_images_and_csv(tmp_path):
    make_grazpedwri(tmp_path)
    for png in (tmp_path / "images_part2").iterdir():
        png.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"are not in any images_part\*/"):
        grazpedwri.load(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="no dataset.csv") as info:
        grazpedwri.load(tmp_path / "images_part1")
    assert "figshare" in str(info.value)


def test_grazpedwri_rejects_unknown_flags(tmp_path):
    rows = grazpedwri_rows(12)
    rows[2]["osteopenia"] = "yes"
    write_grazpedwri_csv(tmp_path / "dataset.csv", rows)
    with pytest.raises(DatasetFormatError, match="row 4: osteopenia"):
        grazpedwri.splits_from_csv(tmp_path / "dataset.csv")


# --- data fractions ---------------------------------------------------------------------------


def test_fraction_shrinks_training_only_per_class(tmp_path):
    make_btmr(tmp_path, train_counts=(40, 44, 48, 52))
    full = btmr.load(tmp_path, seed=2)
    half = btmr.load(tmp_path, seed=2, fraction=0.5)
    quarter = btmr.load(tmp_path, seed=2, fraction=0.25)
    assert half.val == full.val and half.test == full.test
    assert set(quarter.train) < set(half.train) < set(full.train)  # nested subsets
    for name in BTMR_CLASSES:
        n = full.counts()["train"][name]
        assert half.counts()["train"][name] == round(0.5 * n)
        assert quarter.counts()["train"][name] == round(0.25 * n)
    assert half.fraction == 0.5 and "training fraction 0.5" in half.summary()
    assert btmr.load(tmp_path, seed=3, fraction=0.5).train != half.train


def test_fraction_keeps_every_class_present(tmp_path):
    make_covid19(tmp_path)
    tiny = covid19.load(tmp_path, fraction=0.05)
    assert Counter(s.target for s in tiny.train) == {0: 1, 1: 1}


def test_regression_fraction_is_stratified_by_target(tmp_path):
    make_boneage(tmp_path, n_train=100)
    full = boneage.load(tmp_path, seed=0)
    part = boneage.load(tmp_path, seed=0, fraction=0.2)
    assert part.val == full.val and part.test == full.test
    assert 18 <= len(part.train) <= 22
    deciles = np.quantile([s.target for s in full.train], np.linspace(0, 1, 11))
    kept = np.digitize([s.target for s in part.train], deciles[1:-1])
    assert len(set(kept.tolist())) == 10  # every decile of the target represented


def test_subsample_draw_differs_from_a_plain_prefix():
    samples = [Sample(f"/d/{i:03d}.png", i % 2) for i in range(200)]
    kept = subsample_training(samples, 0.1, seed=0, kind="binary")
    assert Counter(s.target for s in kept) == {0: 10, 1: 10}
    assert [s.path for s in kept] != [s.path for s in samples[:20]]


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5, "half", float("nan")])
def test_bad_fraction_is_rejected(tmp_path, fraction):
    make_btmr(tmp_path)
    with pytest.raises(InvalidArgumentError, match="fraction"):
        btmr.load(tmp_path, fraction=fraction)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(tmp_path, seed):
    make_btmr(tmp_path)
    with pytest.raises(InvalidArgumentError, match="seed"):
        btmr.load(tmp_path, seed=seed)


# --- the split contract -------------------------------------------------------------------------


def test_split_per_class_uses_exact_ratios():
    items = list(range(3616)) + list(range(10000, 13616))
    labels = [0] * 3616 + [1] * 3616
    parts = split_per_class(items, labels, (0.75, 0.125, 0.125), np.random.default_rng(0))
    assert [len(p) for p in parts] == [2 * 2712, 2 * 452, 2 * 452]
    assert sorted(x for p in parts for x in p) == sorted(items)


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=1, max_size=60),
    seed=st.integers(0, 2**32 - 1),
    ratios=st.sampled_from([(0.75, 0.25), (0.75, 0.125, 0.125), (0.5, 0.3, 0.2)]),
)
def test_split_per_class_is_a_stratified_partition(labels, seed, ratios):
    items = list(range(len(labels)))
    parts = split_per_class(items, labels, ratios, np.random.default_rng(seed))
    assert sorted(x for p in parts for x in p) == items
    for label in set(labels):
        sizes = [sum(labels[x] == label for x in p) for p in parts]
        assert sizes == cut_sizes(labels.count(label), ratios)
    again = split_per_class(items, labels, ratios, np.random.default_rng(seed))
    assert again == parts


def test_fraction_one_keeps_the_whole_training_split(tmp_path):
    make_btmr(tmp_path)
    assert btmr.load(tmp_path, fraction=1.0).train == btmr.load(tmp_path).train


def test_to_csv_writes_relative_paths_atomically(tmp_path):
    make_boneage(tmp_path / "data")
    splits = boneage.load(tmp_path / "data")
    out = tmp_path / "out" / "splits.csv"
    splits.to_csv(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["splits.csv"]  # no temp left
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["split", "path", "target", "sex", "group"]
    assert Counter(r["split"] for r in rows) == {"train": 30, "val": 8, "test": 6}
    assert all(not Path(r["path"]).is_absolute() for r in rows)
    assert all((tmp_path / "data" / r["path"]).is_file() for r in rows)
    first = splits.train[0]
    assert (float(rows[0]["target"]), int(rows[0]["sex"])) == (first.target, first.sex)


def test_summary_counts_each_class(tmp_path):
    make_btmr(tmp_path)
    summary = btmr.load(tmp_path).summary()
    assert "test      13  (glioma 3, meningioma 3, notumor 4, pituitary 3)" in summary


@pytest.mark.parametrize("task", ["boneage", "grazpedwri"])
def test_a_written_split_reads_back_identically(tmp_path, task):
    data = tmp_path / "data"
    (make_boneage if task == "boneage" else make_grazpedwri)(data)
    splits = load_task(task, data, seed=4)
    splits.to_csv(tmp_path / "splits.csv")
    again = read_splits(tmp_path / "splits.csv", task, data, seed=4)
    assert again == splits
    (tmp_path / "bad.csv").write_text("split,path,target,sex,group\nholdout,a.png,1,,\n")
    with pytest.raises(DatasetFormatError, match="row 2"):
        read_splits(tmp_path / "bad.csv", task, data)


# --- damaged sheets: one line naming the file and the cause (issue 14.10) -------------------


def _damage(path: Path, how: str) -> None:
    """Damage a CSV the ways users' copies get damaged."""
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "binary":
        path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00" + bytes(range(256)) * 4)
    elif how == "latin-1":
        path.write_bytes(
            text.replace(lines[1], lines[1].replace(",", "é,", 1)).encode("latin-1")
        )  # one accented character, saved as latin-1
    elif how == "ragged":
        lines.insert(3, lines[3] + ",extra,fields")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif how == "quote":
        lines[4] = lines[4].replace(",", ',"', 1)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


DAMAGE = ("empty", "binary", "latin-1", "ragged", "quote")
CAUSE = {
    "empty": "empty",
    "binary": "binary",
    "latin-1": "not UTF-8",
    "ragged": "fields where the header has",
    "quote": "unterminated quote",
}


def _one_line(err: pytest.ExceptionInfo, name: str, how: str) -> None:
    message = str(err.value)
    assert name in message and CAUSE[how] in message, message
    assert "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_grazpedwri_csv_is_one_clear_error(tmp_path, how):
    make_grazpedwri(tmp_path, n_patients=12)
    _damage(tmp_path / "dataset.csv", how)
    with pytest.raises(DatasetFormatError) as err:
        load_task("grazpedwri", tmp_path)
    _one_line(err, "dataset.csv", how)


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_boneage_csv_is_one_clear_error(tmp_path, how):
    make_boneage(tmp_path)
    _damage(tmp_path / "boneage-training-dataset.csv", how)
    with pytest.raises(DatasetFormatError) as err:
        load_task("boneage", tmp_path)
    _one_line(err, "boneage-training-dataset.csv", how)
