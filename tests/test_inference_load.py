"""radiologynet.inference: loading any weights, listing image sources, the batched loader."""

from __future__ import annotations

import json

import pytest
import torch
from inference_fakes import ARCH, dicom, dicomdir, mixed_folder, png, run_folder, weights_folder

import radiologynet
from radiologynet.errors import (
    DatasetFormatError,
    ImageReadError,
    InvalidArgumentError,
    WeightsNotFoundError,
)
from radiologynet.inference import DecodedImages, image_batches, image_table, load
from radiologynet.models._folder import sha256_file


def test_load_a_run_folder_its_model_folder_and_the_weights_folder_alike(tmp_path):
    run = run_folder(tmp_path / "run1")
    for source in (run, run / "model", str(run / "model")):
        loaded = load(source)
        assert loaded.label_names == ("ct", "mr", "xr")
        assert loaded.task_kind == "multiclass"
        assert loaded.arch == ARCH
        assert loaded.weights_tag == "run1"
        assert loaded.sha256 == sha256_file(run / "model" / "model.safetensors")
        assert loaded.preprocessing.input_size == 32
        assert not loaded.model.training
        assert loaded.model.num_classes == 3


def test_load_refuses_another_architecture_and_a_run_without_weights(tmp_path):
    folder = weights_folder(tmp_path / "w")
    with pytest.raises(InvalidArgumentError, match="mobilenet_v3_small"):
        load(folder, arch="resnet18")
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "result.json").write_text("{}")
    with pytest.raises(WeightsNotFoundError, match="run folder without trained weights"):
        load(tmp_path / "failed")
    with pytest.raises(WeightsNotFoundError, match="No such file"):
        load(tmp_path / "nowhere")


def test_load_a_zoo_name_with_a_new_head():
    loaded = load("mobilenet_v3_small", num_classes=4)
    assert loaded.model.num_classes == 4
    assert loaded.weights_tag == "random"
    assert loaded.sha256 == ""
    assert loaded.label_names is None
    assert loaded.class_names() == ("0", "1", "2", "3")


def test_create_model_reads_the_architecture_from_the_folder_and_a_run_folder(tmp_path):
    run = run_folder(tmp_path / "run")
    model = radiologynet.create_model(weights=run)
    assert model.num_classes == 3
    assert model.radiologynet_arch.name == ARCH
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "result.json").write_text("{}")
    with pytest.raises(WeightsNotFoundError) as err:
        radiologynet.create_model(ARCH, weights=tmp_path / "failed")
    assert "radiologynet convert" not in str(err.value)


def test_image_table_folder_recursive_with_suffixless_dicom(tmp_path):
    files = mixed_folder(tmp_path / "data")
    table = image_table(tmp_path / "data")
    assert set(table.paths) == {files["a"], files["b"], files["c"], files["broken"]}
    assert image_table(files["a"]).paths == [files["a"]]


def test_image_table_dicomdir_and_csv(tmp_path):
    sources = [dicom(tmp_path / "src" / f"x{i}", i) for i in range(2)]
    index = dicomdir(tmp_path / "media", sources)
    listed = image_table(index).paths
    assert len(listed) == 2 and all(p.is_file() and p.parent != tmp_path / "src" for p in listed)
    assert len(image_table(tmp_path / "media").paths) == 2  # the index file is no image

    png(tmp_path / "imgs" / "one.png")
    sheet = tmp_path / "imgs" / "list.csv"
    sheet.write_text(f"path,sex\none.png,F\n{tmp_path / 'imgs' / 'one.png'},M\n")
    table = image_table(sheet)
    assert table.paths == [tmp_path / "imgs" / "one.png"] * 2
    assert table.column("Sex") == ["F", "M"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file\none.png\n")
    with pytest.raises(DatasetFormatError, match="no 'path' column"):
        image_table(bad)
    with pytest.raises(ImageReadError, match="no such file"):
        image_table(tmp_path / "missing")


def test_batches_in_order_with_error_records_and_header_sex(tmp_path):
    files = mixed_folder(tmp_path / "data")
    loaded = load(weights_folder(tmp_path / "w"))
    paths = [files["a"], files["broken"], files["c"], tmp_path / "gone.png", files["b"]]
    data = DecodedImages(paths, loaded.preprocessing, sex_from_header=True)
    batches = list(image_batches(data, batch_size=2, num_workers=1))
    assert [i for b in batches for i in b.indices] == [0, 1, 2, 3, 4]
    errors = [e for b in batches for e in b.errors]
    assert [bool(e) for e in errors] == [False, True, False, True, False]
    assert "broken.png" in errors[1] and "gone.png" in errors[3]
    images = torch.cat([b.images for b in batches])
    assert images.shape == (5, 1, 32, 32) and images.dtype == torch.uint8
    assert images[1].sum() == 0
    sex = torch.cat([b.sex for b in batches]).tolist()
    assert sex == [-1.0, -1.0, 1.0, -1.0, -1.0]  # PatientSex M of the DICOM file only
    # the same tensors with decoding in this process
    again = torch.cat([b.images for b in image_batches(data, batch_size=3, num_workers=0)])
    assert torch.equal(images, again)


def test_importing_inference_loads_no_torch():
    import subprocess
    import sys

    code = "import radiologynet.inference, sys; print(json.dumps('torch' in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) is False
