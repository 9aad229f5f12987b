"""Tables, figures and reports from a sweep's results folder; model-card results.

The main entry points, importable from here::

    from radiologynet.analysis.report import load_results, results_table, build_report

Submodules: :mod:`.results` (loading), :mod:`.tables`, :mod:`.figures`, :mod:`.classification`
(confusion matrix and ROC curves of each setting's test images), :mod:`.render`,
:mod:`.modelcard_results`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_results": "results",
    "load_logs": "results",
    "primary_metric": "results",
    "results_table": "tables",
    "add_paper_results": "tables",
    "stats_table": "tables",
    "comparisons": "tables",
    "emissions_table": "tables",
    "to_markdown": "tables",
    "to_html": "tables",
    "validation_curves": "figures",
    "resource_limited": "figures",
    "final_boxplots": "figures",
    "prediction_figures": "classification",
    "build_report": "render",
    "Report": "render",
    "write_card_results": "modelcard_results",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # import matplotlib/pandas only when used
    if name in _EXPORTS:
        module = importlib.import_module(f"radiologynet.analysis.report.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'radiologynet.analysis.report' has no attribute {name!r}")
