"""The paper's facts: its citation and DOI, and its published results (Tables 2-6,
``resources/paper-results.csv``) as typed records with their units."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

PAPER = (
    "Napravnik M, Hrzic F, Urschler M, Miletic D, Stajduhar I. Lessons learned from "
    "RadiologyNET foundation models for transfer learning in medical radiology. "
    "Scientific Reports 15, 21622 (2025). doi:10.1038/s41598-025-05009-w"
)
PAPER_DOI = "10.1038/s41598-025-05009-w"
#: The paper's three initialisations, in the order its tables show them: the family its
#: statistics compare.
PAPER_INITS = ("random", "imagenet", "radiologynet")
#: The significance level of the paper's statistical tests.
PAPER_ALPHA = 0.05
#: What the paper's results sheet (``paper-results.csv``) calls random initialisation.
SHEET_RANDOM_INIT = "baseline"


def paper_init_rank(init: str) -> int:
    """Where ``init`` (the sheet's ``baseline`` read as ``random``) comes in the paper's
    order, :data:`PAPER_INITS`; ``len(PAPER_INITS)`` for any other initialisation."""
    name = PAPER_INITS[0] if init == SHEET_RANDOM_INIT else init
    return PAPER_INITS.index(name) if name in PAPER_INITS else len(PAPER_INITS)


#: The unit of each metric of the paper's Tables 2-6 (``paper-results.csv``): F1 in
#: percent, the bone-age MAE/RMSE in months (the RSNA labels' unit), Dice/IoU as
#: fractions ("" : no unit), and epochs to the best checkpoint.
PAPER_METRIC_UNITS: dict[str, str] = {
    "f1": "%",
    "mae": "months",
    "rmse": "months",
    "dice": "",
    "iou": "",
    "epochs": "epochs",
}


@dataclass(frozen=True)
class PaperResult:
    """One number from the paper's Tables 2-6 (``paper-results.csv``)."""

    table: int
    task: str
    model: str
    statistic: str  # "mean" (over five runs) or "best" (single best run)
    init: str  # SHEET_RANDOM_INIT ("baseline": random), "imagenet", "radiologynet", ...
    lr: str
    metric: str
    value: float
    std: float | None

    @property
    def unit(self) -> str:
        """The unit of :attr:`value` and :attr:`std` (:data:`PAPER_METRIC_UNITS`)."""
        return PAPER_METRIC_UNITS[self.metric]

    def formatted(self) -> str:
        """The value, ``± std`` when the paper gives one, and the unit: ``"8.23 ± 0.2
        months"``, ``"93.1 ± 0.4%"``, ``"0.111 ± 0.002"`` (the model card, ``radiologynet
        info`` and docs/models.md all print results with this)."""
        std = f" ± {self.std:g}" if self.std is not None else ""
        unit = self.unit if self.unit in ("", "%") else f" {self.unit}"
        return f"{self.value:g}{std}{unit}"


@cache
def paper_results() -> tuple[PaperResult, ...]:
    """The paper's Tables 2-6 as shipped in the package (``resources/paper-results.csv``)."""
    text = resources.files("radiologynet").joinpath("resources/paper-results.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return tuple(
        PaperResult(
            table=int(r["table"]),
            task=r["task"],
            model=r["model"],
            statistic=r["statistic"],
            init=r["init"],
            lr=r["lr"],
            metric=r["metric"],
            value=float(r["value"]),
            std=float(r["std"]) if r["std"] else None,
        )
        for r in rows
    )


@dataclass(frozen=True)
class ProtocolSource:
    """What the paper's text and the authors' scripts say about one protocol setting of
    one task (``resources/paper-protocol.csv``), written from those sources and kept apart
    from the code's constants so that docs/protocol.md can show where the code differs.

    ``paper`` / ``authors``: the value as docs/protocol.md prints it, ``""`` where that
    source is silent; ``paper_source`` names the paper's section or table, and
    ``authors_source`` the script file(s) of the authors' repository
    (AIlab-RITEH/RadiologyNET-TL-models); ``note`` explains a difference or a caveat.
    """

    task: str  # a task name, or "*" for every task that has no row of its own
    setting: str
    paper: str
    paper_source: str
    authors: str
    authors_source: str
    note: str


@cache
def protocol_sources() -> tuple[ProtocolSource, ...]:
    """Every row of ``resources/paper-protocol.csv``."""
    text = resources.files("radiologynet").joinpath("resources/paper-protocol.csv").read_text()
    return tuple(ProtocolSource(**row) for row in csv.DictReader(text.splitlines()))


def protocol_source(task: str, setting: str) -> ProtocolSource | None:
    """The sources' row for ``setting`` of ``task`` (its own, else the ``"*"`` row shared
    by every task); ``None`` when neither source says anything about it."""
    rows = {(r.task, r.setting): r for r in protocol_sources()}
    return rows.get((task, setting)) or rows.get(("*", setting))
