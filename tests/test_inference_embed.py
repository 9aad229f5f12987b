"""radiologynet.embed and ``radiologynet embed``: pre-logits features under the weights'
own preprocessing, Parquet/npy files with what made them, reruns that reuse rows."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from datasets_fakes import BTMR_CLASSES, make_btmr
from inference_fakes import mixed_folder, png, weights_folder

import radiologynet
from radiologynet import transforms
from radiologynet.cli import main
from radiologynet.errors import InvalidArgumentError
from radiologynet.inference.embed import load_embedder, read_embeddings


def _reference(loaded, paths):
    transform = transforms.for_weights(loaded.preprocessing)
    x = torch.stack([transform(p) for p in paths])
    with torch.no_grad():
        return loaded.model.forward_head(loaded.model.forward_features(x), pre_logits=True)


@pytest.mark.slow
@pytest.mark.parametrize("arch", radiologynet.list_models())
def test_embeddings_are_timm_pre_logits_for_every_architecture(arch, tmp_path):
    size = 75 if arch == "inception_v3" else 32
    images = [png(tmp_path / f"{i}.png", i, shape=(30, 40)) for i in range(2)]
    loaded = load_embedder(arch, "random", input_size=size)
    result = radiologynet.embed(tmp_path, weights=loaded, num_workers=0, batch_size=2)
    expected = _reference(loaded, images).numpy()
    assert result.paths == [str(p) for p in images]
    assert result.vectors.shape == expected.shape
    np.testing.assert_allclose(result.vectors, expected, rtol=1e-4, atol=1e-5)


def test_the_weights_mean_and_std_are_applied(tmp_path):
    folder = weights_folder(tmp_path / "w", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    image = png(tmp_path / "img" / "a.png")
    loaded = load_embedder(None, folder)
    assert loaded.preprocessing.mean == (0.485, 0.456, 0.406)
    result = radiologynet.embed(image, weights=loaded, num_workers=0)
    np.testing.assert_allclose(result.vectors, _reference(loaded, [image]).numpy(), atol=1e-5)
    bare = replace(loaded, preprocessing=replace(loaded.preprocessing, mean=None, std=None))
    unnormalised = radiologynet.embed(image, weights=bare, num_workers=0)
    difference = np.linalg.norm(result.vectors - unnormalised.vectors)
    assert difference > 0.1 * np.linalg.norm(result.vectors)


def test_parquet_columns_metadata_and_unreadable_files_counted(tmp_path):
    files = mixed_folder(tmp_path / "data")
    folder = weights_folder(tmp_path / "w")
    out = tmp_path / "emb.parquet"
    result = radiologynet.embed(tmp_path / "data", weights=folder, out=out, num_workers=1)
    assert len(result) == 3 and [p for p, _ in result.unreadable] == [str(files["broken"])]
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.column_names == ["path", "label", "split", "embedding"]
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 1024)
    meta = json.loads(table.schema.metadata[b"radiologynet"])
    assert meta["model"] == "mobilenet_v3_small" and meta["weights"] == "w"
    assert len(meta["sha256"]) == 64 and meta["preprocessing"]["input_size"] == 32
    assert meta["version"] == radiologynet.__version__
    back = read_embeddings(out)
    np.testing.assert_array_equal(back.vectors, result.vectors)
    half = radiologynet.embed(
        tmp_path / "data", weights=folder, out=tmp_path / "h.parquet", dtype="float16"
    )
    assert pq.read_schema(tmp_path / "h.parquet").field("embedding").type == pa.list_(
        pa.float16(), 1024
    )
    np.testing.assert_allclose(
        read_embeddings(tmp_path / "h.parquet").vectors, half.vectors, rtol=1e-2, atol=1e-2
    )


def test_a_rerun_embeds_only_new_images_and_other_weights_are_refused(tmp_path, monkeypatch):
    png(tmp_path / "data" / "a.png", 1)
    folder = weights_folder(tmp_path / "w")
    out = tmp_path / "emb.npy"
    first = radiologynet.embed(tmp_path / "data", weights=folder, out=out, num_workers=0)
    png(tmp_path / "data" / "b.png", 2)
    from radiologynet.inference import embed as module

    seen = []
    real = module.run_batches
    monkeypatch.setattr(
        module,
        "run_batches",
        lambda loaded, paths, *a, **k: seen.extend(paths) or real(loaded, paths, *a, **k),
    )
    second = radiologynet.embed(tmp_path / "data", weights=folder, out=out, num_workers=0)
    assert [p.name for p in seen] == ["b.png"]
    assert second.reused == 1 and len(second) == 2
    back = read_embeddings(out)
    assert [p.split("/")[-1] for p in back.paths] == ["a.png", "b.png"]
    np.testing.assert_array_equal(back.vectors[0], first.vectors[0])
    other = weights_folder(tmp_path / "other", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    with pytest.raises(InvalidArgumentError, match="--overwrite"):
        radiologynet.embed(tmp_path / "data", weights=other, out=out, num_workers=0)
    replaced = radiologynet.embed(
        tmp_path / "data", weights=other, out=out, num_workers=0, overwrite=True
    )
    assert replaced.reused == 0 and read_embeddings(out).metadata["weights"] == "other"


def test_cli_embed_a_task_with_its_labels_and_splits(tmp_path, capsys):
    make_btmr(tmp_path / "btmr", train_counts=(3, 3, 3, 3), test_counts=(1, 1, 1, 1))
    out = tmp_path / "btmr.parquet"
    code = main(
        [
            "embed",
            "--task",
            "btmr",
            "--data",
            str(tmp_path / "btmr"),
            "--model",
            "mobilenet_v3_small",
            "--weights",
            "random",
            "--input-size",
            "32",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "16 embeddings (16 new, 0 already there), 0 unreadable" in capsys.readouterr().out
    back = read_embeddings(out)
    assert set(back.splits) == {"train", "val", "test"} and back.splits.count("test") == 4
    assert set(back.labels) == set(BTMR_CLASSES)
    assert back.metadata["weights"] == "random" and back.metadata["sha256"] == ""
    assert main(["embed", "--task", "btmr", "--model", "resnet18", "--out", str(out)]) == 1
    assert "needs --data ROOT" in capsys.readouterr().err


def test_pseudo_label_embeddings_use_the_weights_mean_and_std_as_embed_does(tmp_path):
    from radiologynet.pretraining.pseudolabel import features

    folder = weights_folder(tmp_path / "w", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    for i in range(3):
        png(tmp_path / "archive" / f"{i}.png", i, shape=(30, 40))
    names = [f"{i}.png" for i in range(3)]
    pooled, _, failed = features.image_embeddings(
        tmp_path / "archive",
        names,
        arch="mobilenet_v3_small",
        weights=str(folder),
        image_size=32,
        progress=False,
    )
    assert not failed
    expected = radiologynet.embed(tmp_path / "archive", weights=folder, num_workers=0)
    np.testing.assert_allclose(pooled, expected.vectors, rtol=1e-4, atol=1e-6)
