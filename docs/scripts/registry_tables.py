"""Generate the tables of docs/models.md from the registry (never typed by hand).

Run `python docs/scripts/registry_tables.py` after changing the registry or the weight
records; tests/test_docs.py fails while docs/models.md is out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from radiologynet.models._preprocessing import IMAGENET_MEAN, IMAGENET_STD
from radiologynet.models._registry import ARCHITECTURES
from radiologynet.models._weights import list_weights
from radiologynet.paper import paper_results

MODELS_PAGE = Path(__file__).resolve().parents[1] / "models.md"
BEGIN, END = "<!-- registry:begin -->", "<!-- registry:end -->"


def _normalisation(pre) -> str:
    """How a weight's input is normalised, as the weights table says it."""
    if pre.mean is None:
        return "none ([0, 1])"
    if (tuple(pre.mean), tuple(pre.std)) == (IMAGENET_MEAN, IMAGENET_STD):
        return "ImageNet mean/std"
    if len(set(pre.mean)) == 1 and tuple(pre.mean) == tuple(pre.std):
        return f"mean = std = {pre.mean[0]:g} ([-1, 1])"
    return f"mean {tuple(pre.mean)}, std {tuple(pre.std)}"


def tables() -> str:
    """The Markdown generated from the registry."""
    lines = [
        "## Architectures",
        "",
        "| architecture | timm model | timm arguments | input | authors' name |",
        "|---|---|---|---|---|",
    ]
    for a in ARCHITECTURES.values():
        args = ", ".join(f"{k}={v}" for k, v in a.model_args.items()) or "-"
        lines.append(
            f"| `{a.name}` | `{a.timm_name}` | {args} | {a.input_size} | {a.original_name} |"
        )
    lines += [
        "",
        "## Weights",
        "",
        "| weight | status | normalisation | classes | licence |",
        "|---|---|---|---|---|",
    ]
    for r in list_weights():
        norm = _normalisation(r.preprocessing)
        lines.append(f"| `{r.full_name}` | {r.status} | {norm} | {r.num_classes} | {r.license} |")
    lines += [
        "",
        "## The paper's downstream results",
        "",
        "Mean ± std over five runs at the best learning rate, from the paper's Tables "
        "2-6, with its unit (Dice/IoU are fractions); `baseline` is random initialisation.",
        "",
        "| table | task | model | init | lr | metric | mean ± std |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in paper_results():
        if p.statistic == "mean" and p.metric != "epochs":
            lines.append(
                f"| {p.table} | {p.task} | {p.model} | {p.init} | {p.lr} | "
                f"{p.metric} | {p.formatted()} |"
            )
    return "\n".join(lines)


def render(page: str) -> str:
    """``page`` with the generated block replaced."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _: f"{BEGIN}\n{tables()}\n{END}", page)


if __name__ == "__main__":
    text = MODELS_PAGE.read_text()
    new = render(text)
    MODELS_PAGE.write_text(new)
    sys.exit(0)
