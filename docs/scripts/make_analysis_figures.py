"""Regenerate the figures and the table of docs/analysing-a-sweep.md.

    python docs/scripts/make_analysis_figures.py

Everything comes from the library's own code: a synthetic sweep in the run-results format
(:func:`radiologynet.demo.sweep.write_demo_sweep`, fixed seed) is analysed with
:func:`radiologynet.analysis.report.render.build_report`; the Grad-CAM sheet runs
:func:`radiologynet.analysis.explain.comparison_sheet` on synthetic images. The results table
between the page's markers is rewritten; ``render(page)`` returns the page with the
current table (the docs test compares it with the committed page).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "analysing-a-sweep.md"
IMAGES = ROOT / "docs" / "images"
START = "<!-- generated-table:start -->"
END = "<!-- generated-table:end -->"
DEMO = {"task": "btmr", "models": ("resnet50",), "runs": 5, "epochs": 30, "seed": 0}


def demo_table(results_dir: Path) -> str:
    """The Markdown results table of the demo sweep (with the paper's numbers beside)."""
    from radiologynet.analysis.report import tables
    from radiologynet.analysis.report.results import load_results

    runs = load_results(results_dir)
    return tables.to_markdown(tables.add_paper_results(tables.results_table(runs)))


def render(page: str, results_dir: Path | None = None) -> str:
    """``page`` with the generated table between its markers."""
    from radiologynet.demo.sweep import write_demo_sweep

    with tempfile.TemporaryDirectory() as tmp:
        results = results_dir or write_demo_sweep(Path(tmp) / "btmr", **DEMO)
        table = demo_table(results)
    head, rest = page.split(START, 1)
    return f"{head}{START}\n{table}{END}{rest.split(END, 1)[1]}"


def _blob_images(folder: Path) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:128, :128]
    for name, (row, col) in {
        "upper-right": (0.3, 0.72),
        "lower-left": (0.72, 0.3),
        "centre": (0.5, 0.55),
    }.items():
        pixels = np.full((128, 128), 30.0) + 25.0 * yy / 128 + rng.normal(0, 2, (128, 128))
        pixels[(yy - row * 128) ** 2 + (xx - col * 128) ** 2 < 12**2] = 220
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")
    return folder


def _demo_models():
    """Three resnet18s: random initialisation, and two whose class-1 logit sums layer4's
    features (so the evidence for class 1 is where the bright blob is)."""
    import torch

    import radiologynet

    models = {}
    for label, seed, detector in (
        ("random init", 0, False),
        ("blob detector A", 1, True),
        ("blob detector B", 2, True),
    ):
        torch.manual_seed(seed)
        model = radiologynet.create_model("resnet18", weights=None, num_classes=2)
        if detector:
            with torch.no_grad():
                model.fc.bias.zero_()
                model.fc.weight.copy_(torch.stack([-torch.ones(512), torch.ones(512)]))
        models[label] = model.eval()
    return models


def main() -> int:
    """Rewrite the page's table and the docs/images/analysis-*.png files."""
    from radiologynet.analysis.explain import comparison_sheet
    from radiologynet.analysis.report.render import build_report
    from radiologynet.demo.sweep import write_demo_sweep

    with tempfile.TemporaryDirectory() as tmp:
        results = write_demo_sweep(Path(tmp) / "btmr", **DEMO)
        report = build_report(results, Path(tmp) / "report", paper=True, first_epochs=20)
        wanted = {
            "curves-": "analysis-curves.png",
            "fractions-": "analysis-fractions.png",
            "boxplot-": "analysis-boxplot.png",
        }
        for figure in report.figures:
            for prefix, name in wanted.items():
                if figure.name.startswith(prefix):
                    shutil.copyfile(figure, IMAGES / name)
        PAGE.write_text(render(PAGE.read_text(), results))
        images = _blob_images(Path(tmp) / "images")
        sheet = comparison_sheet(
            _demo_models(), images, Path(tmp) / "sheet.png", targets=[1, 1, 1], dpi=90
        )
        shutil.copyfile(sheet, IMAGES / "analysis-gradcam-sheet.png")
    print(f"updated {PAGE.relative_to(ROOT)} and docs/images/analysis-*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
