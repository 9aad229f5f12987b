"""``--format monai-bundle``: the bundle's files and the keys MONAI requires, MONAI's own
``verify_net_in_out``, and ``python -m monai.bundle run`` (the README's command) giving
``radiologynet predict``'s predictions on a folder."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inference_fakes import run_folder

from radiologynet.cli import main
from radiologynet.data.sample_images import sample_image_paths
from radiologynet.inference.predict import predict
from radiologynet.models._folder import sha256_file

bundle_api = pytest.importorskip("monai.bundle")

ROOT = Path(__file__).resolve().parents[1]
#: The mandatory keys of the MONAI bundle specification's metadata.json, and of each
#: tensor format specifier in network_data_format.
REQUIRED = {
    "version",
    "monai_version",
    "pytorch_version",
    "numpy_version",
    "optional_packages_version",
    "task",
    "description",
    "authors",
    "copyright",
    "network_data_format",
}
TENSOR_KEYS = {
    "type",
    "format",
    "modality",
    "num_channels",
    "spatial_shape",
    "dtype",
    "value_range",
    "is_patch_data",
    "channel_def",
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    run = run_folder(root / "run1", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = root / "bundle"
    assert main(["export", str(run), "--format", "monai-bundle", "--out", str(out)]) == 0
    return run, out


def test_the_bundle_holds_what_monai_requires(bundle):
    run, out = bundle
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "LICENSE",
        "configs/inference.json",
        "configs/metadata.json",
        "docs/README.md",
        "models/model.pt",
        "models/model.ts",
    ]
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert REQUIRED <= set(meta), REQUIRED - set(meta)
    image = meta["network_data_format"]["inputs"]["image"]
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert TENSOR_KEYS <= set(image) and TENSOR_KEYS <= set(pred)
    assert image["num_channels"] == 3 and image["spatial_shape"] == [32, 32]
    assert pred["channel_def"] == {"0": "ct", "1": "mr", "2": "xr"}
    assert meta["radiologynet"]["sha256"] == sha256_file(run / "model" / "model.safetensors")
    assert "python -m monai.bundle run" in (out / "docs" / "README.md").read_text()
    assert (out / "LICENSE").read_text().strip()


def test_monai_verify_net_in_out_passes_offline(bundle):
    _, out = bundle
    bundle_api.verify_net_in_out(
        net_id="network_def",
        meta_file=str(out / "configs" / "metadata.json"),
        config_file=str(out / "configs" / "inference.json"),
        device="cpu",
    )


@pytest.mark.slow
def test_monai_bundle_run_gives_radiologynet_predicts_predictions(bundle, tmp_path):
    pytest.importorskip("fire")
    run, out = bundle
    images = tmp_path / "images"
    images.mkdir()
    for path in sample_image_paths():
        (images / path.name).write_bytes(path.read_bytes())
    csv_out = tmp_path / "bundle.csv"
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    command += ["configs/inference.json", "--meta_file", "configs/metadata.json"]
    command += ["--bundle_root", ".", "--dataset_dir", str(images), "--output_file", str(csv_out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(csv_out, newline="") as handle:
        theirs = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    ours = predict(run, images, num_workers=0).rows
    assert len(theirs) == len(ours) == 6
    for row in ours:
        other = theirs[Path(row["path"]).name]
        assert other["prediction"] == row["prediction"]
        for name in ("ct", "mr", "xr"):
            assert float(other[f"score_{name}"]) == pytest.approx(row[f"score_{name}"], abs=1e-4)
