"""Docs that are generated from code stay in step with it; the README's commands are CI's."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_models_page_is_generated_from_the_registry():
    script = runpy.run_path(str(ROOT / "docs/scripts/registry_tables.py"))
    page = (ROOT / "docs/models.md").read_text()
    assert script["render"](page) == page, (
        "docs/models.md is out of date: run python docs/scripts/registry_tables.py"
    )
    assert "`resnet50.radiologynet-mr@v1` | not released by the authors" in page


def _nav_pages(items) -> list[str]:
    pages = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def _mkdocs_config() -> dict:
    # mkdocs.yml holds no python tags, so the safe loader reads it
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def test_every_nav_page_exists():
    pages = _nav_pages(_mkdocs_config()["nav"])
    assert "api/index.md" in pages and "examples.md" in pages
    notebooks = {f"examples/{p.stem}.md" for p in (ROOT / "examples").glob("*.ipynb")}
    assert notebooks <= set(pages), "every example notebook has its page in the nav"
    missing = [p for p in pages if not (ROOT / "docs" / p).is_file() and p not in notebooks]
    assert not missing, f"mkdocs nav names missing pages: {missing}"


def test_every_page_is_in_the_nav():
    pages = set(_nav_pages(_mkdocs_config()["nav"]))
    on_disk = {
        p.relative_to(ROOT / "docs").as_posix()
        for p in (ROOT / "docs").rglob("*.md")
        if "scripts" not in p.relative_to(ROOT / "docs").parts
    }
    assert on_disk - pages == set(), f"pages missing from the mkdocs nav: {on_disk - pages}"


@pytest.mark.slow
def test_mkdocs_build_is_strict_clean(tmp_path):
    """The site builds with no warning (broken links, docstrings mkdocstrings cannot parse),
    holds the API reference and the executed notebooks, and leaves docs/scripts out."""
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (site / "scripts").exists(), "docs/scripts must not be copied into the site"
    api = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    for name in ("create_model", "create_unet", "get_weights", "WeightRecord", "Preprocessing"):
        assert f'id="radiologynet.models.{name}"' in api, f"API reference lacks {name}"
    pages = sorted(p.stem for p in (ROOT / "docs" / "api").glob("*.md") if p.stem != "index")
    assert {"models", "io", "transforms", "data", "train", "protocol"} <= set(pages)
    for page in pages:
        html = (site / "api" / page / "index.html").read_text(encoding="utf-8")
        assert html.count("doc doc-heading") >= 3, f"api/{page} documents next to nothing"
        assert ":class:<code>" not in html and ":func:<code>" not in html, (
            f"api/{page} shows Sphinx roles literally (docs/scripts/griffe_roles.py)"
        )
    examples = (site / "examples" / "index.html").read_text(encoding="utf-8")
    for notebook in ("finetune", "segmentation", "benchmark_grid"):
        assert (site / "examples" / f"{notebook}.ipynb").is_file()
        assert f'href="{notebook}/"' in examples
        page = (site / "examples" / notebook / "index.html").read_text(encoding="utf-8")
        assert f'href="../{notebook}.ipynb"' in page, "the page links its notebook"
        assert '<img alt="figure" src="data:image/png;base64,' in page, "figures shown"
    assert "test accuracy 0." in (site / "examples/finetune/index.html").read_text()


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


def test_development_page_lists_every_extra():
    import tomllib

    from radiologynet._optional import OPTIONAL

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    page = (ROOT / "docs/development.md").read_text(encoding="utf-8")
    table = page.split("| extra | brings | for |", 1)[1].split("\n\n", 1)[0]
    missing = [name for name in extras if f"| `{name}` |" not in table]
    assert not missing, f"docs/development.md's extras table lacks {missing}"
    for distribution, extra in OPTIONAL.values():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{extra}` |"))
        assert distribution.lower() in row.lower(), f"{distribution} missing from {extra}'s row"
    home = (ROOT / "docs/index.md").read_text(encoding="utf-8")
    missing = [name for name in extras if name != "dev" and f"| `{name}` |" not in home]
    assert not missing, f"docs/index.md's extras table lacks {missing}"
