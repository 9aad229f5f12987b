"""The "Analysing a sweep" page shows what the code produces today."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_analysis_page_table_is_generated_by_the_docs_script():
    script = runpy.run_path(str(ROOT / "docs/scripts/make_analysis_figures.py"))
    page = (ROOT / "docs/analysing-a-sweep.md").read_text()
    assert script["render"](page) == page, (
        "docs/analysing-a-sweep.md is out of date: run python docs/scripts/make_analysis_figures.py"
    )
    assert "| btmr | resnet50 | full | radiologynet |" in page


def test_analysis_page_images_exist():
    page = (ROOT / "docs/analysing-a-sweep.md").read_text()
    names = [
        "analysis-curves.png",
        "analysis-fractions.png",
        "analysis-boxplot.png",
        "analysis-gradcam-sheet.png",
    ]
    for name in names:
        assert f"(images/{name})" in page
        image = ROOT / "docs/images" / name
        assert image.read_bytes()[:4] == b"\x89PNG" and image.stat().st_size > 10_000
