"""The example notebooks: committed executed, on public API only, and they run as given
(offline, on data they generate) to a real outcome."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import nbformat
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = ("finetune.ipynb", "segmentation.ipynb", "benchmark_grid.ipynb", "probe.ipynb")
RUNNER = runpy.run_path(str(ROOT / "docs/scripts/run_notebooks.py"))


def _code(book: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in book.cells if cell.cell_type == "code")


def _figures(book: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in o.get("data", {})
        for cell in book.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )


def _finetune_accuracy(text: str) -> tuple[float, float]:
    found = re.search(r"test accuracy ([0-9.]+) \(chance ([0-9.]+)\)", text)
    assert found, "the fine-tuning notebook no longer prints its test accuracy"
    return float(found.group(1)), float(found.group(2))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_executed(name):
    book = nbformat.read(EXAMPLES / name, as_version=4)
    code_cells = [c for c in book.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code_cells), (
        f"{name} is committed unexecuted: run python docs/scripts/run_notebooks.py {name}"
    )
    text = RUNNER["text_outputs"](book)
    assert "Traceback" not in text and "Error" not in text
    assert _figures(book) >= 1, f"{name} is committed without its figures"


def test_committed_finetune_notebook_beats_chance():
    book = nbformat.read(EXAMPLES / "finetune.ipynb", as_version=4)
    accuracy, chance = _finetune_accuracy(RUNNER["text_outputs"](book))
    assert accuracy > chance + 0.25


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_uses_public_api_only(name):
    code = _code(nbformat.read(EXAMPLES / name, as_version=4))
    private = re.findall(r"(?:from|import)\s+radiologynet[\w.]*\._\w+|import\s+_\w+", code)
    assert not private, f"{name} imports private names: {private}"
    for internal in (
        "protocol.runner",
        "protocol.builtin",
        "torchdata.samples",
        "segmentation.task",
        "DeviceTransform",
        "preprocessing_for",
    ):
        assert internal not in code, f"{name} reaches into runner internals ({internal})"


def test_notebooks_are_linked_from_the_docs():
    page = (ROOT / "docs/examples.md").read_text(encoding="utf-8")
    for name in NOTEBOOKS:  # the page mkdocs_hooks.py renders from the notebook
        assert f"(examples/{Path(name).stem}.md)" in page, f"docs/examples.md lacks {name}"


def test_notebooks_extra_brings_progress_bar_widgets():
    tomllib = pytest.importorskip("tomllib")  # stdlib from Python 3.11
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extra = pyproject["project"]["optional-dependencies"]["notebooks"]
    assert any(requirement.startswith("ipywidgets") for requirement in extra), extra


@pytest.mark.slow
@pytest.mark.parametrize("name", ["finetune.ipynb", "benchmark_grid.ipynb", "probe.ipynb"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # a forced backend hides inline figures
    monkeypatch.delenv("RADIOLOGYNET_ONLINE", raising=False)  # the tests never download
    book = RUNNER["execute"](EXAMPLES / name, tmp_path)
    text = RUNNER["text_outputs"](book)
    assert "Traceback" not in text
    assert _figures(book) >= 1
    if name == "finetune.ipynb":
        accuracy, chance = _finetune_accuracy(text)
        assert accuracy > chance + 0.25, f"fine-tuning reached only {accuracy} (chance {chance})"
        assert "Offline: not downloading" in text
        log = (tmp_path / "finetune-run" / "log.jsonl").read_text().splitlines()
        assert len(log) >= 2 and "val_loss" in json.loads(log[-1])
        config = json.loads((tmp_path / "weights/resnet18-stand-in/config.json").read_text())
        assert config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    elif name == "probe.ipynb":  # embed -> probe on the demo's data, pretext vs random
        assert "pretext vs random (logreg): " in text
        table = pd.read_csv(tmp_path / "probe-out" / "probe.csv").set_index(
            ["features", "method", "metric"]
        )["value"]
        assert table[("pretext", "logreg", "accuracy")] > table[("random", "logreg", "accuracy")]
        assert {"probe.csv", "comparison.csv", "probe.png"} <= {
            p.name for p in (tmp_path / "probe-out").iterdir()
        }
    else:
        assert "4 runs" in text
        assert len(list((tmp_path / "grid-results" / "grid").glob("*/result.json"))) == 4
