"""The ``README.md`` model card written into every weights folder.

Front matter the Hugging Face Hub reads (``library_name: timm``, licence, tags), then what
the weight is for, the preprocessing it expects, its training data and their limits, the
paper's downstream results for the architecture, and how to load it. One writer serves
converted and pretrained weights, and the models the library fine-tunes (a
``radiologynet.fine_tuned`` record in ``config.json``: fine-tuned from which weights, on
which data, with which settings and results, under the starting weights' licence, loaded
with its trained head).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from radiologynet.models._preprocessing import Preprocessing, channel_mean_std
from radiologynet.models._registry import get_architecture
from radiologynet.models._weights import WeightRecord
from radiologynet.paper import PAPER, PaperResult, paper_init_rank

BASE_TAGS = (
    "timm",
    "image-classification",
    "radiology",
    "medical-imaging",
    "transfer-learning",
    "radiologynet",
)


def _front_matter(
    license_id: str, tags: Iterable[str], *, library: str | None = "timm", pipeline: str = ""
) -> str:
    lines = ["---"] + ([f"library_name: {library}"] if library else [])
    lines += [f"license: {license_id}", "tags:"]
    lines += [f"- {tag}" for tag in dict.fromkeys(tags)]
    lines += [f"pipeline_tag: {pipeline or 'image-classification'}", "---", ""]
    return "\n".join(lines)


def results_table(results: Iterable[PaperResult]) -> str:
    """The paper's results as a markdown table: one row per (table, task, metric,
    statistic), one column per initialisation (:meth:`PaperResult.formatted`: value ± std and
    unit, with its learning rate)."""
    results = [r for r in results if r.metric != "epochs"]
    if not results:
        return "_The paper reports no downstream results for this architecture._\n"
    inits = sorted(
        {r.init for r in results},
        key=lambda i: (paper_init_rank(i), i),
    )
    rows: dict[tuple[int, str, str, str], dict[str, PaperResult]] = {}
    for r in results:
        rows.setdefault((r.table, r.task, r.metric, r.statistic), {})[r.init] = r
    lines = [
        "| table | task | metric | statistic | " + " | ".join(inits) + " |",
        "|---|---|---|---|" + "---|" * len(inits),
    ]
    for (table, task, metric, statistic), cells in rows.items():
        values = []
        for init in inits:
            r = cells.get(init)
            if r is None:
                values.append("")
                continue
            values.append(f"{r.formatted()} (lr {r.lr})")
        lines.append(f"| {table} | {task} | {metric} | {statistic} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


#: Measured (``tests/test_transforms.py`` checks these bounds): largest difference between
#: ``radiologynet.transforms.for_model`` and timm's ``create_transform`` when timm has to
#: shrink the image (PIL anti-aliases, the weights were trained without: OpenCV
#: INTER_LINEAR), over nine real wrist radiographs (GRAZPEDWRI-DX, ~600-900 px -> 224)
#: and on pixel noise (512 x 400 -> 224).
TIMM_SHRINK_MAX_DIFF = {"radiograph": 0.89, "noise": 0.47}


def _preprocessing(config: Mapping[str, Any]) -> str:
    pre = Preprocessing.from_timm_cfg(config)
    size, interpolation = pre.input_size, pre.interpolation
    if pre.mean is None:
        normalise = "no mean/std normalisation"
    else:
        normalise = f"then normalised with mean {list(pre.mean)}, std {list(pre.std or ())}"
    one = channel_mean_std(pre.mean, pre.std, 1)
    one_channel = (
        ""
        if one is None
        else f" A model made with `in_chans=1` takes mean {one[0][0]:.5f}, std "
        f"{one[1][0]:.5f} (`for_model` applies it; timm leaves three values and "
        "its transform fails on one channel)."
    )
    if pre.letterbox:
        geometry = (
            f"- Grayscale image, longest side resized to {size} px ({interpolation}, "
            "no anti-aliasing, as OpenCV's INTER_LINEAR), aspect ratio kept, "
            f"zero-padded and centred to {size} x {size} (letterbox; timm "
            f"`crop_mode='border'`, `crop_pct={pre.crop_pct:g}`).\n"
        )
    else:
        geometry = (
            f"- Grayscale image, shorter side resized to {size} / {pre.crop_pct:g} px "
            f"({interpolation}), centre {size} x {size} crop.\n"
        )
    timm_note = (
        "- `radiologynet.transforms.for_model(model)` (or `for_weights(record)`) applies "
        "exactly this. timm's `resolve_data_config` + `create_transform` (on the image as "
        "RGB) gives the same tensor (to within one 8-bit grey level) when the image is no "
        f"larger than {size} px; it differs when the image must shrink, because PIL anti-aliases "
        f"(largest difference measured: {TIMM_SHRINK_MAX_DIFF['radiograph']} on a "
        f"radiograph, {TIMM_SHRINK_MAX_DIFF['noise']} on pixel noise)"
    )
    if pre.mean is not None and pre.letterbox:
        timm_note += (
            ", and timm fills the letterbox border with the mean colour where "
            "these weights saw black"
        )
    return (
        geometry + "- Intensities scaled to [0, 1] (8-bit values / 255; float images already in "
        f"[0, 1] kept), the one channel repeated to three; {normalise}.{one_channel}\n"
        + timm_note
        + ".\n"
    )


def _record_notes(record: WeightRecord | None) -> list[str]:
    """Which torchvision weight an ImageNet record is, and the licence note."""
    notes = []
    if record is not None and record.torchvision_weights:
        notes.append(
            f"These are torchvision's `{record.architecture.torchvision_name}` "
            f"`{record.torchvision_weights}` ImageNet weights (torchvision 0.15.2's "
            "`.DEFAULT`, which the paper's ImageNet runs used), converted from "
            f"{record.source_url or 'torchvision'}.\n"
        )
    if record is not None and record.license_note:
        notes.append(f"Licence: `{record.license}`. {record.license_note}\n")
    return notes


def _identity(
    config: Mapping[str, Any],
    arch: Any,
    record: WeightRecord | None,
    extra: Mapping[str, Any],
    name: str,
) -> tuple[str, list[str], str, str]:
    """The card's licence, Hub tags, title and one-paragraph description."""
    meta = config.get("radiologynet", {})
    license_id = (
        record.license
        if record is not None
        else str(meta.get("license") or config.get("pretrained_cfg", {}).get("license", "other"))
    )
    tags = [*BASE_TAGS, arch.name, arch.timm_name, *extra.get("tags", ())]
    if record is not None:
        tags += [m.lower() for m in record.modalities]
    title = extra.get("title", f"RadiologyNET {arch.original_name}: `{name}`")
    description = extra.get("description") or (
        record.description
        if record is not None
        else f"{arch.original_name} weights converted to timm's `{arch.timm_name}`."
    )
    return license_id, tags, title, str(description)


