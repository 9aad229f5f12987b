"""Execute the example notebooks in place, so they are committed with their outputs.

Usage, from the repository root (after changing the library, before committing)::

    python docs/scripts/run_notebooks.py                    # all of examples/*.ipynb
    python docs/scripts/run_notebooks.py finetune.ipynb     # some of them

Each notebook runs in a fresh temporary folder (the data and runs it makes are thrown
away) and is written back with its outputs and figures. The tests call :func:`execute`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from radiologynet._atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def execute(
    notebook: str | os.PathLike[str], workdir: str | os.PathLike[str], timeout: int = 600
) -> nbformat.NotebookNode:
    """Run ``notebook`` with ``workdir`` as its current folder; returns the executed
    notebook (the file itself is left alone)."""
    os.environ.pop("MPLBACKEND", None)  # a forced backend (e.g. Agg) hides inline figures
    book = nbformat.read(notebook, as_version=4)
    NotebookClient(
        book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    return book


def text_outputs(book: nbformat.NotebookNode) -> str:
    """Everything the code cells printed or displayed as text, joined."""
    return "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for cell in book.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )


def main(names: list[str]) -> int:
    paths = [EXAMPLES / n for n in names] if names else sorted(EXAMPLES.glob("*.ipynb"))
    for path in paths:
        with tempfile.TemporaryDirectory() as workdir:
            book = execute(path, workdir)
        atomic_write_text(path, nbformat.writes(book) + "\n")
        print(f"executed {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
