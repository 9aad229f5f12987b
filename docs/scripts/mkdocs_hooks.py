"""mkdocs hook: ship the executed example notebooks (``examples/*.ipynb``, outside
``docs/``) with the site, as ``examples/<name>.ipynb``, so the docs can link them."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]


def on_files(files: Files, config) -> Files:
    for notebook in sorted((ROOT / "examples").glob("*.ipynb")):
        files.append(File.generated(config, f"examples/{notebook.name}",
                                    abs_src_path=str(notebook)))
    return files