def _how_to_load(arch: Any, record: WeightRecord | None, repo_id: str) -> list[str]:
    """The card's "How to load" and "Citation" sections."""
    return [
        "## How to load\n",
        "With radiologynet (preprocessing travels with the model):\n",
        "```python\nimport radiologynet\n"
        f'model = radiologynet.create_model("{arch.name}", '
        'weights="PATH/TO/THIS/FOLDER", num_classes=4, in_chans=1)\n```\n'
        if record is None or not record.hub_repo_id  # a folder of your own
        else "```python\nimport radiologynet\n"
        f'model = radiologynet.create_model("{record.name}", num_classes=4, in_chans=1)\n'
        "```\n",
        "With plain timm:\n",
        "```python\nimport timm\n"
        f'model = timm.create_model("hf-hub:{repo_id}", pretrained=True, num_classes=4)\n'
        "# or, from a local copy of this folder:\n"
        'model = timm.create_model("local-dir:PATH/TO/THIS/FOLDER", pretrained=True)\n```\n',
        "## Citation\n",
        f"{PAPER}\n",
    ]


def _metrics_table(fine_tuned: Mapping[str, Any]) -> str:
    """The validation and test numbers of a fine-tuned run as a markdown table."""
    val, test = dict(fine_tuned.get("val") or {}), dict(fine_tuned.get("test") or {})
    names = [n for n in dict.fromkeys([*val, *test]) if not isinstance(test.get(n), (list, dict))]
    if not names:
        return "_The run recorded no metrics._\n"

    def cell(value: Any) -> str:
        return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| metric | validation (best epoch) | test |", "|---|---|---|"]
    lines += [f"| {n} | {cell(val.get(n))} | {cell(test.get(n))} |" for n in names]
    return "\n".join(lines) + "\n"


def _counts_table(fine_tuned: Mapping[str, Any]) -> str:
    """Images per split (and per class where known) as a markdown table."""
    counts = dict(fine_tuned.get("counts") or {})
    images = dict(fine_tuned.get("images") or {})
    classes = list(fine_tuned.get("class_names") or [])
    splits = [s for s in ("train", "val", "test") if s in images or s in counts]
    if not classes or not counts:
        return "\n".join(f"- {s}: {images.get(s, 0)} images" for s in splits) + "\n"
    lines = [
        "| split | images | " + " | ".join(classes) + " |",
        "|---|---|" + "---|" * len(classes),
    ]
    for split in splits:
        per = dict(counts.get(split) or {})
        total = images.get(split, sum(per.values()))
        lines.append(
            f"| {split} | {total} | " + " | ".join(str(per.get(c, 0)) for c in classes) + " |"
        )
    return "\n".join(lines) + "\n"


