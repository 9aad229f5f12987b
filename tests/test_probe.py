"""``radiologynet probe``: the probes against brute-force references, the ranking on a
task where one feature set separates the classes and the other cannot, refusals of
mismatched files, ridge regression, and the files written.

Feature files are fabricated here in ``radiologynet embed``'s format: a parquet table
(``path``, ``label``, ``split``, ``embedding`` as a fixed-size list of float32/float16)
with JSON under the schema-metadata key ``radiologynet``.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
sklearn_linear = pytest.importorskip("sklearn.linear_model")
sklearn_metrics = pytest.importorskip("sklearn.metrics")

from radiologynet.analysis import stats  # noqa: E402
from radiologynet.analysis.probe import (  # noqa: E402
    FeatureSet,
    Split,
    assign_splits,
    knn,
    logreg,
    probe,
    read_features,
    ridge,
)
from radiologynet.analysis.probe.methods import draw_shots, sweep_c  # noqa: E402
from radiologynet.analysis.probe.scoring import accuracy, auroc, macro_f1, mae, whole  # noqa: E402
from radiologynet.cli import main  # noqa: E402
from radiologynet.errors import FeatureFileError, InvalidArgumentError  # noqa: E402

FAST = {"n_resamples": 200, "c_values": (1e-3, 1e-2, 1e-1, 1.0), "shots": (1, 5), "draws": 4}


def write_features(
    path, paths, labels, splits, embeddings, *, weights="resnet18.radiologynet", dtype=np.float32
):
    """A feature file exactly as ``radiologynet embed`` writes it."""
    embeddings = np.asarray(embeddings, dtype=dtype)
    column = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.ravel()), embeddings.shape[1])
    table = pa.table({"path": paths, "label": labels, "split": splits, "embedding": column})
    meta = {
        "model": weights.split(".")[0],
        "weights": weights,
        "weights_sha256": "ab" * 32,
        "preprocessing": {"mean": [0.5], "std": [0.5], "input_size": [3, 32, 32]},
        "version": "0.2.0",
    }
    pq.write_table(table.replace_schema_metadata({"radiologynet": json.dumps(meta)}), path)
    return path


def synthetic_task(n=240, dim=16, classes=3, seed=0):
    """Paths, labels, splits, features that separate the classes ("pretext") and pure
    noise ("random")."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    labels = [f"class{v}" for v in y]
    paths = [f"images/{i:04d}.png" for i in range(n)]
    splits = [("train", "train", "train", "val", "test")[i % 5] for i in range(n)]
    pretext = rng.normal(0, 1, (n, dim)) + 3.0 * np.eye(classes, dim)[y]
    noise = rng.normal(0, 1, (n, dim))
    return paths, labels, splits, pretext, noise, y


@pytest.fixture
def files(tmp_path):
    paths, labels, splits, pretext, noise, _ = synthetic_task()
    return (
        write_features(
            tmp_path / "pretext.parquet", paths, labels, splits, pretext, weights="resnet18.pretext"
        ),
        write_features(
            tmp_path / "random.parquet",
            paths,
            labels,
            splits,
            noise,
            weights="resnet18",
            dtype=np.float16,
        ),
    )


