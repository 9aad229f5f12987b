"""Pseudo-labelling on a synthetic DICOM archive whose true groups are known."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from radiologynet.cli import main
from radiologynet.demo.synthetic_archive import DEFAULT_GROUPS, write_synthetic_archive
from radiologynet.errors import ArchiveError, InvalidArgumentError
from radiologynet.pretraining.pseudolabel import (
    FeatureWeights,
    PseudoLabelConfig,
    combine,
    normalised_entropy,
    pseudo_label,
    summarise_clusters,
)
from radiologynet.pretraining.pseudolabel import features as features_module
from radiologynet.pretraining.pseudolabel.features import text_features

#: The bound the clustering must reach on the synthetic archive (1.0 = perfect recovery).
ARI_BOUND = 0.8
FAST = {"image_size": 32, "progress": False, "batch_size": 64}


def fast(**settings) -> PseudoLabelConfig:
    """The clustering settings at toy size, quiet."""
    return PseudoLabelConfig(**{**FAST, **settings})


@pytest.fixture(autouse=True)
def _quiet_pydicom():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """42 images: six coherent groups + one deliberately mixed one (scanned documents filed
    under random modalities and body parts), 10% missing tags, two unreadable files."""
    root = tmp_path_factory.mktemp("archive")
    truth = write_synthetic_archive(
        root / "dicom", 42, include_mixed=True, missing_tag_fraction=0.1, n_unreadable=2, seed=1
    )
    return root / "dicom", truth


@pytest.fixture(scope="module")
def labelled(archive, tmp_path_factory):
    root, _ = archive
    out = tmp_path_factory.mktemp("labels") / "labels.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pseudo_label(root, out, fast(n_clusters=7))


def _truth_groups(truth, paths):
    by_path = {t.path: t.group for t in truth}
    return [by_path[p] for p in paths]


def test_clusters_recover_the_true_groups(archive, labelled):
    _, truth = archive
    ari = adjusted_rand_score(_truth_groups(truth, labelled.paths), labelled.assignments)
    assert ari >= ARI_BOUND, f"adjusted Rand index {ari:.3f} below {ARI_BOUND}"
    assert len(labelled.paths) == 42


def test_heterogeneity_filter_drops_the_mixed_cluster(archive, labelled):
    _, truth = archive
    groups = np.array(_truth_groups(truth, labelled.paths))
    excluded = [s for s in labelled.summaries if not s.kept]
    assert len(excluded) == 1
    members = set(groups[labelled.assignments == excluded[0].cluster])
    assert members == {"documents"}
    assert labelled.n_classes == 6
    assert all(s.heterogeneity < 0.2 for s in labelled.summaries if s.kept)


def test_unreadable_files_are_reported_and_skipped(labelled):
    skipped = dict(labelled.skipped)
    # broken_01/NOTES.txt is not DICOM (suffix, magic): not an image, not listed
    assert set(skipped) == {"broken_00/IM9999.dcm"}
    assert all("not a readable DICOM" in r for r in skipped.values())
    assert any("1 file(s) skipped" in n for n in labelled.notes)
    report = json.loads(labelled.report["json"].read_text())
    assert {s["path"] for s in report["skipped"]} == set(skipped)


def test_missing_tags_and_mixed_sizes_are_noted(labelled):
    assert any(n.startswith("BodyPartExamined missing in") for n in labelled.notes)
    assert any("different image sizes" in n for n in labelled.notes)


def test_labels_csv_rows_and_classes(labelled):
    with open(labelled.labels_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 42
    kept_labels = sorted({int(r["label"]) for r in rows if r["kept"] == "1"})
    assert kept_labels == list(range(6))
    assert all(r["label"] == "" for r in rows if r["kept"] == "0")
    meta = json.loads(labelled.labels_csv.with_suffix(".json").read_text())
    assert meta["n_clusters"] == 7 and meta["n_classes"] == 6
    assert len(meta["class_names"]) == 6


def test_outputs_are_deidentified(archive, labelled):
    _, truth = archive
    phi = {v for t in truth for v in (t.patient_name, t.patient_id, t.birth_date, t.study_date)}
    phi |= {t.patient_name.split("^")[0] for t in truth}
    texts = [
        labelled.labels_csv.read_text(),
        labelled.labels_csv.with_suffix(".json").read_text(),
        labelled.report["json"].read_text(),
        labelled.report["markdown"].read_text(),
    ]
    for text in texts:
        leaked = [v for v in phi if v in text]
        assert not leaked, f"PHI in output: {leaked[:3]}"
    assert labelled.report["mosaic"].stat().st_size > 1000
    captions = json.loads(labelled.report["json"].read_text())["captions"]
    assert len(captions) == 7 and all(c.startswith("cluster ") for c in captions.values())


def test_resume_from_cached_features(archive, labelled, monkeypatch):
    root, _ = archive

    def no_backbone(*args, **kwargs):
        raise AssertionError("the embeddings should have come from the cache")

    monkeypatch.setattr(features_module, "build_backbone", no_backbone)
    cache = labelled.labels_csv.with_name("labels.cache")
    again = pseudo_label(
        root, labelled.labels_csv.with_name("again.csv"), fast(n_clusters=7), cache_dir=cache
    )
    assert np.array_equal(again.assignments, labelled.assignments)


class Killed(Exception):
    """Stands for the process being killed mid-run."""


def test_interrupted_embedding_run_resumes(tmp_path, monkeypatch):
    root = tmp_path / "dicom"
    write_synthetic_archive(root, 12, seed=3)
    calls, killed = [], []
    real = features_module.build_backbone

    def counting(*args, **kwargs):
        model = real(*args, **kwargs)
        forward = model.forward

        def wrapped(x):
            calls.append(len(x))
            if len(calls) == 2 and not killed:
                killed.append(True)
                raise Killed  # the run dies after its first batch
            return forward(x)

        model.forward = wrapped
        return model

    monkeypatch.setattr(features_module, "build_backbone", counting)
    config = fast(n_clusters=3, batch_size=5)
    with pytest.raises(Killed):
        pseudo_label(root, tmp_path / "l.csv", config)
    calls.clear()
    pseudo_label(root, tmp_path / "l.csv", config)
    assert sum(calls) == 12 - 5  # only the images not cached before the kill


def test_cache_is_ignored_when_the_backbone_changes(archive, labelled, monkeypatch):
    root, _ = archive
    called = []
    real = features_module.build_backbone
    monkeypatch.setattr(
        features_module, "build_backbone", lambda *a, **k: called.append(1) or real(*a, **k)
    )
    pseudo_label(
        root,
        labelled.labels_csv.with_name("other.csv"),
        fast(n_clusters=7, image_size=40),
        cache_dir=labelled.labels_csv.with_name("labels.cache"),
    )
    assert called


def test_k_chosen_by_silhouette(tmp_path):
    root = tmp_path / "dicom"
    truth = write_synthetic_archive(root, 36, seed=2)
    result = pseudo_label(root, tmp_path / "labels.csv", fast(k_range=(2, 10)))
    ari = adjusted_rand_score(_truth_groups(truth, result.paths), result.assignments)
    assert ari >= ARI_BOUND
    meta = json.loads((tmp_path / "labels.json").read_text())
    assert meta["k_chosen_by"] == "silhouette" and len(meta["silhouette"]) == 9


def test_single_modality_archive_is_noted(tmp_path):
    mr = [g for g in DEFAULT_GROUPS if g.modality == "MR"]
    root = tmp_path / "dicom"
    write_synthetic_archive(root, 12, groups=mr, seed=4)
    result = pseudo_label(root, tmp_path / "labels.csv", fast(n_clusters=2))
    assert any("Only one modality (MR)" in n for n in result.notes)
    assert result.n_classes == 2


def test_fewer_images_than_clusters(tmp_path):
    root = tmp_path / "dicom"
    write_synthetic_archive(root, 6, seed=5)
    with pytest.raises(ArchiveError, match="6 readable image.*fewer than the 10 clusters"):
        pseudo_label(root, tmp_path / "labels.csv", fast(n_clusters=10))


def test_archive_without_dicom(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("hello")
    with pytest.raises(ArchiveError, match="No readable DICOM image.*0 file.*none found"):
        pseudo_label(tmp_path / "a", tmp_path / "l.csv", fast())
    with pytest.raises(ArchiveError, match="does not exist"):
        pseudo_label(tmp_path / "missing", tmp_path / "l.csv", fast())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(threshold=2.0), "threshold"),
        (dict(method="spectral"), "hdbscan"),
        (dict(n_clusters=0), "n_clusters=0"),
        (dict(k_range=(5, 3)), "k_range"),
        (dict(batch_size=0), "batch_size"),
        (dict(image_size=32.5), "image_size"),
    ],
)
def test_bad_settings_are_refused_before_the_archive_is_read(bad, message):
    with pytest.raises(InvalidArgumentError, match=message):
        fast(**bad)


def test_bad_text_csv(archive, tmp_path):
    root, _ = archive
    bad_csv = tmp_path / "text.csv"
    bad_csv.write_text("file,report\na,b\n")
    with pytest.raises(ArchiveError, match="'path'.*'text'"):
        pseudo_label(root, tmp_path / "l.csv", fast(n_clusters=3), text_csv=bad_csv)


def test_hdbscan_option(archive, tmp_path):
    root, truth = archive
    result = pseudo_label(root, tmp_path / "l.csv", fast(method="hdbscan"))
    clustered = result.assignments >= 0
    groups = np.array(_truth_groups(truth, result.paths))
    assert clustered.sum() > 0
    assert adjusted_rand_score(groups[clustered], result.assignments[clustered]) >= ARI_BOUND


def test_normalised_entropy_and_summaries():
    assert normalised_entropy(["CT"] * 5, 4) == 0.0
    assert normalised_entropy(["CT", "MR", "CR", "DX"], 4) == pytest.approx(1.0)
    assert normalised_entropy(["CT", "MR", None, None], 4) == pytest.approx(np.log(2) / np.log(4))
    assignments = np.array([0, 0, 0, 1, 1, 1])
    summaries = summarise_clusters(
        assignments,
        ["CT", "CT", "CT", "CT", "MR", "CR"],
        ["HEAD", "HEAD", None, "HEAD", "KNEE", "CHEST"],
        0.5,
    )
    assert [s.kept for s in summaries] == [True, False]
    assert summaries[0].body_parts == {"HEAD": 2, "MISSING": 1}
    assert summaries[1].heterogeneity == pytest.approx(1.0)


def test_combine_weights_the_squared_distances():
    rng = np.random.default_rng(0)
    blocks = {"categorical": rng.normal(size=(20, 3)), "image": rng.normal(size=(20, 50)) * 9}
    weights = FeatureWeights(categorical=2.0, image=0.5)
    x = combine(blocks, weights)
    assert x.shape == (20, 53)
    d = ((x[0] - x[1]) ** 2).sum()
    expected = 0.0
    for name, w in (("categorical", 2.0), ("image", 0.5)):
        centred = blocks[name] - blocks[name].mean(0)
        scaled = centred / np.linalg.norm(centred, axis=1).mean()
        expected += w * ((scaled[0] - scaled[1]) ** 2).sum()
    assert d == pytest.approx(expected)
    with pytest.raises(InvalidArgumentError, match="negative"):
        combine(blocks, FeatureWeights(image=-1.0))


def test_text_features_match_rows_by_path(tmp_path):
    csv_path = tmp_path / "reports.csv"
    csv_path.write_text("path,text\na.dcm,fracture of the radius\nc.dcm,normal chest\n")
    x = text_features(csv_path, ["a.dcm", "b.dcm", "c.dcm"])
    assert x[1].sum() == 0 and x[0].sum() > 0 and x[2].sum() > 0
    assert float(x[0] @ x[2]) == pytest.approx(0.0, abs=0.2)


def test_cli_pseudo_label(archive, tmp_path, capsys):
    root, _ = archive
    code = main(
        [
            "pseudo-label",
            str(root),
            "--out",
            str(tmp_path / "l.csv"),
            "--clusters",
            "7",
            "--image-size",
            "32",
            "--hide-paths",
        ]
    )
    out = capsys.readouterr()
    assert code == 0
    assert "7 clusters, 6 kept" in out.out and "excluded cluster" in out.out
    assert "note: 1 file(s) skipped" in out.err
    rows = list(csv.DictReader(open(tmp_path / "l.csv", newline="")))
    assert rows and all(r["path"] == "" and len(r["key"]) == 16 for r in rows)
    report = (tmp_path / "l-report" / "report.md").read_text()
    assert "broken_00" not in report and "study_0000" not in report
    code = main(["pseudo-label", str(root), "--out", str(tmp_path / "x.csv"), "--clusters", "99"])
    assert code == 1
    assert "fewer than the 99 clusters" in capsys.readouterr().err


def test_synthetic_archive_headers(tmp_path):
    import pydicom

    truth = write_synthetic_archive(tmp_path, 7, include_mixed=True, seed=0)
    ds = pydicom.dcmread(tmp_path / truth[0].path)
    for keyword in (
        "Modality",
        "BodyPartExamined",
        "StudyDescription",
        "SeriesDescription",
        "ProtocolName",
        "KVP",
        "SliceThickness",
        "PixelSpacing",
        "PatientName",
        "PatientID",
        "StudyDate",
    ):
        assert keyword in ds, keyword
    assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
    assert {t.modality for t in truth} >= {"CT", "MR", "CR", "DX"}
    assert Path(tmp_path / truth[2].path).is_file()


def test_file_with_undecodable_pixels_is_skipped(tmp_path):
    import pydicom

    root = tmp_path / "dicom"
    truth = write_synthetic_archive(root, 12, seed=6)
    broken = root / truth[0].path
    ds = pydicom.dcmread(broken)
    ds.PixelData = ds.PixelData[:10]  # header intact, pixels truncated
    ds.save_as(broken)
    result = pseudo_label(root, tmp_path / "labels.csv", fast(n_clusters=3))
    skipped = dict(result.skipped)
    assert list(skipped) == [truth[0].path]
    assert skipped[truth[0].path].startswith("Cannot decode the pixels of " + truth[0].path)
    assert str(root) not in skipped[truth[0].path]  # archive-relative in the report
    assert truth[0].path not in result.paths and len(result.paths) == 11


def test_embeddings_cached_with_the_old_pixel_decoding_are_recomputed(tmp_path):
    """The cache spec names the decoding version: vectors from the first-frame / min-max
    decoding (spec without ``decode``) are not reused."""
    root = tmp_path / "dicom"
    write_synthetic_archive(root, 6, seed=3)
    scan = features_module.scan_archive(root, progress=False)
    cache_dir = tmp_path / "cache"
    old_spec = {
        "arch": "resnet18",
        "weights": None,
        "image_size": 32,
        "thumbnail": features_module.THUMBNAIL_SIZE,
    }
    stale = features_module.EmbeddingCache(cache_dir, old_spec)
    keys = [features_module.EmbeddingCache.key(root, p) for p in scan.paths]
    stale.add(keys, np.full((len(keys), 512 + features_module.THUMBNAIL_SIZE**2), 7.0))
    _, thumbs, failed = features_module.image_embeddings(
        root, scan.paths, image_size=32, cache_dir=cache_dir, progress=False
    )
    assert not failed and thumbs.shape[0] == len(keys) and float(thumbs.max()) <= 1.0
    spec = json.loads((cache_dir / "spec.json").read_text())
    assert spec["decode"] == features_module.DECODE_VERSION