def fine_tuned_sections(fine_tuned: Mapping[str, Any], license_id: str) -> list[str]:
    """The card sections of a model fine-tuned by this library: what it was fine-tuned
    from (name, sha256), on which data (task, classes, images per split), with which
    configuration, how it scored, and the licence it inherits."""
    parent = dict(fine_tuned.get("parent") or {})
    config = {k: v for k, v in dict(fine_tuned.get("config") or {}).items() if v is not None}
    sha = f" (sha256 `{parent['sha256']}`)" if parent.get("sha256") else ""
    classes = ", ".join(f"`{c}`" for c in fine_tuned.get("class_names") or ()) or "none"
    settings = "\n".join(f"- {k}: `{v}`" for k, v in config.items())
    return [
        "## Fine-tuning\n",
        f"Fine-tuned by `radiologynet finetune` (run `{fine_tuned.get('run')}`) from the "
        f"weights `{parent.get('weights', 'random')}`{sha}; the best epoch by validation "
        f"was {fine_tuned.get('best_epoch')} of {fine_tuned.get('epochs_run')} run.\n",
        "## Training data\n",
        f"Task `{fine_tuned.get('task')}` ({fine_tuned.get('kind')}) on the data "
        f"`{fine_tuned.get('data', '')}`; classes {classes}. Images per split:\n",
        _counts_table(fine_tuned),
        "## Training configuration\n",
        settings + "\n",
        "## Results of this run\n",
        "Measured by the run on its own validation and test images (the per-image "
        "results are the run folder's `test_predictions.csv`); they say how the model did "
        "on data like its training data, not on yours.\n",
        _metrics_table(fine_tuned),
        "## Licence\n",
        f"`{license_id}`, inherited from the starting weights `{parent.get('weights')}`. "
        f"{parent.get('license_note') or ''} Your training data's terms apply as well.\n",
    ]


def _fine_tuned_card(
    config: Mapping[str, Any], arch: Any, fine_tuned: Mapping[str, Any], license_id: str
) -> str:
    """The card of a timm folder this library fine-tuned (``radiologynet.fine_tuned`` in
    its ``config.json``)."""
    tags = [*BASE_TAGS, arch.name, arch.timm_name, "fine-tuned", str(fine_tuned.get("task"))]
    in_chans = dict(fine_tuned.get("config") or {}).get("in_chans") or 3
    classes = list(config.get("label_names") or fine_tuned.get("class_names") or [])
    parts = [
        _front_matter(license_id, tags),
        f"# `{arch.name}` fine-tuned on `{fine_tuned.get('task')}`\n",
        f"A plain timm `{arch.timm_name}` with a {config['num_classes']}-output head"
        + (f" for the classes {', '.join(f'`{c}`' for c in classes)}" if classes else "")
        + ", fine-tuned on your data by radiologynet.\n",
        "## Intended use\n",
        "Research on data like its training data. It was not validated for clinical use: "
        "validate it on data from your own site before relying on it.\n",
        *fine_tuned_sections(fine_tuned, license_id),
        "## Preprocessing\n",
        _preprocessing(config),
        "## How to load\n",
        "The trained head is kept when `num_classes` is left out (another value would "
        "replace it with a new, untrained one):\n",
        "```python\nimport radiologynet\n"
        f'model = radiologynet.create_model("{arch.name}", weights="PATH/TO/THIS/FOLDER"'
        + (f", in_chans={in_chans}" if in_chans != 3 else "")
        + ")\n```\n",
        "With plain timm:\n",
        "```python\nimport timm\n"
        'model = timm.create_model("local-dir:PATH/TO/THIS/FOLDER", pretrained=True)\n```\n',
        "## Citation\n",
        f"{PAPER}\n",
    ]
    meta = config.get("radiologynet", {})
    if meta.get("sha256"):
        parts.append(f"\n`model.safetensors` sha256: `{meta['sha256']}`\n")
    return "\n".join(parts)


