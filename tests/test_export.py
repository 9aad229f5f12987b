"""Export to ONNX / TorchScript / torch.export: every zoo architecture and the U-Nets
export and verify on the shipped sample images (random weights, tiny inputs), the metadata
travels with the file, the preprocessing can go into the graph, and a broken export is
caught before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from timm.layers import set_layer_config
from torch import nn

import radiologynet
from radiologynet import Preprocessing
from radiologynet.errors import ExportError, ExportVerificationError, InvalidArgumentError
from radiologynet.inference.export import (
    export_module,
    verification_batch,
)
from radiologynet.inference.export_formats import RUNNERS, read_metadata

pytest.importorskip("onnxruntime")

FAST = {"resnet18", "mobilenet_v3_small"}
#: The smallest inputs each architecture exports at (VGG's head pools to 7 x 7 below 224 px,
#: which ONNX cannot express; InceptionV3's unpadded convolutions need 75 px).
SIZES = {"vgg16": 224, "inception_v3": 80}


def _model(name: str, **kwargs) -> nn.Module:
    with set_layer_config(exportable=True):
        return radiologynet.create_model(name, num_classes=3, **kwargs)


def _params(names):
    return [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in names]


@pytest.mark.parametrize("name", _params(radiologynet.list_models()))
def test_every_zoo_architecture_exports_to_onnx_and_verifies(name, tmp_path):
    pre = Preprocessing(input_size=SIZES.get(name, 32))
    result = export_module(_model(name), tmp_path / "m.onnx", preprocessing=pre)
    check = result.verification
    assert check.passed and check.images == 6, check.summary()
    assert check.agreement == 1.0
    assert (tmp_path / "m.onnx").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporaries


@pytest.mark.parametrize(
    ("encoder", "decoder"),
    [
        (None, "smp"),
        pytest.param("resnet18", "smp", marks=pytest.mark.slow),
        pytest.param("resnet18", "paper", marks=pytest.mark.slow),
    ],
)
def test_unets_export_to_onnx_and_verify(encoder, decoder, tmp_path):
    net = radiologynet.create_unet(encoder, decoder=decoder, in_chans=1)
    pre = Preprocessing(input_size=48)
    result = export_module(net, tmp_path / "u.onnx", preprocessing=pre, in_chans=1)
    assert result.verification.passed, result.verification.summary()
    out = RUNNERS["onnx"](tmp_path / "u.onnx")(verification_batch(pre, in_chans=1)[:3])
    assert out.shape == (3, 1, 48, 48)


@pytest.mark.parametrize("format", ["torchscript", "pt2"])
def test_torchscript_and_pt2_verify_with_a_dynamic_batch(format, tmp_path):
    pre = Preprocessing(input_size=32)
    model = _model("resnet18")
    result = export_module(model, tmp_path / f"m.{format}", preprocessing=pre, format=format)
    assert result.verification.passed, result.verification.summary()
    run = RUNNERS[format](tmp_path / f"m.{format}")
    batch = verification_batch(pre)
    for size in (1, 5):  # the file was traced on a batch of two
        with torch.no_grad():
            expected = model(batch[:size]).numpy()
        np.testing.assert_allclose(run(batch[:size]), expected, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_unet_exports_as_pt2(tmp_path):
    net = radiologynet.create_unet("resnet18", in_chans=1)
    result = export_module(
        net,
        tmp_path / "u.pt2",
        preprocessing=Preprocessing(input_size=48),
        in_chans=1,
        format="pt2",
    )
    assert result.verification.passed


@pytest.mark.parametrize("format", ["onnx", "torchscript", "pt2"])
def test_metadata_travels_with_the_file(format, tmp_path):
    pre = radiologynet.get_weights("resnet18.imagenet").preprocessing
    pre = Preprocessing(**{**pre.__dict__, "input_size": 32})  # ImageNet mean/std, tiny
    meta = {
        "label_names": ["ct", "mr", "xr"],
        "task_kind": "multiclass",
        "arch": "resnet18",
        "weights_tag": "imagenet",
        "sha256": "ab" * 32,
    }
    path = tmp_path / f"m.{format}"
    result = export_module(
        _model("resnet18"), path, preprocessing=pre, metadata=meta, format=format
    )
    back = read_metadata(path)
    assert back == json.loads(json.dumps(result.metadata))
    assert back["label_names"] == ["ct", "mr", "xr"] and back["task_kind"] == "multiclass"
    assert back["weights"] == "imagenet" and back["sha256"] == "ab" * 32
    assert back["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert back["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert back["input"]["size"] == [32, 32]
    assert back["input"]["resize"] == ("letterbox" if pre.letterbox else "resize_center_crop")
    assert back["preprocessing"]["input_size"] == 32
    assert "VOI LUT" in back["dicom_windowing"]["rule"]
    assert back["dicom_windowing"]["presets"]["lung"] == [-600.0, 1500.0]
    if format == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(props["radiologynet"]) == back


@pytest.mark.parametrize("input_dtype", ["uint8", "float32"])
def test_preprocessing_in_the_graph_takes_grey_images(input_dtype, tmp_path):
    """mean/std and the channel repeat inside the file: the grey letterboxed image in, the
    same logits out as the plain export given the fully preprocessed tensor."""
    pre = Preprocessing(input_size=32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    model = _model("resnet18")
    plain = export_module(model, tmp_path / "plain.onnx", preprocessing=pre)
    inside = export_module(
        model,
        tmp_path / "inside.onnx",
        preprocessing=pre,
        preprocessing_in_graph=True,
        input_dtype=input_dtype,
    )
    assert inside.verification.passed, inside.verification.summary()
    assert inside.metadata["input"]["shape"] == ["batch", 1, 32, 32]
    assert inside.metadata["input"]["dtype"] == input_dtype
    grey = verification_batch(pre, preprocessing_in_graph=True, input_dtype=input_dtype)
    assert grey.shape[1] == 1 and grey.dtype == getattr(torch, input_dtype)
    got = RUNNERS["onnx"](tmp_path / "inside.onnx")(grey)
    want = RUNNERS["onnx"](tmp_path / "plain.onnx")(verification_batch(pre))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert plain.metadata["input"]["preprocessing_in_graph"] is False


class _FrozenByTracing(nn.Module):
    """Goes through Python values: the tracer records the example's numbers as constants,
    the classic silent ONNX/TorchScript export bug."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(x).mean(dim=(2, 3))
        return torch.tensor(pooled.tolist()[0]) + 0 * pooled  # (3,), broadcast


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_a_broken_export_is_caught_and_nothing_is_written(format, tmp_path):
    out = tmp_path / "broken" / f"m.{format}"
    with pytest.raises(ExportVerificationError, match="does not reproduce PyTorch") as info:
        export_module(
            _FrozenByTracing(), out, preprocessing=Preprocessing(input_size=32), format=format
        )
    assert "max abs diff" in str(info.value) and "argmax agreement" in str(info.value)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_an_exporter_failure_is_one_clear_error(tmp_path):
    out = tmp_path / "vgg.onnx"
    with pytest.raises(ExportError, match="cannot be exported to onnx at 32 px"):
        export_module(_model("vgg16"), out, preprocessing=Preprocessing(input_size=32))
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    model = nn.Conv2d(3, 2, 1)
    pre = Preprocessing(input_size=32)
    with pytest.raises(InvalidArgumentError, match="unknown export format"):
        export_module(model, tmp_path / "m", preprocessing=pre, format="tflite")
    with pytest.raises(InvalidArgumentError, match="needs the preprocessing in the graph"):
        export_module(model, tmp_path / "m", preprocessing=pre, input_dtype="uint8")
    with pytest.raises(InvalidArgumentError, match="holds no image files"):
        export_module(model, tmp_path / "m", preprocessing=pre, verify_data=tmp_path)
    with pytest.raises(InvalidArgumentError, match="opset must be >= 17"):
        export_module(model, tmp_path / "m", preprocessing=pre, opset=13)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_dynamo_exporter_is_verified_the_same_way(tmp_path):
    pytest.importorskip("onnxscript")
    result = export_module(
        _model("mobilenet_v3_small"),
        tmp_path / "d.onnx",
        preprocessing=Preprocessing(input_size=32),
        dynamo=True,
    )
    assert result.verification.passed, result.verification.summary()
    import onnx

    opset = {o.domain: o.version for o in onnx.load(str(tmp_path / "d.onnx")).opset_import}
    assert opset[""] >= 18


def test_the_export_benchmark_prints_a_verified_ratio(capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "export.py"
    spec = importlib.util.spec_from_file_location("benchmark_export", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--arch", "mobilenet_v3_small", "--batch-size", "2", "--repeats", "1"]
    threads = torch.get_num_threads()
    try:
        module.main([*argv, "--input-size", "32", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)  # the script sets it for the process
    row = next(line for line in capsys.readouterr().out.splitlines() if "mobilenet" in line)
    eager, ort, ratio = row.split()[1:4]
    assert float(ratio.rstrip("x")) == pytest.approx(float(ort) / float(eager), rel=0.02)
    assert "verified" in row


class _TwoInputs(nn.Module):
    """Bone age's shape: the image and the patient's sex."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3)

    def forward(self, x: torch.Tensor, sex: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3)) + sex[:, None]


def test_a_model_with_two_inputs_is_refused_clearly(tmp_path):
    with pytest.raises(ExportError, match="export takes models with one image input"):
        export_module(_TwoInputs(), tmp_path / "m.onnx", preprocessing=Preprocessing(input_size=32))
    assert list(tmp_path.iterdir()) == []
