"""Grad-CAM through pytorch-grad-cam on registry classifiers, with a known-attention input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import radiologynet
import radiologynet.errors
from radiologynet.analysis import explain
from radiologynet.cli import main
from radiologynet.errors import ImageReadError, WeightsNotFoundError
from radiologynet.models._folder import task_config

SIZE = 128  # resnet18's layer4 is 4 x 4 here: fine enough to tell the quadrants apart


def _blob_image(path, centre, size=SIZE):
    """A black picture with one bright disc centred at ``centre`` (row, col fractions)."""
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size), np.uint8)
    image[(yy - centre[0] * size) ** 2 + (xx - centre[1] * size) ** 2 < (0.1 * size) ** 2] = 255
    Image.fromarray(image).save(path)
    return path


def _blob_detector(seed: int = 0) -> torch.nn.Module:
    """resnet18 whose class-1 logit is the sum of layer4's (non-negative) features: with a
    black background only the features over the bright blob are non-zero, so the evidence
    for class 1 is exactly where the blob is."""
    torch.manual_seed(seed)
    model = radiologynet.create_model("resnet18", weights=None, num_classes=2)
    with torch.no_grad():
        model.fc.bias.zero_()
        model.fc.weight.copy_(torch.stack([-torch.ones(512), torch.ones(512)]))
    return model.eval()


@pytest.fixture(scope="module")
def detector():
    return _blob_detector()


@pytest.fixture
def blobs(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    _blob_image(folder / "a_top_right.png", (0.25, 0.75))
    _blob_image(folder / "b_bottom_left.png", (0.75, 0.25))
    return folder


def _quadrant(row: int, col: int) -> tuple[int, int]:
    return int(row >= SIZE // 2), int(col >= SIZE // 2)


def test_heatmap_peaks_on_the_discriminative_blob(detector, blobs, tmp_path):
    index_path = explain.explain_images(
        detector, blobs, tmp_path / "cams", label="blob", input_size=SIZE, targets=[1, 1]
    )
    index = json.loads(index_path.read_text())
    assert index["model"] == "blob" and len(index["images"]) == 2
    top_right, bottom_left = index["images"]
    assert top_right["source"].endswith("a_top_right.png")
    # a transposed or flipped map would put the peak in the opposite quadrant
    assert _quadrant(*top_right["peak_row_col"]) == (0, 1)
    assert _quadrant(*bottom_left["peak_row_col"]) == (1, 0)
    assert top_right["target"] == 1 and top_right["score"] > 0.5
    for entry in index["images"]:
        overlay = np.asarray(Image.open(index_path.parent / entry["overlay"]))
        heat = np.asarray(Image.open(index_path.parent / entry["heatmap"]))
        assert overlay.shape == (SIZE, SIZE, 3) and heat.shape == (SIZE, SIZE)
        row, col = entry["peak_row_col"]
        assert heat[row, col] == heat.max() == 255
        # the blob's quadrant holds most of the attention
        r0, c0 = (row // (SIZE // 2)) * (SIZE // 2), (col // (SIZE // 2)) * (SIZE // 2)
        inside = heat[r0 : r0 + SIZE // 2, c0 : c0 + SIZE // 2].astype(float).sum()
        assert inside > 0.5 * heat.astype(float).sum()


def test_target_layer_comes_from_the_registry():
    resnet = radiologynet.create_model("resnet18", weights=None, num_classes=2)
    assert explain.target_layer(resnet) is resnet.layer4
    mobilenet = radiologynet.create_model("mobilenet_v3_small", weights=None, num_classes=2)
    assert explain.target_layer(mobilenet) is mobilenet.blocks
    del mobilenet.radiologynet_arch  # falls back to pretrained_cfg["architecture"]
    assert explain.model_architecture(mobilenet).name == "mobilenet_v3_small"


def _run_folder(root, init, model):
    from radiologynet.demo.sweep import write_run
    from radiologynet.models._folder import write_weights_folder

    folder = write_run(
        root,
        task="blobs",
        model="resnet18",
        init=init,
        lr="1e-4",
        run=1,
        val={"f1": 0.9},
        test={"f1": 0.9},
        best_epoch=3,
    )
    write_weights_folder(model.state_dict(), folder / "model", arch="resnet18")
    return folder


def test_cli_explains_run_folders_and_draws_the_comparison_sheet(detector, blobs, tmp_path):
    runs = tmp_path / "runs"
    first = _run_folder(runs, "random", detector)
    second = _run_folder(runs, "radiologynet", _blob_detector(seed=1))
    loaded, label = explain.load_model(first)
    assert label == "random"
    assert torch.equal(loaded.fc.weight, detector.fc.weight)
    out = tmp_path / "cams"
    code = main(
        [
            "gradcam",
            "--model",
            str(first),
            "--model",
            str(second),
            "--images",
            str(blobs),
            "--out",
            str(out),
            "--input-size",
            str(SIZE),
            "--target",
            "1",
        ]
    )
    assert code == 0
    for init in ("random", "radiologynet"):
        index = json.loads((out / init / "index.json").read_text())
        assert [_quadrant(*e["peak_row_col"]) for e in index["images"]] == [(0, 1), (1, 0)]
    sheet = Image.open(out / "sheet.png")
    assert sheet.size[0] > sheet.size[1] * 0.9  # three columns, two rows
    described = json.loads((out / "sheet.json").read_text())
    assert described["models"] == ["random", "radiologynet"]
    assert [len(i["panels"]) for i in described["images"]] == [2, 2]


def test_bad_inputs_raise_library_errors(tmp_path):
    with pytest.raises(ImageReadError, match="No images"):
        explain.list_images(tmp_path)
    with pytest.raises(ImageReadError, match="does not exist"):
        explain.list_images([tmp_path / "missing.png"])
    with pytest.raises(WeightsNotFoundError, match="neither a run folder"):
        explain.load_model(tmp_path)
    assert (
        main(
            [
                "gradcam",
                "--model",
                str(tmp_path),
                "--images",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )


def test_non_classifier_run_folders_are_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    config = task_config(
        "BoneAgeRegressor", kind="regression", pretrained_cfg={}, encoder="inception_v3"
    )
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(radiologynet.errors.RadiologyNetError, match="classifiers only"):
        explain.load_model(folder)


@pytest.mark.parametrize("name", radiologynet.list_models())
def test_every_registry_architecture_has_its_gradcam_layer(name):
    with torch.device("meta"):  # structure only: no memory, no weights
        model = radiologynet.create_model(name, weights=None, num_classes=3)
    arch = radiologynet.get_architecture(name)
    layer = explain.target_layer(model)
    assert layer is model.get_submodule(arch.gradcam_layer)
    shapes = []
    layer.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
    model.eval()(torch.empty(1, 3, arch.input_size, arch.input_size, device="meta"))
    # Grad-CAM needs the last spatial feature map: (batch, channels, rows, cols), rows > 1
    (shape,) = shapes
    assert len(shape) == 4 and shape[2] == shape[3] and 5 <= shape[2] <= 14


def test_cams_work_on_arrays_for_a_mobilenet():
    model = radiologynet.create_model("mobilenet_v3_small", weights=None, num_classes=3)
    image = np.random.default_rng(0).integers(0, 255, (50, 70), dtype=np.uint8)
    (result,) = explain.compute_cams(model, [image], input_size=64)
    assert result.source == "image0" and result.heatmap.shape == (64, 64)
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
    assert result.target in (0, 1, 2) and 0.0 < result.score < 1.0
    with pytest.raises(radiologynet.errors.RadiologyNetError, match="one class index"):
        explain.compute_cams(model, [image], targets=[0, 1], input_size=64)
