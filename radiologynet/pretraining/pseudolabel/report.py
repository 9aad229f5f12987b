"""Writing pseudo-labels and their report, de-identified.

``labels.csv`` has one row per image: ``key`` (salted SHA-256 of the relative path),
``path`` (relative to the archive; left empty with ``hide_paths``), ``cluster``, ``label``
(the class index among kept clusters, empty when excluded), ``kept``, ``modality`` and
``body_part``. Beside it, ``labels.json`` records the run (cluster count, kept clusters,
salt, feature weights, date). The report (``report.json``, ``report.md``, ``mosaic.png``)
shows cluster sizes, modality / body-part mixes and sample images captioned only with
cluster id, size and mix: no names, IDs, dates or paths anywhere.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO

import numpy as np

from radiologynet._atomic import atomic_write
from radiologynet._optional import require
from radiologynet.pretraining.pseudolabel.cluster import ClusterSummary

LABEL_COLUMNS = ("key", "path", "cluster", "label", "kept", "modality", "body_part")


def path_key(rel_path: str, salt: str) -> str:
    """The de-identified key of an image: salted SHA-256 of its relative path (16 hex)."""
    return hashlib.sha256(f"{salt}/{rel_path}".encode()).hexdigest()[:16]


def _atomic_write(path: Path, write: Callable[[IO[str]], object]) -> None:
    """Write ``path`` atomically through ``write(text_file)``."""

    def to_temp(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            write(fh)

    atomic_write(path, to_temp)


def write_labels(
    path: str | os.PathLike[str],
    paths: Sequence[str],
    assignments: np.ndarray,
    summaries: Sequence[ClusterSummary],
    modalities: Sequence[str | None],
    body_parts: Sequence[str | None],
    *,
    salt: str,
    hide_paths: bool = False,
    metadata: dict[str, object] | None = None,
) -> Path:
    """Write ``labels.csv`` (+ ``labels.json``) and return the CSV's path."""
    path = Path(path)
    kept = [s.cluster for s in summaries if s.kept]
    class_of = {c: i for i, c in enumerate(kept)}

    def rows(fh):
        writer = csv.writer(fh)
        writer.writerow(LABEL_COLUMNS)
        for rel, cluster, mod, part in zip(
            paths, assignments.tolist(), modalities, body_parts, strict=True
        ):
            label = class_of.get(cluster)
            writer.writerow(
                [
                    path_key(rel, salt),
                    "" if hide_paths else rel,
                    cluster,
                    "" if label is None else label,
                    int(label is not None),
                    mod or "",
                    part or "",
                ]
            )

    _atomic_write(path, rows)
    meta = {
        "n_images": len(paths),
        "n_clusters": len(summaries),
        "n_classes": len(kept),
        "kept_clusters": kept,
        "class_names": [f"cluster_{c:02d}" for c in kept],
        "salt": salt,
        "hide_paths": hide_paths,
        **(metadata or {}),
    }
    _atomic_write(path.with_suffix(".json"), lambda fh: json.dump(meta, fh, indent=2))
    return path


def caption(summary: ClusterSummary) -> str:
    """A mosaic caption: cluster id, size, kept/excluded, dominant modality and body part."""
    mod = "/".join(list(summary.modalities)[:2])
    part = "/".join(list(summary.body_parts)[:2])
    state = "kept" if summary.kept else "excluded"
    return (
        f"cluster {summary.cluster} (n={summary.size}, {state}, H={summary.heterogeneity:.2f})"
        f"\n{mod} {part}"
    )


def write_report(
    out_dir: str | os.PathLike[str],
    summaries: Sequence[ClusterSummary],
    *,
    thumbnails: dict[int, list[np.ndarray]] | None = None,
    skipped: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    settings: dict[str, object] | None = None,
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and (with thumbnails) ``mosaic.png``.

    ``skipped`` lists files (relative path, reason) that were not used; they are counted
    and reasons given, since archive-relative paths are the site's own naming.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "settings": settings or {},
        "n_clusters": len(summaries),
        "n_kept": sum(s.kept for s in summaries),
        "clusters": [asdict(s) for s in summaries],
        "captions": {str(s.cluster): caption(s) for s in summaries},
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
        "notes": list(notes),
    }
    files = {"json": out / "report.json", "markdown": out / "report.md"}
    _atomic_write(files["json"], lambda fh: json.dump(data, fh, indent=2))
    lines = [
        "# Pseudo-labelling report",
        "",
        f"{len(summaries)} clusters, {data['n_kept']} kept as classes, "
        f"{len(skipped)} file(s) skipped.",
        "",
    ]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    lines += [
        "| cluster | size | kept | heterogeneity | modalities | body parts |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        mods = ", ".join(f"{k} {v}" for k, v in s.modalities.items())
        parts = ", ".join(f"{k} {v}" for k, v in s.body_parts.items())
        lines.append(
            f"| {s.cluster} | {s.size} | {'yes' if s.kept else 'no'} | "
            f"{s.heterogeneity:.2f} | {mods} | {parts} |"
        )
    if skipped:
        lines += ["", "## Skipped files", ""] + [f"- `{p}`: {r}" for p, r in skipped]
    if thumbnails:
        files["mosaic"] = out / "mosaic.png"
        _mosaic(files["mosaic"], summaries, thumbnails)
        lines += ["", "![samples per cluster](mosaic.png)"]
    _atomic_write(files["markdown"], lambda fh: fh.write("\n".join(lines) + "\n"))
    return files


def _mosaic(
    path: Path, summaries: Sequence[ClusterSummary], thumbnails: dict[int, list[np.ndarray]]
) -> None:
    # no pyplot: never touches the user's backend
    Figure = require("matplotlib.figure", "pseudo-label figures").Figure

    columns = max((len(v) for v in thumbnails.values()), default=1)
    rows = len(summaries)
    fig = Figure(figsize=(1.2 * columns + 2.6, 1.25 * rows), dpi=100)
    for r, summary in enumerate(summaries):
        images = thumbnails.get(summary.cluster, [])
        for c in range(columns):
            ax = fig.add_subplot(rows, columns + 2, r * (columns + 2) + c + 3)
            ax.set_axis_off()
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0, vmax=255)
        text_ax = fig.add_subplot(rows, columns + 2, r * (columns + 2) + 1)
        text_ax.set_axis_off()
        text_ax.text(
            0,
            0.5,
            caption(summary),
            fontsize=7,
            va="center",
            color="black" if summary.kept else "firebrick",
        )
    atomic_write(
        path,
        lambda tmp: fig.savefig(
            tmp, format="png", bbox_inches="tight", metadata={"Software": None}
        ),
    )
