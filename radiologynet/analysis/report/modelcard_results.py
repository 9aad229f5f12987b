"""Writing a sweep's downstream results into a weights folder's model card and config.

Published weights then carry machine-readable benchmark results: ``config.json`` gets
``radiologynet.downstream_results`` (a list of result rows, one per task x init x
fraction of the folder's architecture), and ``README.md`` gets a "Downstream results"
section between markers, replaced on every update. Both are written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from radiologynet._atomic import atomic_write_json, atomic_write_text
from radiologynet._optional import require
from radiologynet.analysis import stats
from radiologynet.analysis.report.results import load_results
from radiologynet.analysis.report.tables import (
    PAPER_FAMILY,
    comparisons,
    results_table,
    to_markdown,
)
from radiologynet.errors import ResultsFormatError, WeightsNotFoundError
from radiologynet.models._folder import read_config
from radiologynet.models._registry import get_architecture

pd = require("pandas", "sweep reports")

START = "<!-- radiologynet:downstream-results:start -->"
END = "<!-- radiologynet:downstream-results:end -->"
CONFIG_KEY = "downstream_results"


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def downstream_results(
    runs: pd.DataFrame, arch: str, *, source: str = "", alpha: float = stats.ALPHA
) -> list[dict[str, Any]]:
    """The rows of :func:`radiologynet.analysis.report.tables.results_table` for ``arch`` as
    JSON-friendly dicts: ``task, init, fraction, lr, n_runs, split, metrics`` (``{name:
    {"mean", "std", "best"}}``), ``epochs`` and, per task, the Kruskal-Wallis p-value
    across the paper's three initialisations."""
    name = get_architecture(arch).name
    mine = runs[runs["model"].map(lambda m: _arch_name(m) == name)]
    if mine.empty:
        found = ", ".join(sorted(runs["model"].unique()))
        raise ResultsFormatError(
            f"The sweep has no runs of {name} (it has {found}); pass the results of "
            "this weight's architecture, or --arch."
        )
    table = results_table(mine)
    kruskal = {
        (k["task"], _fraction(k["fraction"])): c.kruskal.p  # the paper's three inits only
        for k, c in comparisons(mine, alpha=alpha)
        if k["family"] == PAPER_FAMILY
    }
    rows = []
    for row in table.to_dict("records"):
        rows.append(
            {
                "task": row["task"],
                "model": row["model"],
                "init": row["init"],
                "fraction": _fraction(row["fraction"]),
                "lr": row["lr"],
                "n_runs": int(row["n_runs"]),
                "split": table.attrs["split"],
                "selected_by": f"val_{table.attrs['selection_metric']}",
                "metrics": {
                    m: {
                        "mean": _number(row[f"{m}_mean"]),
                        "std": _number(row[f"{m}_std"]),
                        "best": _number(row[f"best_{m}"]),
                    }
                    for m in table.attrs["metrics"]
                },
                "epochs": {"mean": _number(row["epochs_mean"]), "std": _number(row["epochs_std"])},
                "kruskal_p_across_inits": _number(
                    kruskal.get((row["task"], _fraction(row["fraction"])))
                ),
                "source": source,
            }
        )
    return rows


def _fraction(value: object) -> float | None:
    """The training fraction as JSON: ``None`` for the full training set (NaN)."""
    fraction = float(value)  # type: ignore[arg-type]
    return None if math.isnan(fraction) else fraction


def _arch_name(model: str) -> str:
    try:
        return get_architecture(model).name
    except KeyError:
        return model


def card_section(runs: pd.DataFrame, arch: str, *, source: str = "") -> str:
    """The markdown section (with its markers) the model card gets."""
    name = get_architecture(arch).name
    mine = runs[runs["model"].map(lambda m: _arch_name(m) == name)]
    table = results_table(mine)
    origin = f" from `{source}`" if source else ""
    return "\n".join(
        [
            START,
            "## Downstream results (this library's sweep)\n",
            f"Fine-tuning results of `{name}`{origin}: for each task and initialisation, the "
            "learning rate with the best mean validation "
            f"{table.attrs['selection_metric']}, mean ± std over its runs on the "
            f"{table.attrs['split']} split, and epochs to the best checkpoint. Bold marks the "
            "best initialisation. Machine-readable copy: `config.json` -> "
            f"`radiologynet.{CONFIG_KEY}`.\n",
            to_markdown(table),
            END,
        ]
    )


def update_readme(text: str, section: str) -> str:
    """``text`` with ``section`` replacing the previous one, or inserted before
    "## How to load" (or appended) when there is none."""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + section + rest.split(END, 1)[1]
    marker = "## How to load"
    if marker in text:
        head, tail = text.split(marker, 1)
        return f"{head}{section}\n\n{marker}{tail}"
    return text.rstrip("\n") + "\n\n" + section + "\n"


def write_card_results(
    results_dir: str | Path, weights_dir: str | Path, *, arch: str | None = None
) -> list[dict[str, Any]]:
    """Write the sweep in ``results_dir`` into the weights folder ``weights_dir``:
    ``config.json`` -> ``radiologynet.downstream_results`` and a README.md section.

    Args:
        arch: the architecture whose runs to use (default: the folder's config).

    Returns:
        The rows written to config.json.

    Raises:
        WeightsNotFoundError: ``weights_dir`` has no config.json.
        ResultsFormatError: no usable results for the architecture.
    """
    folder = Path(weights_dir)
    config_path = folder / "config.json"
    config = read_config(folder)
    if config is None:
        raise WeightsNotFoundError(
            f"{str(folder)!r} has no config.json; pass a weights folder (written by "
            "`radiologynet convert` or the runner's <run>/model/)."
        )
    meta = config.setdefault("radiologynet", {})
    arch = arch or meta.get("arch") or config.get("architecture")
    if not arch:
        raise WeightsNotFoundError(f"{str(config_path)!r} names no architecture; pass arch.")
    runs = load_results(results_dir)
    rows = downstream_results(runs, str(arch), source=str(results_dir))
    meta[CONFIG_KEY] = rows
    readme_path = folder / "README.md"
    readme = (
        readme_path.read_text(encoding="utf-8")
        if readme_path.is_file()
        else (f"# {get_architecture(str(arch)).name}\n")
    )
    atomic_write_text(
        readme_path, update_readme(readme, card_section(runs, str(arch), source=str(results_dir)))
    )
    atomic_write_json(config_path, config)
    return rows