def render_model_card(
    config: Mapping[str, Any],
    *,
    record: WeightRecord | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The model card of a weights folder, as markdown with Hub front matter.

    Args:
        config: the folder's ``config.json`` content.
        record: the weight it holds (description, data, licence, results).
        extra: optional ``title``, ``description``, ``tags`` (list) and ``sections``
            (mapping of heading -> markdown) added to the card.

    Returns:
        The card text.
    """
    extra = dict(extra or {})
    arch = get_architecture(str(config["architecture"]))
    meta = config.get("radiologynet", {})
    name = record.name if record is not None else f"{arch.name} (converted)"
    repo_id = (record.hub_repo_id if record is not None else "") or "ORG/NAME"
    license_id, tags, title, description = _identity(config, arch, record, extra, name)
    if meta.get("fine_tuned"):
        return _fine_tuned_card(config, arch, meta["fine_tuned"], license_id)
    parts = [
        _front_matter(license_id, tags),
        f"# {title}\n",
        f"{description}.\n" if not str(description).endswith(".") else f"{description}\n",
        f"A plain timm `{arch.timm_name}` (model args {config.get('model_args', {})}) with "
        f"a {config['num_classes']}-class head, numerically identical to the authors' "
        f"torchvision {arch.torchvision_name}.\n",
        "## Intended use\n",
        "A starting point for fine-tuning on medical-imaging tasks (classification, "
        "regression, or as a U-Net encoder), mainly on grayscale radiology images. The "
        "pretraining classes are unsupervised pseudo-labels (clusters), not diagnoses: do "
        "not use the pretraining head for clinical decisions, and validate any fine-tuned "
        "model on data from your own site before use.\n",
        "## Preprocessing\n",
        _preprocessing(config),
        "## Training data and its limits\n",
        (
            record.training_data
            if record is not None
            else "Unknown: this folder was converted without a weight record."
        )
        + "\n",
    ]
    parts += _record_notes(record)
    if record is not None and not record.paper:
        parts += [
            "## Results\n",
            "_These are new weights: the paper has no results for them. Measure them on "
            "your tasks with `radiologynet benchmark`._\n",
        ]
    else:
        parts += [
            "## Results in the paper\n",
            f"Downstream results of `{arch.name}` (Tables 2-6 of the paper), each with its "
            "unit (Dice/IoU are fractions); `baseline` is random initialisation.\n",
            results_table(record.results if record is not None else ()),
        ]
    for heading, body in dict(extra.get("sections", {})).items():
        parts += [f"## {heading}\n", f"{body}\n"]
    parts += _how_to_load(arch, record, repo_id)
    if meta.get("sha256"):
        parts.append(f"\n`model.safetensors` sha256: `{meta['sha256']}`\n")
    return "\n".join(parts)


#: How each non-timm model type loads (the card's last section says it).
_LOADERS = {
    "vanilla_unet": "radiologynet.create_unet(None, weights=PATH)",
    "task": "radiologynet.models.load_unet(PATH)",
}


def render_task_card(config: Mapping[str, Any]) -> str:
    """The model card of a folder that is not a timm classifier (``model_type``
    ``"vanilla_unet"`` or ``"task"``): what the tensors are, where they came from, their
    licence as recorded (``other`` when the writer knew none: weights you trained carry the
    terms of your data and of the weights you started from) and how to load them."""
    meta = dict(config.get("radiologynet") or {})
    kind = str(config["model_type"])
    what = str(config.get("task_model") or "VanillaUNet")
    task = str(meta.get("task") or config.get("kind") or "weights")
    license_id = str(meta.get("license") or "other")
    tags = ["radiology", "medical-imaging", "radiologynet"]
    tags.append("image-segmentation" if kind == "vanilla_unet" or config.get("decoder") else task)
    encoder = f" with a `{config['encoder']}` encoder" if config.get("encoder") else ""
    loader = _LOADERS[kind] if kind == "vanilla_unet" or config.get("decoder") else None
    parts = [
        _front_matter(license_id, tags, library=None, pipeline="image-segmentation"),
        f"# {what}{encoder} ({task})\n",
        f"A whole `{what}` ({kind.replace('_', ' ')}), not a timm backbone: plain timm and "
        "`radiologynet.create_model` do not load it.\n",
    ]
    if (meta.get("license_note") or license_id == "other") and not meta.get("fine_tuned"):
        parts.append(
            str(
                meta.get("license_note")
                or "Licence: not recorded. Weights you trained carry "
                "the terms of your data and of the weights you started from."
            )
            + "\n"
        )
    if meta.get("recipe"):
        parts += ["## Training\n", f"{meta['recipe']}\n"]
    if meta.get("fine_tuned"):
        parts += fine_tuned_sections(meta["fine_tuned"], license_id)
    parts += ["## How to load\n"]
    parts.append(
        f"```python\n{loader}\n```\n"
        if loader
        else "Load the tensors with the code that "
        f"built this `{what}` (safetensors' `load_file`, then `load_state_dict`).\n"
    )
    if meta.get("sha256"):
        parts.append(f"`model.safetensors` sha256: `{meta['sha256']}`\n")
    parts += ["## Citation\n", f"{PAPER}\n"]
    return "\n".join(parts)