def _split(seed=0, n=150, dim=8, classes=3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(0, 1, (n, dim)) + 1.2 * np.eye(classes, dim)[y]
    return Split(x[:90], y[:90], x[90:120], y[90:120], x[120:], y[120:], classes)


def test_knn_matches_a_brute_force_loop():
    split = _split()
    scores = knn(split, k=7, temperature=0.07)
    memory = np.concatenate([split.x_train, split.x_val])
    labels = np.concatenate([split.y_train, split.y_val])
    for i, query in enumerate(split.x_test):
        sims = [
            float(np.dot(query, m) / (np.linalg.norm(query) * np.linalg.norm(m))) for m in memory
        ]
        nearest = sorted(range(len(sims)), key=lambda j: -sims[j])[:7]
        weights = np.exp(np.array([sims[j] for j in nearest]) / 0.07)
        weights /= weights.sum()
        votes = np.zeros(3)
        for j, w in zip(nearest, weights, strict=True):
            votes[labels[j]] += w
        np.testing.assert_allclose(scores.probabilities[i], votes, atol=1e-5)
        assert scores.predictions[i] == int(np.argmax(votes))


def test_logreg_picks_c_like_fresh_fits_and_solves_the_penalised_objective():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    split = _split(seed=1)
    grid = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
    scores = logreg(split, grid)
    # the C: the best validation accuracy of independent, cold-started fits (first on ties)
    mean, std = split.x_train.mean(0), split.x_train.std(0)
    accuracies = []
    for c in grid:
        model = sklearn_linear.LogisticRegression(C=c, max_iter=5000, tol=1e-10)
        model.fit((split.x_train - mean) / std, split.y_train)
        accuracies.append(np.mean(model.predict((split.x_val - mean) / std) == split.y_val))
    assert scores.settings["C"] == grid[int(np.argmax(accuracies))]
    # the refit: minimise sum(cross-entropy) + ||W||^2 / (2C) on standardised train + val
    x = np.concatenate([split.x_train, split.x_val])
    y = np.concatenate([split.y_train, split.y_val])
    mean, std = x.mean(0), x.std(0)
    z = (x - mean) / std
    c = scores.settings["C"]

    def objective(theta):
        w, b = theta[: 3 * 8].reshape(3, 8), theta[3 * 8 :]
        logits = z @ w.T + b
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return -log_p[np.arange(len(y)), y].sum() + (w**2).sum() / (2 * c)

    theta = scipy_optimize.minimize(objective, np.zeros(3 * 9), method="BFGS", tol=1e-10).x
    w, b = theta[:24].reshape(3, 8), theta[24:]
    logits = ((split.x_test - mean) / std) @ w.T + b
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(scores.probabilities, expected, atol=2e-3)


def test_warm_started_sweep_agrees_with_cold_fits():
    split = _split(seed=2)
    best, accuracies = sweep_c(split.x_train, split.y_train, split.x_val, split.y_val, (0.01, 1.0))
    assert len(accuracies) == 2 and best in (0.01, 1.0)
    assert accuracies[1] == np.mean(
        sklearn_linear.LogisticRegression(C=1.0, max_iter=1000)
        .fit(split.x_train, split.y_train)
        .predict(split.x_val)
        == split.y_val
    )


def test_metrics_equal_scikit_learn_on_the_whole_test_set():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200)
    probabilities = rng.dirichlet(np.ones(4), 200)
    probabilities[:, 2] = np.round(probabilities[:, 2], 1)  # ties count half
    predictions = probabilities.argmax(1)
    rows = whole(200)
    assert accuracy(y, predictions, rows)[0] == pytest.approx(
        sklearn_metrics.accuracy_score(y, predictions)
    )
    assert macro_f1(y, predictions, rows, 4)[0] == pytest.approx(
        sklearn_metrics.f1_score(y, predictions, average="macro", labels=range(4), zero_division=0)
    )
    # one-vs-rest, macro (roc_auc_score(multi_class="ovr") itself refuses the rounded scores)
    ovr = [sklearn_metrics.roc_auc_score(y == c, probabilities[:, c]) for c in range(4)]
    assert auroc(y, probabilities, rows)[0] == pytest.approx(np.mean(ovr))
    unrounded = rng.dirichlet(np.ones(4), 200)
    assert auroc(y, unrounded, rows)[0] == pytest.approx(
        sklearn_metrics.roc_auc_score(y, unrounded, multi_class="ovr", average="macro")
    )
    values = rng.normal(size=200)
    assert mae(values, values + 1.5, rows)[0] == pytest.approx(1.5)


