"""radiologynet.inference.predict and ``radiologynet predict``."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from inference_fakes import ARCH, dicom, mixed_folder, png, run_folder, tiny_timm_model

from radiologynet import transforms
from radiologynet.cli import main
from radiologynet.inference import load
from radiologynet.inference.predict import predict
from radiologynet.models._preprocessing import Preprocessing
from radiologynet.protocol.outputs import write_model_folder
from radiologynet.protocol.spec import TaskData
from radiologynet.train.heads import build_model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    return run_folder(root / "run", mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2))


def _reference(loaded, path):
    """The model's softmax on the image through the weights' own per-image transform."""
    x = transforms.for_weights(loaded.preprocessing)(path).unsqueeze(0)
    with torch.no_grad():
        return torch.softmax(loaded.model(x), dim=1)[0]


def test_predict_a_folder_with_an_unreadable_file(run, tmp_path):
    files = mixed_folder(tmp_path / "data")
    predictions = predict(run, tmp_path / "data", batch_size=2, num_workers=1)
    assert predictions.columns == (
        "path",
        "prediction",
        "score_ct",
        "score_mr",
        "score_xr",
        "error",
    )
    by_path = {row["path"]: row for row in predictions.rows}
    assert set(by_path) == {str(p) for p in files.values()}
    assert predictions.errors == 1
    broken = by_path[str(files["broken"])]
    assert broken["error"] and broken["prediction"] is None and broken["score_ct"] is None
    loaded = load(run)
    for name in ("a", "b", "c"):
        row = by_path[str(files[name])]
        scores = torch.tensor([row["score_ct"], row["score_mr"], row["score_xr"]])
        assert torch.allclose(scores, _reference(loaded, files[name]), atol=1e-5)
        assert row["prediction"] == ("ct", "mr", "xr")[int(scores.argmax())]
        assert row["error"] == ""


def test_written_as_csv_json_and_parquet(run, tmp_path):
    png(tmp_path / "data" / "one.png")
    (tmp_path / "data" / "bad.png").write_bytes(b"junk")
    predictions = predict(run, tmp_path / "data", num_workers=0)
    with open(predictions.write(tmp_path / "p.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [bool(r["error"]) for r in rows] == [True, False]
    assert float(rows[1]["score_mr"]) == pytest.approx(predictions.rows[1]["score_mr"])
    assert rows[0]["score_mr"] == ""
    as_json = json.loads(predictions.write(tmp_path / "p.json").read_text())
    assert as_json[0]["score_mr"] is None and as_json[1]["prediction"] in ("ct", "mr", "xr")
    import pyarrow.parquet as pq

    table = pq.read_table(predictions.write(tmp_path / "p.out", "parquet"))
    assert table.column_names == list(predictions.columns)
    meta = json.loads(table.schema.metadata[b"radiologynet"])
    assert meta["weights"] == "run" and meta["class_names"] == ["ct", "mr", "xr"]


def test_binary_scores_are_a_sigmoid_and_its_complement(tmp_path):
    model = tiny_timm_model(ARCH, num_classes=1)
    pre = Preprocessing(input_size=32)
    write_model_folder(
        model,
        tmp_path / "m",
        ARCH,
        "binary",
        TaskData([], [], None, 2, ("normal", "covid")),
        pre,
        32,
        zoo_model=True,
    )
    image = png(tmp_path / "x.png")
    (row,) = predict(tmp_path / "m", image, num_workers=0).rows
    x = transforms.for_weights(pre)(image).unsqueeze(0)
    with torch.no_grad():
        p = float(torch.sigmoid(model(x))[0, 0])
    assert row["score_covid"] == pytest.approx(p, abs=1e-5)
    assert row["score_normal"] == pytest.approx(1 - p, abs=1e-5)
    assert row["prediction"] == ("covid" if p >= 0.5 else "normal")


def test_bone_age_takes_sex_from_a_column_or_the_dicom_header(tmp_path):
    torch.manual_seed(0)
    model = build_model(ARCH, None, kind="regression", num_classes=1).eval()
    pre = Preprocessing(input_size=32)
    data = TaskData([], [], None, 1)
    write_model_folder(model, tmp_path / "m", ARCH, "regression", data, pre, 32, zoo_model=True)
    loaded = load(tmp_path / "m")
    assert loaded.task_kind == "regression"
    one = png(tmp_path / "imgs" / "one.png")
    header = dicom(tmp_path / "imgs" / "IM1", 1, PatientSex="F")
    sheet = tmp_path / "imgs" / "list.csv"
    sheet.write_text("path,Sex\none.png,M\none.png,F\none.png,\n")
    rows = predict(loaded, sheet, num_workers=0).rows
    x = transforms.for_weights(pre)(one).unsqueeze(0).repeat(2, 1, 1, 1)
    with torch.no_grad():
        expected = model(x, torch.tensor([1.0, 0.0]))[:, 0]
    assert [r["sex"] for r in rows] == ["M", "F", None]
    assert [r["prediction"] for r in rows[:2]] == pytest.approx(expected.tolist(), abs=1e-4)
    assert rows[2]["prediction"] is None and "needs the patient's sex" in rows[2]["error"]
    (from_header,) = predict(loaded, header, num_workers=0).rows
    assert from_header["sex"] == "F" and from_header["error"] == ""


def test_cli_predict_writes_the_file_and_refuses_bad_input_in_one_line(run, tmp_path, capsys):
    mixed_folder(tmp_path / "data")
    out = tmp_path / "preds.csv"
    code = main(
        ["predict", str(run), str(tmp_path / "data"), "--out", str(out), "--batch-size", "3"]
    )
    assert code == 0
    assert "4 images, 1 unreadable" in capsys.readouterr().out
    with open(out, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    missing = tmp_path / "nothing.csv"
    assert main(["predict", str(run), str(tmp_path / "gone"), "--out", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gone: no such file or" in err.lower()
    assert not missing.exists()


def test_cli_predict_with_gradcam(run, tmp_path, capsys):
    png(tmp_path / "data" / "a.png", shape=(40, 40))
    code = main(
        [
            "predict",
            str(run / "model"),
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "p.json"),
            "--gradcam",
            str(tmp_path / "cams"),
            "--no-progress",
        ]
    )
    assert code == 0
    index = json.loads((tmp_path / "cams" / "index.json").read_text())
    (row,) = json.loads((tmp_path / "p.json").read_text())
    assert index["images"][0]["target_name"] == row["prediction"]
