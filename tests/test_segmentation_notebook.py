"""examples/segmentation.ipynb runs offline as given and shows a mask overlay."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "segmentation.ipynb"


@pytest.mark.slow
def test_segmentation_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # a forced backend hides inline figures
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    book = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    text = "".join(str(o.get("text", "")) for o in outputs)
    assert "Traceback" not in text and "117393 parameters" in text
    dice = float(re.search(r"Dice ([0-9.]+)", text).group(1))
    assert 0.0 <= dice <= 1.0
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the overlay figure
