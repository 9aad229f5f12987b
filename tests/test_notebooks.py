"""The example notebooks run as given (on the demo's generated data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["finetune.ipynb", "benchmark_grid.ipynb"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # a forced backend hides inline figures
    shutil.copy(EXAMPLES / name, tmp_path / name)
    book = nbformat.read(tmp_path / name, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                      for cell in book.cells if cell.cell_type == "code"
                      for o in cell.get("outputs", []))
    assert "Traceback" not in outputs
    if name == "finetune.ipynb":
        assert "best epoch" in outputs and (tmp_path / "finetune-run" / "log.jsonl").is_file()
    else:
        assert "4 runs" in outputs
        assert len(list((tmp_path / "grid-results" / "grid").glob("*/result.json"))) == 4
