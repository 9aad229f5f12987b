"""Pretraining a zoo architecture on pseudo-labels: your own RadiologyNET weights.

The RadiologyNET recipe: classification of the kept pseudo-label clusters with AdamW and
cross-entropy, a stratified 75 / 12.5 / 12.5 train/validation/test split, small classes
oversampled as the authors did (every class's training images replicated up to the largest
class's size; ``oversampling="weighted"``: a fresh ``WeightedRandomSampler`` draw every
epoch instead), the paper's augmentation (flip, +-15 degree rotation, brightness, contrast), early
stopping on validation loss, at the architecture's input size, letterboxed and scaled to
[0, 1] without normalisation. The loop is :func:`radiologynet.train.fit`: resumable after a
kill, data-parallel under ``torchrun``. The result is a weights folder in the zoo format
(``config.json`` + ``model.safetensors`` + model card) that ``radiologynet.create_model``,
``timm.create_model("local-dir:...")`` and ``radiologynet.create_unet`` load.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from radiologynet.data.samples import PAPER_AUGMENT
from radiologynet.errors import ArchiveError, InvalidArgumentError
from radiologynet.models import Preprocessing, WeightRecord
from radiologynet.models._registry import Architecture, get_architecture
from radiologynet.pretraining.pseudolabel.features import read_uint8
from radiologynet.pretraining.pseudolabel.report import LABEL_COLUMNS, path_key
from radiologynet.train import FitResult, TrainConfig, fit
from radiologynet.train import distributed as ddp
from radiologynet.train.checkpoint import CHECKPOINT_NAME
from radiologynet.train.config import check_data_settings
from radiologynet.train.heads import build_model
from radiologynet.transforms import BatchHook, BatchTransform


@dataclass(frozen=True)
class LabelledImage:
    """One training image: its absolute path and class index."""

    path: Path
    target: int


@dataclass
class PretrainResult:
    """What :func:`pretrain` wrote and how training went."""

    out_dir: Path
    class_names: list[str]
    n_train: int
    n_val: int
    fit: FitResult
    n_test: int = 0


def read_labels(
    labels_csv: str | os.PathLike[str], data: str | os.PathLike[str], modality: str | None = None
) -> tuple[list[LabelledImage], list[str], dict]:
    """The kept, labelled images of ``labels.csv`` (optionally of one modality).

    Rows without a path (``--hide-paths``) are matched by salted hash of the files under
    ``data``. Classes are renumbered 0..K-1 over the clusters that remain.

    Returns:
        The images, one class name per index (``cluster_NN``) and ``labels.json``'s content.

    Raises:
        ArchiveError: a missing or malformed labels file, files that no longer exist, a
            modality with no images, or fewer than two classes left.
    """
    labels_csv, data = Path(labels_csv), Path(data)
    if not labels_csv.is_file():
        raise ArchiveError(
            f"Labels file {labels_csv} does not exist; make it with "
            "`radiologynet pseudo-label ARCHIVE --out labels.csv`."
        )
    meta_path = labels_csv.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    with open(labels_csv, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(LABEL_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ArchiveError(
                f"Labels file {labels_csv} lacks columns {sorted(missing)}; "
                "it must be written by `radiologynet pseudo-label`."
            )
        rows = [r for r in reader if r["kept"] == "1" and r["label"] != ""]
    if modality:
        available = Counter(r["modality"] or "MISSING" for r in rows)
        rows = [r for r in rows if r["modality"].upper() == modality.upper()]
        if not rows:
            raise ArchiveError(
                f"No kept image of modality {modality!r} in {labels_csv}; modalities there: "
                + ", ".join(f"{m} ({n})" for m, n in available.most_common())
                + "."
            )
    by_key: dict[str, str] = {}
    if any(not r["path"] for r in rows):
        salt = meta.get("salt")
        if salt is None:
            raise ArchiveError(
                f"{labels_csv} has rows without paths but no {meta_path.name} "
                "with the salt to match them; keep the two files together."
            )
        by_key = {
            path_key(p.relative_to(data).as_posix(), salt): p.relative_to(data).as_posix()
            for p in data.rglob("*")
            if p.is_file()
        }
    clusters = sorted({int(r["cluster"]) for r in rows})
    if len(clusters) < 2:
        raise ArchiveError(
            f"Only {len(clusters)} pseudo-label class(es) left in {labels_csv}"
            f"{' for modality ' + modality if modality else ''}; pretraining needs at least "
            "two: ask pseudo-label for more clusters or raise its --threshold."
        )
    class_of = {c: i for i, c in enumerate(clusters)}
    images, absent = [], []
    for row in rows:
        rel = row["path"] or by_key.get(row["key"], "")
        path = data / rel
        if not rel or not path.is_file():
            absent.append(rel or row["key"])
            continue
        images.append(LabelledImage(path, class_of[int(row["cluster"])]))
    if absent:
        raise ArchiveError(
            f"{len(absent)} labelled image(s) of {labels_csv} are not under {data} (e.g. "
            f"{absent[0]}); pass the archive the labels were made from as --data."
        )
    return images, [f"cluster_{c:02d}" for c in clusters], meta


#: The authors' split of the labelled images: train / validation / test.
PAPER_SPLIT = (0.75, 0.125, 0.125)
#: How small classes are oversampled: ``replicate`` (the authors': every class's images
#: repeated up to the largest class's count) or ``weighted`` (a fresh
#: ``WeightedRandomSampler`` draw of the training set's size every epoch).
OVERSAMPLING = ("replicate", "weighted")


def split_train_val(
    targets: list[int], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """A stratified train/validation split of indices; classes with one image train only."""
    train, val, _ = split_labelled(targets, val_fraction, 0.0, seed)
    return train, val


def split_labelled(
    targets: list[int],
    val_fraction: float = PAPER_SPLIT[1],
    test_fraction: float = PAPER_SPLIT[2],
    seed: int = 0,
) -> tuple[list[int], list[int], list[int]]:
    """A stratified train/validation/test split of indices, each class cut in the same
    ratios (the authors': 75 / 12.5 / 12.5) with
    :func:`radiologynet.data.splits.split_per_class`; a class too small to give every
    split an image keeps its images in training.

    Raises:
        InvalidArgumentError: fractions outside [0, 1) or summing to 1 or more.
        ArchiveError: too few images for a validation set.
    """
    import numpy as np

    from radiologynet.data.splits import split_per_class

    check_fractions(val_fraction, test_fraction)
    ratios = (1 - val_fraction - test_fraction, val_fraction, test_fraction)
    rng = np.random.default_rng([seed, 0x5EED])
    train, val, test = split_per_class(list(range(len(targets))), targets, ratios, rng)
    if not val or not train:
        raise ArchiveError(
            f"Only {len(targets)} labelled image(s): too few to hold out a "
            "validation set; pseudo-label a larger archive."
        )
    return sorted(train), sorted(val), sorted(test)


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Refuse validation/test shares that leave no training share.

    Raises:
        InvalidArgumentError: fractions outside (0, 1) / [0, 1) or summing to 1 or more.
    """
    if (
        not 0 < val_fraction < 1
        or not 0 <= test_fraction < 1
        or (val_fraction + test_fraction >= 1)
    ):
        raise InvalidArgumentError(
            f"val_fraction={val_fraction}, test_fraction={test_fraction}: use values in "
            "(0, 1) and [0, 1) that leave a training share (the paper: 0.125 and 0.125)."
        )


def replicate_to_largest(targets: list[int], seed: int = 0) -> list[int]:
    """Indices into ``targets`` in which every class appears as often as the largest one
    (the authors' oversampling): each class's images repeated whole as often as they fit,
    the remainder a seeded draw without replacement."""
    import numpy as np

    counts = Counter(targets)
    largest = max(counts.values())
    rng = np.random.default_rng([seed, 0x0C1A55])
    order: list[int] = []
    for label in sorted(counts):
        members = [i for i, t in enumerate(targets) if t == label]
        whole, rest = divmod(largest, len(members))
        extra = rng.choice(len(members), size=rest, replace=False)
        order += members * whole + [members[k] for k in sorted(extra.tolist())]
    return order


class Replicated(torch.utils.data.Dataset):
    """A view of a dataset with every class replicated up to the largest class's size
    (:func:`replicate_to_largest`); the same items every epoch (the trainer shuffles)."""

    def __init__(self, base: torch.utils.data.Dataset, targets: list[int], seed: int) -> None:
        self.base = base
        self.order = replicate_to_largest(targets, seed)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> Any:
        return self.base[self.order[index]]


class PretrainImages(torch.utils.data.Dataset):
    """Labelled archive images as ``(uint8 (1, S, S), class)`` items, each decoded once
    (:func:`radiologynet.transforms.decode_uint8`, as fine-tuning decodes them)."""

    def __init__(self, images: list[LabelledImage], size: int) -> None:
        self.images = list(images)
        self.size = int(size)
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self._cache.get(index)
        if cached is None:
            cached = read_uint8(self.images[index].path, self.size)
            self._cache[index] = cached
        return cached, torch.tensor(self.images[index].target, dtype=torch.long)


class Oversampled(torch.utils.data.Dataset):
    """A view of a dataset that draws its items with a ``WeightedRandomSampler`` (weights
    1 / class size), so every class is seen about equally often. The draw depends only on
    ``(seed, epoch)``: call :meth:`set_epoch` before each epoch (resumes reproduce it)."""

    def __init__(self, base: torch.utils.data.Dataset, targets: list[int], seed: int) -> None:
        self.base = base
        counts = Counter(targets)
        self.weights = torch.tensor([1.0 / counts[t] for t in targets], dtype=torch.double)
        self.seed = seed
        self.set_epoch(1)

    def set_epoch(self, epoch: int) -> None:
        """Redraw the items for ``epoch`` (1-based)."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        sampler = torch.utils.data.WeightedRandomSampler(
            self.weights, num_samples=len(self.weights), replacement=True, generator=generator
        )
        self.order = list(sampler)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> Any:
        return self.base[self.order[index]]


@dataclass(frozen=True)
class PretrainConfig:
    """What :func:`pretrain` trains and on which share of the labels (frozen; checked in
    ``__post_init__``, before any image is read). The training settings are the
    :class:`~radiologynet.train.TrainConfig` beside it.

    Attributes:
        model: a zoo architecture.
        weights: the starting point (``None`` = random init, as the paper pretrained).
        modality: keep only images of this modality (``"MR"``: the MR-only variant).
        val_fraction / test_fraction: the stratified validation and test shares (the
            authors': 0.125 each, so 75 / 12.5 / 12.5); the test split is evaluated with
            the best weights and recorded in the model card.
        oversampling: ``"replicate"`` (the authors': every class repeated up to the
            largest class's size) or ``"weighted"`` (a ``WeightedRandomSampler`` draw of
            the training set's size every epoch).
        site: a short name for the data's origin, used in the model card.
        input_size: the network's input side (``None``: the architecture's, e.g. 224).
        in_chans: the network's input channels.
        split_seed: the seed of the stratified split (as the protocol runner's).

    A resume refuses a checkpoint written with other values of these fields (``site``
    aside, :data:`RESUMABLE_PRETRAIN_FIELDS`).
    """

    model: str = "resnet50"
    weights: str | None = None
    modality: str | None = None
    val_fraction: float = PAPER_SPLIT[1]
    test_fraction: float = PAPER_SPLIT[2]
    oversampling: str = "replicate"
    site: str = "local"
    input_size: int | None = None
    in_chans: int = 3
    split_seed: int = 0

    def __post_init__(self) -> None:
        get_architecture(self.model)  # an unknown name fails here, listing the known ones
        check_data_settings(self.input_size, self.in_chans, self.split_seed)
        check_fractions(self.val_fraction, self.test_fraction)
        if self.oversampling not in OVERSAMPLING:
            raise InvalidArgumentError(
                f"oversampling={self.oversampling!r}: use one of {', '.join(OVERSAMPLING)}."
            )


#: The :class:`PretrainConfig` fields that may differ when a run resumes: the model card's
#: name for the data's origin.
RESUMABLE_PRETRAIN_FIELDS = frozenset({"site"})

#: This library's pretraining recipe (its own, for archives far smaller than the authors'
#: 1.9 million images) beside each architecture's own learning rate, the authors'
#: (:func:`pretrain_config`; the input size is :attr:`PretrainConfig.input_size`). The
#: authors' ``pretraining/train_*.py`` trained up to 500 epochs, validated (and kept the
#: best weights) every 5 % of an epoch (``valid_percent = 0.05``) with early-stopping
#: patience of 2 (ResNet18/34, MobileNetV3), 5 (VGG16), 10 (ResNet50, DenseNet121,
#: InceptionV3) or 25 (EfficientNetB3/B4) such validations, and dropped classes under 20
#: images (``threshold = 20``); docs/pretraining.md says so.
PRETRAIN_RECIPE = {"max_epochs": 100, "patience": 10, "batch_size": 32, "optimizer": "adamw"}


def pretrain_config(model: str, **settings: Any) -> TrainConfig:
    """The :class:`~radiologynet.train.TrainConfig` of this library's pretraining recipe
    for ``model`` (the authors' learning rate for it, AdamW and batch 32 as theirs; 100
    epochs and patience 10 epochs, the library's own: :data:`PRETRAIN_RECIPE`),
    with ``settings`` (``TrainConfig`` fields; ``None`` keeps the recipe's
    value) over it. Raises ``TypeError`` for a keyword that is not a field."""
    arch = get_architecture(model)
    recipe = {**PRETRAIN_RECIPE, "lr": arch.pretrain_lr}
    return recipe_config(recipe, settings)


def recipe_config(recipe: dict[str, Any], settings: dict[str, Any]) -> TrainConfig:
    """A :class:`~radiologynet.train.TrainConfig` of ``recipe`` with ``settings`` over it
    (``None`` keeps the recipe's value). Raises ``TypeError`` for a keyword that is not a
    field."""
    return TrainConfig(**{**recipe, **{k: v for k, v in settings.items() if v is not None}})


def pretrain(
    data: str | os.PathLike[str],
    labels: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    pretraining: PretrainConfig | None = None,
) -> PretrainResult:
    """Pretrain a zoo architecture on the pseudo-labels in ``labels`` and write a weights
    folder.

    Args:
        data: the archive the labels were made from.
        labels: ``labels.csv`` from :func:`radiologynet.pretraining.pseudolabel.pseudo_label`.
        out_dir: the weights folder to write (also holds ``log.jsonl`` and, while
            training, the resume state; re-running resumes from it).
        config: the training settings; default :func:`pretrain_config` (the library's
            recipe for ``pretraining.model``, with the authors' learning rate). Its task
            fields (kind, classes) are set here.
        pretraining: the architecture, starting weights, modality, splits, oversampling,
            site, input size and channels (default :class:`PretrainConfig`); a resume
            refuses a checkpoint written with other values (:class:`StaleRunError`).

    Returns:
        The folder written and the training summary.
    """
    pretraining = pretraining if pretraining is not None else PretrainConfig()
    config = config if config is not None else pretrain_config(pretraining.model)
    out = Path(out_dir)
    refuse_finished_weights(out, config.resume)
    ddp.init_from_env()
    arch = get_architecture(pretraining.model)
    images, class_names, meta = read_labels(labels, data, pretraining.modality)
    pretraining = replace(pretraining, input_size=pretraining.input_size or arch.input_size)
    config = replace(config, kind="multiclass", num_classes=len(class_names))
    train, val, test, sizes = _pretrain_datasets(images, config, pretraining)
    out.mkdir(parents=True, exist_ok=True)
    net, transform = _network(arch, pretraining, len(class_names), config)
    resample = [_resampler(train)]
    result = fit(
        net,
        train,
        val,
        test,
        config=config,
        batch_transform=BatchHook(transform),
        out_dir=out,
        callbacks=resample,
        recorded={
            k: v for k, v in asdict(pretraining).items() if k not in RESUMABLE_PRETRAIN_FIELDS
        },
    )
    if ddp.is_main():
        p = pretraining
        source = _Source(
            arch.name,
            class_names,
            meta,
            images,
            p.modality,
            p.site,
            p.weights,
            p.oversampling,
            sizes,
            int(p.input_size),
        )
        _write_folder(net, out, source, config, transform.augmentation, result)
    ddp.barrier()
    return PretrainResult(out, class_names, sizes[0], sizes[1], result, sizes[2])


def _network(
    arch: Architecture, pretraining: PretrainConfig, num_classes: int, config: TrainConfig
) -> tuple[torch.nn.Module, BatchTransform]:
    """The classifier to pretrain (from ``pretraining.weights``) and its batch transform,
    both for ``pretraining.in_chans`` at ``pretraining.input_size``."""
    torch.manual_seed(config.seed)  # the head (and a random init): the same on every rank
    # The authors pretrained torchvision networks, whose heads carry the dropout (and
    # EfficientNet's stochastic depth) that paper_regularisation gives timm's.
    net = build_model(
        arch.name,
        pretraining.weights,
        kind="multiclass",
        num_classes=num_classes,
        in_chans=pretraining.in_chans,
        **arch.paper_regularisation,
    )
    transform = BatchTransform(
        Preprocessing(input_size=pretraining.input_size),
        in_chans=pretraining.in_chans,
        augment=PAPER_AUGMENT,
    )
    return net, transform


@dataclass(frozen=True)
class _Source:
    """What a pretrained weights folder says about its data and starting point."""

    arch: str
    class_names: list[str]
    meta: dict
    images: list[LabelledImage]
    modality: str | None
    site: str
    init: str | None
    oversampling: str
    sizes: tuple[int, int, int]
    input_size: int


def refuse_finished_weights(out: Path, resume: bool) -> None:
    """Refuse to resume into a folder that holds finished weights and no checkpoint."""
    if resume and (out / "config.json").is_file() and not (out / CHECKPOINT_NAME).is_file():
        raise ArchiveError(
            f"{out} already holds finished weights (config.json, no "
            "checkpoint to resume); pass --no-resume (resume=False) to train "
            "again and overwrite them, or choose another --out."
        )


def _pretrain_datasets(
    images: list[LabelledImage], config: TrainConfig, pretraining: PretrainConfig
) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset, Any, tuple[int, int, int]]:
    """The oversampled training set, the validation and test sets (``None`` without test
    images) and the three split sizes, at ``pretraining.input_size``.
    ``pretraining.split_seed`` draws the split (as the protocol runner's), ``config.seed``
    the oversampling."""
    size, split_seed, seed = pretraining.input_size, pretraining.split_seed, config.seed
    oversampling = pretraining.oversampling
    targets = [im.target for im in images]
    shares = (pretraining.val_fraction, pretraining.test_fraction)
    train_idx, val_idx, test_idx = split_labelled(targets, *shares, split_seed)
    dataset = PretrainImages(images, size)
    train_targets = [targets[i] for i in train_idx]
    base = torch.utils.data.Subset(dataset, train_idx)
    train = (
        Replicated(base, train_targets, seed)
        if oversampling == "replicate"
        else Oversampled(base, train_targets, seed)
    )
    val = torch.utils.data.Subset(dataset, val_idx)
    test = torch.utils.data.Subset(dataset, test_idx) if test_idx else None
    return train, val, test, (len(train_idx), len(val_idx), len(test_idx))


def _resampler(train: torch.utils.data.Dataset) -> Any:
    """A trainer callback that redraws ``train`` (when it can) at every epoch start."""

    def resample(event: str, info: dict[str, Any]) -> None:
        if event == "epoch_start" and hasattr(
            train, "set_epoch"
        ):  # also the epoch a resumed run continues
            train.set_epoch(int(info["epoch"]))

    return resample


def _write_folder(
    net: torch.nn.Module,
    out: Path,
    source: _Source,
    config: TrainConfig,
    augmentation: Any,
    result: FitResult,
) -> None:
    from radiologynet.models._folder import write_weights_folder

    arch, site, modality, meta = source.arch, source.site, source.modality, source.meta
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    n_classes = len(source.class_names)
    n_clusters = int(meta.get("n_clusters", n_classes))
    scope = f"{modality.upper()} images" if modality else "all modalities"
    data_text = (
        f"{len(source.images)} unlabelled images of the {site!r} archive ({scope}), "
        f"pseudo-labelled into {n_clusters} clusters with `radiologynet pseudo-label`"
        f"{' on ' + str(meta['date']) if meta.get('date') else ''}; {n_classes} "
        f"coherent clusters kept as classes. Pretrained on {date}. Single-site data: expect "
        "a domain shift on other scanners, populations and protocols."
    )
    summary = {
        "tag": f"{site}-{modality.lower()}" if modality else site,
        "date": date,
        "site": site,
        "modality": modality,
        "training_data": data_text,
        "n_images": len(source.images),
        "n_train": source.sizes[0],
        "n_val": source.sizes[1],
        "n_test": source.sizes[2],
        "n_clusters": n_clusters,
        "n_classes": n_classes,
        "pseudo_labels": {
            k: meta.get(k)
            for k in ("date", "method", "n_clusters", "threshold", "backbone", "image_size")
        },
        "recipe": _pretrain_recipe(source, config, augmentation, result),
    }
    description = (
        f"{arch} pretrained on {n_classes} pseudo-label classes of the {site} archive "
        f"({scope}), {date}"
    )
    record = WeightRecord(  # the new weights, described as the zoo's are (no paper)
        arch=arch,
        tag=summary["tag"],
        version="v1",
        description=description,
        # [0, 1] input, letterboxed, no normalisation: what the trainer fed the network
        preprocessing=Preprocessing(input_size=source.input_size),
        num_classes=n_classes,
        label_names=tuple(source.class_names),
        modalities=(modality.upper(),) if modality else (),
        training_data=data_text,
        license="other",
        license_note="Weights pretrained on your own archive: their terms are those of its data.",
        paper="",
    )
    write_weights_folder(
        net.state_dict(),  # written with a 3-channel first convolution, whatever in_chans
        out,
        arch=arch,
        record=record,
        extra_config={"radiologynet": summary},
        card_extra={
            "title": f"{arch} pretrained on the {site} archive ({scope})",
            "tags": ["pseudo-labels", *([modality.lower()] if modality else [])],
            "sections": _card_sections(meta, n_clusters, source.class_names, summary, result),
        },
    )


def _pretrain_recipe(
    source: _Source, config: TrainConfig, augmentation: Any, result: FitResult
) -> dict[str, Any]:
    """The ``recipe`` part of the weights folder's ``radiologynet`` config."""
    return {
        "optimizer": config.optimizer,
        "weight_decay": config.weight_decay,
        "lr": config.lr,
        "loss": "cross-entropy",
        "oversampling": (
            "every class replicated up to the largest class"
            if source.oversampling == "replicate"
            else "WeightedRandomSampler 1/class"
        ),
        "augmentation": _describe(augmentation),
        "input_size": source.input_size,
        "init": source.init,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "val": result.val,
        "test": result.test,
    }


def _card_sections(
    meta: dict, n_clusters: int, class_names: list[str], summary: dict, result: FitResult
) -> dict[str, str]:
    """The model card's pseudo-label and pretraining-recipe sections; the recipe is the one
    recorded in ``config.json`` (``summary["recipe"]``), the settings this run used."""
    recipe = summary["recipe"]
    augmentation = recipe["augmentation"]
    if isinstance(augmentation, dict):
        augmentation = ", ".join(f"{k} {v}" for k, v in augmentation.items() if v)
    return {
        "Pseudo-labels": (
            f"{meta.get('method', 'kmeans')} clustering into {n_clusters} clusters "
            f"(features: DICOM header, {meta.get('backbone', 'a zoo backbone')} image "
            f"embeddings{', free text' if meta.get('text_csv') else ''}); clusters with "
            f"modality/body-part heterogeneity above {meta.get('threshold', 0.5)} excluded, "
            f"{len(class_names)} kept: {', '.join(class_names)}."
        ),
        "Pretraining recipe": (
            f"{recipe['optimizer']} (lr {recipe['lr']:g}, weight decay "
            f"{recipe['weight_decay']:g}), {recipe['loss']} over {len(class_names)} "
            f"pseudo-label classes, {recipe['oversampling']}, augmentation ({augmentation}), "
            f"input {recipe['input_size']} px, early stopping on validation loss: best epoch "
            f"{result.best_epoch} of {result.epochs_run}, "
            f"validation accuracy {result.val.get('accuracy', float('nan')):.3f}."
        ),
    }


def _describe(augmentation: Any) -> Any:
    """The augmentation's parameters as JSON (a dataclass, a dict or a preset name)."""
    import dataclasses

    if dataclasses.is_dataclass(augmentation):
        return json.loads(json.dumps(dataclasses.asdict(augmentation), default=str))
    if isinstance(augmentation, dict):
        return json.loads(json.dumps(augmentation, default=str))
    return str(augmentation)
