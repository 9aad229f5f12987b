"""examples/segmentation.ipynb runs offline as given, segments the nodules and shows the
mask overlay."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "segmentation.ipynb"


@pytest.mark.slow
def test_segmentation_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # a forced backend hides inline figures
    runner = runpy.run_path(str(ROOT / "docs/scripts/run_notebooks.py"))
    book = runner["execute"](NOTEBOOK, tmp_path)
    text = runner["text_outputs"](book)
    assert "Traceback" not in text and "117393 parameters" in text
    dice = float(re.search(r"mean Dice ([0-9.]+)", text).group(1))
    assert dice > 0.5, f"the U-Net learned next to nothing (validation Dice {dice})"
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the overlay figure
