"""mkdocs hook: the executed example notebooks (``examples/*.ipynb``, outside ``docs/``)
become part of the site: each as a downloadable ``examples/<name>.ipynb`` and as a page
``examples/<name>.md`` showing its text, code, printed output, tables and figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
WIDGET = "application/vnd.jupyter.widget-view+json"


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def _fenced(text: str, language: str = "text") -> str:
    return f"```{language}\n{text.rstrip()}\n```"


def _output(output: dict[str, Any]) -> str | None:
    """One cell output as Markdown (figures inline, tables as HTML); progress-bar widgets,
    which need a live kernel, are left out."""
    if output["output_type"] == "stream":
        return _fenced(_text(output["text"]))
    if output["output_type"] == "error":
        return _fenced("\n".join(output.get("traceback", [])))
    data = output.get("data", {})
    if WIDGET in data:
        return None
    if "image/png" in data:
        png = _text(data["image/png"]).replace("\n", "")
        return f'<img alt="figure" src="data:image/png;base64,{png}">'
    if "text/html" in data:
        return _text(data["text/html"]).strip()
    if "text/plain" in data:
        return _fenced(_text(data["text/plain"]))
    return None


def notebook_markdown(path: Path) -> str:
    """The notebook at ``path`` as one Markdown page, starting with its own title."""
    book = json.loads(path.read_text(encoding="utf-8"))
    blocks = []
    for index, cell in enumerate(book["cells"]):
        source = _text(cell["source"])
        if cell["cell_type"] == "markdown":
            blocks.append(source)
        elif cell["cell_type"] == "code":
            blocks.append(_fenced(source, "python"))
            blocks += [md for md in map(_output, cell.get("outputs", [])) if md]
        if index == 0:
            blocks.append(
                f"*Executed notebook: download [`{path.name}`]({path.name}) to run "
                "it (`examples/` in the repository).*"
            )
    return "\n\n".join(blocks) + "\n"


def on_files(files: Files, config: Any) -> Files:
    for notebook in sorted((ROOT / "examples").glob("*.ipynb")):
        files.append(
            File.generated(config, f"examples/{notebook.name}", abs_src_path=str(notebook))
        )
        files.append(
            File.generated(
                config, f"examples/{notebook.stem}.md", content=notebook_markdown(notebook)
            )
        )
    return files