def test_the_probe_ranks_separating_features_above_noise_with_disjoint_intervals(files, tmp_path):
    result = probe(files, tmp_path / "out", progress=False, **FAST)
    assert result.names == ("pretext", "resnet18")  # from the files' metadata
    rows = {(r["features"], r["method"], r["metric"]): r for r in result.table}
    for method in ("logreg", "knn"):
        for metric in ("accuracy", "macro_f1", "auroc"):
            good, bad = rows[("pretext", method, metric)], rows[("resnet18", method, metric)]
            assert good["ci_low"] > bad["ci_high"], (method, metric, good, bad)
            assert good["ci_low"] <= good["value"] <= good["ci_high"]
    paired = [c for c in result.comparisons if c["test"] == "paired bootstrap"]
    assert paired and all(c["significant"] and c["difference"] > 0 for c in paired)
    fewshot = [c for c in result.comparisons if c["method"] == "fewshot-5"]
    assert fewshot and all(c["test"] == "mannwhitneyu" for c in fewshot)
    assert "pretext vs resnet18 (logreg): YES, better: accuracy +" in result.summary
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {
        "probe.csv",
        "comparison.csv",
        "fewshot.csv",
        "split.csv",
        "probe.png",
        "summary.txt",
        "probe.json",
    }
    with open(tmp_path / "out" / "probe.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["features", "method", "metric", "value", "ci_low", "ci_high"]
    assert {r["method"] for r in table} == {"logreg", "knn", "fewshot-1", "fewshot-5"}
    draws = [r for r in result.fewshot if r["n"] == 5 and r["metric"] == "accuracy"]
    assert len(draws) == 2 * FAST["draws"]


def test_the_probe_says_when_it_cannot_tell(tmp_path):
    paths, labels, splits, _, noise, _ = synthetic_task(seed=4)
    other = np.random.default_rng(9).normal(0, 1, noise.shape)
    a = write_features(tmp_path / "a.parquet", paths, labels, splits, noise)
    b = write_features(tmp_path / "b.parquet", paths, labels, splits, other)
    result = probe([a, b], names=["a", "b"], methods=["logreg"], progress=False, **FAST)
    assert "a vs b (logreg): NOT SHOWN: accuracy" in result.summary


def test_few_shot_draws_are_the_same_images_for_every_feature_set():
    y = np.arange(60) % 3
    first = draw_shots(y, 5, 3, seed=0, draw=1)
    assert np.array_equal(first, draw_shots(y, 5, 3, seed=0, draw=1))
    assert not np.array_equal(first, draw_shots(y, 5, 3, seed=0, draw=2))
    assert np.bincount(y[first]).tolist() == [5, 5, 5]


def test_without_a_split_column_a_seeded_stratified_split_is_made_and_recorded(tmp_path):
    paths, labels, _, pretext, noise, y = synthetic_task(n=300)
    a = write_features(tmp_path / "a.parquet", paths, labels, [None] * 300, pretext)
    b = write_features(tmp_path / "b.parquet", paths, labels, [None] * 300, noise)
    result = probe([a, b], tmp_path / "out", methods=["knn"], progress=False, **FAST)
    assert result.split.startswith("made: seeded (0) stratified 60%/20%/20%")
    with open(tmp_path / "out" / "split.csv", newline="") as handle:
        recorded = {r["path"]: r["split"] for r in csv.DictReader(handle)}
    again, _ = assign_splits(read_features(a), "classification", 0)
    assert [recorded[p] for p in paths] == list(again)
    for name, share in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        for c in range(3):  # every class in the same shares
            members = [recorded[p] for p, v in zip(paths, y, strict=True) if v == c]
            assert members.count(name) == pytest.approx(share * 100, abs=1)
    other, _ = assign_splits(read_features(a), "classification", 1)
    assert list(other) != list(again)


def test_ridge_probes_a_numeric_label(tmp_path):
    rng = np.random.default_rng(5)
    n = 200
    age = rng.uniform(10, 200, n)
    informative = np.column_stack([age / 50 + rng.normal(0, 0.05, n), rng.normal(0, 1, (n, 7))])
    noise = rng.normal(0, 1, (n, 8))
    paths = [f"hand{i}.png" for i in range(n)]
    months = [f"{v:g}" for v in age]  # embed writes a regression target as text
    a = write_features(tmp_path / "a.parquet", paths, months, [""] * n, informative)
    b = write_features(tmp_path / "b.parquet", paths, months, [""] * n, noise)
    result = probe([a, b], names=["bones", "noise"], n_resamples=200, progress=False)
    assert result.task == "regression"
    rows = {(r["features"], r["metric"]): r for r in result.table}
    assert rows[("bones", "mae")]["value"] < 10 < rows[("noise", "mae")]["ci_low"]
    assert "bones vs noise (ridge): YES, better: MAE -" in result.summary
    split = Split(
        informative[:150],
        age[:150],
        informative[150:170],
        age[150:170],
        informative[170:],
        age[170:],
    )
    direct = ridge(split, alphas=(0.01, 1.0, 100.0))
    assert direct.settings["alpha"] in (0.01, 1.0, 100.0)
    with pytest.raises(InvalidArgumentError, match="cannot probe a regression label"):
        probe([a, b], methods=["knn"], progress=False)


def test_feature_files_for_different_images_are_refused_in_one_line(files, tmp_path, capsys):
    paths, labels, splits, _, noise, _ = synthetic_task()
    fewer = write_features(
        tmp_path / "fewer.parquet", paths[:-3], labels[:-3], splits[:-3], noise[:-3]
    )
    out = tmp_path / "out"
    assert main(["probe", str(files[0]), str(fewer), "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "different image sets" in error[0] and "fewer.parquet" in error[0]
    assert not out.exists()


def test_mismatched_labels_are_refused(files, tmp_path):
    paths, labels, splits, _, noise, _ = synthetic_task()
    relabelled = ["class0" if i == 7 else v for i, v in enumerate(labels)]
    bad = write_features(
        tmp_path / "bad.parquet", paths[::-1], relabelled[::-1], splits[::-1], noise[::-1]
    )
    with pytest.raises(FeatureFileError, match=r"mismatched labels on 1 images .*images/0007.png"):
        probe([files[0], bad], progress=False, **FAST)


def test_a_file_that_is_not_a_feature_file_is_refused(tmp_path):
    pq.write_table(pa.table({"path": ["a.png"], "label": ["x"]}), tmp_path / "other.parquet")
    with pytest.raises(FeatureFileError, match="no column split, embedding"):
        read_features(tmp_path / "other.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(FeatureFileError, match="not a readable parquet file"):
        read_features(tmp_path / "text.parquet")


def test_files_reordered_are_aligned_by_path(files, tmp_path):
    paths, labels, splits, pretext, _, _ = synthetic_task()
    order = np.random.default_rng(0).permutation(len(paths))
    shuffled = write_features(
        tmp_path / "shuffled.parquet",
        [paths[i] for i in order],
        [labels[i] for i in order],
        [splits[i] for i in order],
        pretext[order],
    )
    result = probe([files[0], shuffled], names=["a", "b"], methods=["knn"], progress=False, **FAST)
    rows = {(r["features"], r["metric"]): r["value"] for r in result.table}
    assert rows[("a", "accuracy")] == pytest.approx(rows[("b", "accuracy")])


def test_cli_names_feature_files_and_prints_the_summary(files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "probe",
        f"mine={files[0]}",
        f"baseline={files[1]}",
        "--out",
        str(out),
        "--methods",
        "knn",
        "--bootstrap",
        "100",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "Do the mine features help" in printed and "mine vs baseline (knn): YES, better" in printed
    )
    assert (out / "summary.txt").read_text().startswith("Do the mine features help")


def test_bootstrap_resamples_are_shared_by_seed_and_pair_the_comparison():
    seen = []
    stats.bootstrap_distribution(lambda rows: seen.append(rows) or rows.mean(1), 30, n_resamples=5)
    again = []
    stats.bootstrap_distribution(lambda rows: again.append(rows) or rows.mean(1), 30, n_resamples=5)
    assert np.array_equal(seen[0], again[0])
    a = np.random.default_rng(0).normal(0.8, 0.02, 1000)
    result = stats.paired_bootstrap(0.8, 0.7, a, a - 0.1, names=("x", "y"), n_comparisons=3)
    assert result.difference == pytest.approx(0.1)
    assert result.ci_low == pytest.approx(0.1) and result.significant
    assert result.p_corrected == pytest.approx(3 * 2 / 1001)
    tie = stats.paired_bootstrap(0.8, 0.8, a, a[::-1], names=("x", "y"))
    assert not tie.significant and tie.ci_low < 0 < tie.ci_high


def test_feature_set_in_memory_needs_no_file():
    paths, labels, splits, pretext, noise, _ = synthetic_task()
    sets = [
        FeatureSet(
            name,
            np.asarray(paths, dtype=object),
            np.asarray(labels, dtype=object),
            np.asarray(splits, dtype=object),
            x.astype(np.float32),
        )
        for name, x in (("pretext", pretext), ("noise", noise))
    ]
    result = probe(sets, methods=["knn"], progress=False, **FAST)
    assert result.names == ("pretext", "noise") and not result.files


def test_numeric_class_names_stay_classes_and_empty_labels_are_refused(tmp_path):
    paths, _, splits, pretext, _, y = synthetic_task()
    digits = [str(v) for v in y]  # class folders named 0, 1, 2
    a = write_features(tmp_path / "a.parquet", paths, digits, splits, pretext)
    result = probe([a], methods=["knn"], progress=False, **FAST)
    assert result.task == "classification" and result.details["classes"] == ["0", "1", "2"]
    unlabelled = write_features(tmp_path / "u.parquet", paths, [""] * len(paths), splits, pretext)
    with pytest.raises(FeatureFileError, match="240 images have no label"):
        probe([unlabelled], progress=False, **FAST)


@pytest.mark.slow
def test_embed_then_probe_end_to_end(tmp_path, capsys):
    """The real flow: ``radiologynet embed`` two initialisations of a folder task, then
    ``radiologynet probe`` on the files it wrote."""
    from inference_fakes import weights_folder

    from radiologynet.demo.quick import make_demo_dataset

    data = make_demo_dataset(tmp_path / "data", train=8, val=3, test=4)
    seeded = weights_folder(tmp_path / "w", label_names=("a", "b", "c"))
    for name, weights in (("seeded", str(seeded)), ("random", "random")):
        argv = [
            "embed",
            "--task",
            "folder",
            "--data",
            str(data),
            "--model",
            "mobilenet_v3_small",
            "--weights",
            weights,
            "--input-size",
            "32",
            "--out",
            str(tmp_path / f"{name}.parquet"),
        ]
        assert main(argv) == 0, capsys.readouterr().err
    out = tmp_path / "probe"
    argv = [
        "probe",
        str(tmp_path / "seeded.parquet"),
        str(tmp_path / "random.parquet"),
        "--out",
        str(out),
        "--shots",
        "1,2",
        "--draws",
        "3",
        "--bootstrap",
        "100",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "(12 test images, 3 classes; split: from the feature files)" in printed
    assert "Do the w features help" in printed  # named after the weights folder
    with open(out / "probe.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["features"] for r in rows} == {"w", "random"}
    assert (out / "probe.png").stat().st_size > 1000
