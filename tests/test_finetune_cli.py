"""The smaller points of issue 19: ``finetune``'s run folders name the data, its
``--no-progress`` hides only the bars, tqdm switches itself off on a non-terminal,
``report --help`` and ``compare --help`` need no analysis extra, a weight record prints
on one line, and the docs and the fine-tuning notebook say what is true."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import radiologynet
from radiologynet.cli import main
from radiologynet.train import TrainConfig, fit
from tests.datasets_fakes import make_class_folder

ROOT = Path(__file__).resolve().parents[1]


def _finetune(data: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "finetune",
            "--task",
            "folder",
            "--data",
            str(data),
            "--model",
            "resnet18",
            "--weights",
            "random",
            "--max-epochs",
            "1",
            "--batch-size",
            "8",
            "--input-size",
            "32",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_finetune_names_runs_by_their_data_and_no_progress_keeps_epoch_lines(tmp_path, capsys):
    wrist = make_class_folder(tmp_path / "wrist", ("a", "b"), per_class=8)
    knee = tmp_path / "knee"
    shutil.copytree(wrist, knee)
    assert _finetune(wrist, tmp_path / "runs", "--no-progress") == 0
    printed = capsys.readouterr()
    assert "epoch 1/1: train loss" in printed.out  # the per-epoch line stays
    assert "\r" not in printed.err  # and no bar
    assert "test confusion matrix (rows: true, columns: predicted):" in printed.out
    assert '"confusion_matrix"' not in printed.out  # the lists stay in result.json
    assert _finetune(knee, tmp_path / "runs") == 0  # on other data: another folder
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "knee-resnet18-random-1e-4-run1",
        "wrist-resnet18-random-1e-4-run1",
    ]
    result = json.loads(
        (tmp_path / "runs" / "knee-resnet18-random-1e-4-run1" / "result.json").read_text()
    )
    assert result["config"]["data"] == str(knee.resolve())


def test_progress_bars_switch_themselves_off_when_the_output_is_no_terminal(capsys):
    data = torch.utils.data.TensorDataset(torch.rand(12, 3, 8, 8), torch.arange(12) % 2)
    config = TrainConfig(kind="multiclass", num_classes=2, max_epochs=1, batch_size=4)
    fit(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2)), data, data, config=config)
    printed = capsys.readouterr()  # pytest's capture is no terminal
    assert "epoch 1/1: train loss" in printed.out
    assert "\r" not in printed.err and "it/s" not in printed.err


@pytest.mark.parametrize("command", ["report", "compare"])
def test_help_of_analysis_commands_needs_no_analysis_extra(command):
    code = (
        "import sys\n"
        "for name in ('scipy', 'matplotlib', 'pandas', 'sklearn', 'pytorch_grad_cam'):\n"
        "    sys.modules[name] = None  # as if the analysis extra were not installed\n"
        "from radiologynet.cli import main\n"
        f"main([{command!r}, '--help'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert f"usage: radiologynet {command}" in proc.stdout and "--metric" in proc.stdout


def test_a_weight_record_prints_on_one_line():
    for record in radiologynet.list_weights():
        assert repr(record) == f"WeightRecord({record.full_name!r})"
    assert "\n" not in repr(radiologynet.list_weights())


def test_docs_give_a_cpu_only_install_and_agree_on_the_demo_extra():
    pages = {
        p: p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *ROOT.glob("docs/*.md")]
    }
    cpu = "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
    for page in ("README.md", "docs/index.md", "docs/cli.md"):
        assert cpu in pages[ROOT / page], page
    said = {
        line.split("needs [", 1)[1].split("]", 1)[0]
        for text in pages.values()
        for line in text.splitlines()
        if "demo" in line and "needs [" in line
    }
    assert said == {"analysis"}, said


def test_finetune_notebook_says_where_the_weights_come_from():
    book = json.loads((ROOT / "examples/finetune.ipynb").read_text(encoding="utf-8"))
    text = "".join("".join(c["source"]) for c in book["cells"])
    assert "Hugging Face\nHub into the cache (checksummed)" not in text
    assert "from the Hub;" not in text
    assert "their server (radiologynet.riteh.hr)" in text and "recorded on first use" in text
