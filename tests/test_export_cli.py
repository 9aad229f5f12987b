"""``radiologynet export`` on a run folder as finetune leaves it: the file, what it
carries, the printed verification, and refusals as one line with nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from inference_fakes import png, run_folder

from radiologynet.cli import main
from radiologynet.inference import load, read_metadata
from radiologynet.inference.export import verification_batch
from radiologynet.inference.export_formats import RUNNERS
from radiologynet.models._folder import sha256_file

pytest.importorskip("onnxruntime")


def test_export_a_run_folder_to_onnx(tmp_path, capsys):
    run = run_folder(tmp_path / "run1", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = tmp_path / "out" / "model.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "verified on 6 images" in printed and "argmax agreement 100.0%" in printed
    meta = read_metadata(out)
    assert meta["label_names"] == ["ct", "mr", "xr"]
    assert meta["task_kind"] == "multiclass" and meta["arch"] == "mobilenet_v3_small"
    assert meta["weights"] == "run1"
    assert meta["sha256"] == sha256_file(run / "model" / "model.safetensors")
    assert meta["mean"] == [0.5, 0.5, 0.5] and meta["std"] == [0.25, 0.25, 0.25]
    assert meta["input"]["shape"] == ["batch", 3, 32, 32]
    # the file gives what the run's model gives on the same preprocessed images
    loaded = load(run)
    batch = verification_batch(loaded.preprocessing)
    expected = loaded.model(batch).detach().numpy()
    np.testing.assert_allclose(RUNNERS["onnx"](out)(batch), expected, rtol=1e-3, atol=1e-5)


def test_export_with_preprocessing_and_the_users_images(tmp_path, capsys):
    run = run_folder(tmp_path / "run", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    images = tmp_path / "mine"
    for i in range(3):
        png(images / f"{i}.png", seed=i, shape=(40 + 10 * i, 30))
    out = tmp_path / "m.pt2"
    argv = ["export", str(run), "--format", "pt2", "--out", str(out), "--with-preprocessing"]
    argv += ["--input-dtype", "uint8", "--verify-data", str(images)]
    assert main(argv) == 0
    assert "verified on 3 images" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["input"]["shape"] == ["batch", 1, 32, 32] and meta["input"]["dtype"] == "uint8"


def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("radiologynet export: error:")
    run = run_folder(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    argv = ["export", str(run), "--out", str(out), "--verify-data", str(tmp_path / "empty")]
    assert main(argv) == 1
    assert "holds no image files" in capsys.readouterr().err
    assert not out.exists()


def test_export_a_unet_weights_folder(tmp_path, capsys):
    from radiologynet.models._vanilla_unet import VanillaUNet, save_vanilla_unet

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = VanillaUNet(in_chans=1, num_classes=1, depth=2, first_width=4)
    cfg = {"input_size": [3, 32, 32], "crop_mode": "border", "interpolation": "bilinear"}
    folder = save_vanilla_unet(net, tmp_path / "unet", metadata={"pretrained_cfg": cfg})
    out = tmp_path / "unet.onnx"
    assert main(["export", str(folder), "--out", str(out)]) == 0
    assert "verified on 6 images" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["task_kind"] == "segmentation" and meta["channels"]["in_chans"] == 1
    size = meta["input"]["size"][0]
    assert size == 32
    batch = verification_batch(load(folder).preprocessing, in_chans=1)[:2]
    assert RUNNERS["onnx"](out)(batch).shape == (2, 1, size, size)
