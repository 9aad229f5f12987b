"""Docs that are generated from code stay in step with it; the README's commands are CI's."""

from __future__ import annotations

import runpy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_models_page_is_generated_from_the_registry():
    script = runpy.run_path(str(ROOT / "docs/scripts/registry_tables.py"))
    page = (ROOT / "docs/models.md").read_text()
    assert script["render"](page) == page, (
        "docs/models.md is out of date: run python docs/scripts/registry_tables.py")
    assert "`resnet50.radiologynet-mr@v1` | not released by the authors" in page


def test_every_nav_page_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = [next(iter(item.values())) for item in config["nav"]]
    missing = [p for p in pages if not (ROOT / "docs" / p).is_file()]
    assert not missing, f"mkdocs nav names missing pages: {missing}"


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash")[1:]]
    setup = readme.split("## Set-up", 1)[1]
    setup_blocks = [b.split("```", 1)[0].strip() for b in setup.split("```bash")[1:3]]
    assert len(setup_blocks) == 2, "the README keeps exactly two set-up commands"
    install, tests = setup_blocks
    assert install in ci, "CI must install with the README's set-up command"
    assert tests in ci, "CI must run the README's test command"
    assert blocks
