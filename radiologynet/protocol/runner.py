"""The protocol runner: a grid of models x initialisations x learning rates x runs (x
training fractions) on one task, one results folder per run (``docs/development.md``).

Re-running the same call skips finished runs and resumes interrupted ones from their
checkpoint; ``shard=(i, n)`` runs the deterministic i-th of n disjoint shares of the grid
(a stable hash of the run name), so many processes can fill one results folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from radiologynet._atomic import atomic_write_json
from radiologynet._version import __version__
from radiologynet.errors import InvalidArgumentError, RadiologyNetError, StaleRunError
from radiologynet.models._registry import get_architecture
from radiologynet.models._weights import (
    Preprocessing,
    is_random_init,
    looks_like_path,
    resolve_weights_arg,
)
from radiologynet.paper import PAPER_INITS
from radiologynet.protocol.spec import (
    DataRequest,
    ModelName,
    ModelRequest,
    TaskData,
    TaskSpec,
    get_task_spec,
    resolve_model,
    with_settings,
)
from radiologynet.train import distributed as ddp
from radiologynet.train.checkpoint import explain_write_errors, remove_checkpoint
from radiologynet.train.config import (
    DEFAULT_MAX_EPOCHS,
    FRACTION_MAX_EPOCHS,
    HEADS,
    RESUMABLE_FIELDS,
    TrainConfig,
    check_data_settings,
    check_lr,
    config_changes,
)
from radiologynet.train.heads import build_model
from radiologynet.train.loop import fit
from radiologynet.train.metrics import PredictionMetrics
from radiologynet.train.runs import (
    DONE,
    MODEL_DIR,
    RESULT_NAME,
    run_folder_name,
    started_result,
)
from radiologynet.transforms import read_preprocessing

logger = logging.getLogger(__name__)

#: Keys of a run's recorded configuration, beside the ``TrainConfig`` fields, that may
#: differ when it resumes: where decoded images are cached and how many processes train.
RUN_RESUMABLE_FIELDS = frozenset({"cache_dir", "world_size"})


@dataclass(frozen=True)
class RunSettings:
    """How the runner builds a run's model and data, beside its training settings
    (:class:`~radiologynet.train.TrainConfig`); recorded in ``result.json`` with them.

    Attributes:
        head: the bone-age head / LUNA16 decoder: ``"pooled"`` or ``"paper"``.
        cache_dir: where decoded images are cached (``None``: in memory only).
        input_size: the network's input side (``None``: the weights'; a run records the
            side it used).
        in_chans: the network's input channels.
        split_seed: the seed of the train/val/test split; run ``k`` of a setting trains
            with seed ``split_seed * 1000 + k - 1``.
    """

    head: str = "pooled"
    cache_dir: str | None = None
    input_size: int | None = None
    in_chans: int = 3
    split_seed: int = 0

    def __post_init__(self) -> None:
        check_data_settings(self.input_size, self.in_chans, self.split_seed)
        if self.head not in HEADS:
            raise InvalidArgumentError(
                f"--head must be one of {', '.join(HEADS)}, got {self.head!r}"
            )


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid, one results folder.

    ``init`` is the label in the folder name (``random``, ``imagenet``, ``radiologynet``,
    any tag, or a name given to a path as ``name=PATH``); ``weights`` what ``create_model``
    receives (``None`` for random).
    """

    task: str
    model: str
    init: str
    weights: str | None
    lr: str
    run: int
    fraction: float | None = None

    @property
    def name(self) -> str:
        """The run's folder name (:func:`radiologynet.train.runs.run_folder_name`)."""
        return run_folder_name(self.model, self.init, self.lr, self.run, self.fraction)


def parse_init(init: str) -> tuple[str, str | None]:
    """``"random"`` -> ``("random", None)``; ``"imagenet"`` -> ``("imagenet", "imagenet")``;
    ``"mine=/w/folder"`` -> ``("mine", "/w/folder")``; a bare path is labelled by its
    folder name."""
    init = init.strip()
    if "=" in init:
        label, weights = init.split("=", 1)
        return _safe_label(label), weights
    if is_random_init(init):
        return "random", None
    if looks_like_path(init):
        path = Path(init).expanduser()
        return _safe_label(path.stem if path.is_file() else path.name), str(path)
    return _safe_label(init), init


def _safe_label(label: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.@]+", "_", label.strip()).strip("_")
    if not cleaned:
        raise InvalidArgumentError(f"init label {label!r} has no usable characters")
    return cleaned


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/n"`` (0 <= i < n, e.g. ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``)."""
    if shard is None:
        return None
    if isinstance(shard, str):
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
        if not match:
            raise InvalidArgumentError(f"--shard {shard!r}: expected i/n, e.g. 0/4")
        shard = (int(match.group(1)), int(match.group(2)))
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise InvalidArgumentError(f"--shard {index}/{count}: need 0 <= i < n")
    return index, count


def shard_of(name: str, count: int) -> int:
    """The shard a run belongs to: a stable hash (sha1) of its name, modulo ``count``."""
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16) % count


def plan(
    task: str,
    models: Sequence[str],
    inits: Sequence[str],
    lrs: Sequence[str],
    runs: int = 5,
    fractions: Sequence[float] | None = None,
    shard: str | tuple[int, int] | None = None,
) -> list[RunSpec]:
    """The runs of the grid (this shard's, when ``shard`` is given), in a fixed order.

    Model names are read by the task (:func:`radiologynet.protocol.spec.resolve_model`:
    registry architectures, or e.g. ``unet-resnet50`` / ``unet`` for ``luna16``). The
    cells a model cannot take (the vanilla ``unet`` with ``imagenet`` or ``radiologynet``)
    are left out of the grid, with a warning saying why on the ``radiologynet.protocol.runner``
    logger.
    """
    if runs < 1:
        raise InvalidArgumentError(f"runs must be >= 1, got {runs}")
    spec = get_task_spec(task)
    resolved = [resolve_model(spec, m) for m in models]
    parsed = [parse_init(i) for i in inits]
    for lr in lrs:
        check_lr(lr, "learning rate")
    rates = [str(lr).strip() for lr in lrs]  # as written: run folders are named by it
    fracs: list[float | None] = [None]
    if fractions:
        fracs = []
        for f in fractions:
            if not 0 < float(f) <= 1:
                raise InvalidArgumentError(f"fraction {f!r} must be in (0, 1]")
            fracs.append(float(f))
    cells = [
        (m.name, label, weights)
        for m in resolved
        for label, weights in parsed
        if _takes_init(m, label, weights)
    ]
    specs = [
        RunSpec(task, model, label, weights, lr, k, f)
        for f in fracs
        for model, label, weights in cells
        for lr in rates
        for k in range(1, runs + 1)
    ]
    chosen = parse_shard(shard)
    if chosen is not None:
        index, count = chosen
        specs = [s for s in specs if shard_of(s.name, count) == index]
    return specs


def _takes_init(model: ModelName, label: str, weights: str | None) -> bool:
    reason = model.skip_init(weights) if model.skip_init is not None else None
    if reason is not None:
        logger.warning("skipping %s with init %r: %s", model.name, label, reason)
    return reason is None


def model_preprocessing(model: ModelName, weights: str | None) -> Preprocessing:
    """The input a resolved model expects: its architecture's (:func:`preprocessing_for`),
    or, without a zoo backbone, its input size with no normalisation (the task's own
    intensity scaling is all it gets)."""
    if model.arch is not None:
        return preprocessing_for(model.arch, weights)
    return Preprocessing(input_size=model.input_size)


def preprocessing_for(arch: str, weights: str | None) -> Preprocessing:
    """The input a weight expects, without building the model: its record's
    preprocessing, a weights folder's ``config.json`` (or the RadiologyNET default for a
    bare file), or (random init) the architecture's input size with no normalisation; read
    by :func:`radiologynet.transforms.read_preprocessing`, as ``for_model`` reads it."""
    spec = get_architecture(arch)
    target = resolve_weights_arg(spec, weights)
    if target is None:
        return Preprocessing(input_size=spec.input_size)
    if isinstance(target, Path):
        return read_preprocessing(target, input_size=spec.input_size)
    return read_preprocessing(target)


def _versions() -> dict[str, str]:
    import timm

    return {
        "radiologynet": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "platform": sys.platform,
    }


def _read_result(folder: Path) -> dict[str, Any] | None:
    path = folder / RESULT_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_model_folder(
    model: torch.nn.Module,
    folder: Path,
    arch: str | None,
    kind: str,
    num_classes: int,
    class_names: Sequence[str],
    preprocessing: Preprocessing,
    input_size: int,
    zoo_model: bool,
    model_name: str | None = None,
) -> None:
    pretrained = replace(preprocessing, input_size=input_size).timm_cfg()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if zoo_model and arch is not None and kind in ("multiclass", "binary"):
        from radiologynet.models._folder import write_weights_folder

        write_weights_folder(
            state,
            folder,
            arch=arch,
            num_classes=num_classes if kind == "multiclass" else 1,
            label_names=class_names,  # binary: both, negative first
            task_kind=kind,
            extra_config={"pretrained_cfg": pretrained},
        )
        return
    if getattr(model, "decoder", None) == "vanilla":  # segmentation.UNet around a VanillaUNet
        # the vanilla U-Net folder format: a later `unet` run (or create_unet) takes it
        from radiologynet.models._vanilla_unet import save_vanilla_unet

        save_vanilla_unet(
            model.net,
            folder,
            metadata={"task": kind, "model": model_name, "pretrained_cfg": pretrained},
        )
        return
    # whole task models (bone-age regressor, encoder U-Nets): model_type "task"
    from radiologynet.models._card import render_task_card
    from radiologynet.models._folder import task_config, write_folder

    config = task_config(
        type(model).__name__,
        kind=kind,
        pretrained_cfg=pretrained,
        encoder=arch,
        decoder=getattr(model, "decoder", None),
        model=model_name,
        label_names=class_names if kind != "regression" else (),
    )
    write_folder(folder, state, config, render_task_card)


def check_output_folder(out: str | Path) -> Path:
    """``out`` as a path, refusing one that exists and is not a folder."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise InvalidArgumentError(
            f"--out {out}: this is a file, not a folder; choose a folder for the results"
        )
    return path


def run_config(
    spec: RunSpec, task: TaskSpec, config: TrainConfig, settings: RunSettings
) -> TrainConfig:
    """The configuration one run trains with: the caller's ``config`` with the run's
    learning rate and seed (from ``settings.split_seed``), the task's loss setup (kind,
    optimiser, scheduler, monitor), and the defaults it left open (the task's batch size,
    200 epochs or the protocol's 10 with a training fraction)."""
    epochs = config.max_epochs or (
        FRACTION_MAX_EPOCHS if spec.fraction is not None else DEFAULT_MAX_EPOCHS
    )
    return replace(
        config,
        lr=float(spec.lr),
        seed=settings.split_seed * 1000 + spec.run - 1,
        kind=task.kind,
        optimizer=task.optimizer,
        scheduler=task.scheduler,
        monitor=task.monitor,
        mode=task.mode,
        max_epochs=epochs,
        batch_size=config.batch_size or task.batch_size,
    )


def _stale_error(folder: Path, changes: list[str]) -> StaleRunError:
    return StaleRunError(
        f"{folder} holds a run made with other settings ({'; '.join(changes)}); a run "
        "folder holds one configuration: choose a new --out, or pass --overwrite to "
        "replace it"
    )


def _existing_run(folder: Path, record: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """The finished result to reuse, ``None`` to (re)start; refuses a folder that holds a
    run of another configuration, or deletes it with ``overwrite``."""
    existing = _read_result(folder)
    resumable = RESUMABLE_FIELDS | RUN_RESUMABLE_FIELDS
    changes = config_changes(existing.get("config") or {}, record, resumable) if existing else []
    ddp.barrier()  # every rank has read the folder before it may be deleted
    if changes:
        if not overwrite:
            raise _stale_error(folder, changes)
        if ddp.is_main():
            shutil.rmtree(folder)
        ddp.barrier()
        return None
    return existing if existing is not None and existing.get("status") in DONE else None


def run_one(
    spec: RunSpec,
    task: TaskSpec,
    data_root: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    settings: RunSettings | None = None,
    *,
    callbacks: Sequence[Callable[[str, dict[str, Any]], None]] = (),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train and test one run into ``out/<spec.name>/``; returns its ``result.json``.

    A finished (or diverged) run with the same configuration is returned as it is; an
    interrupted one resumes from its checkpoint. A folder holding a run with another
    configuration is refused (:class:`~radiologynet.errors.StaleRunError`) unless
    ``overwrite`` (it is deleted and the run made again).
    """
    config = config if config is not None else TrainConfig()
    settings = settings if settings is not None else RunSettings()
    folder = check_output_folder(out) / spec.name
    resolved = resolve_model(task, spec.model)
    preprocessing = model_preprocessing(resolved, spec.weights)
    train_config = run_config(spec, task, config, settings)
    # the input size recorded, and the preprocessing applied, are the run's
    settings = replace(settings, input_size=settings.input_size or preprocessing.input_size)
    preprocessing = replace(preprocessing, input_size=int(settings.input_size))
    record = _run_record(task, resolved, data_root, train_config, settings, preprocessing)
    existing = _existing_run(folder, record, overwrite)
    if existing is not None:
        return existing
    result = _started_result(spec, task, train_config, record)
    _write_result(folder, result)
    data, model = _build(spec, task, data_root, train_config, settings, preprocessing)
    metrics = (
        task.metrics(data)
        if task.metrics is not None
        else PredictionMetrics(task.kind, data.num_classes)
    )
    outcome = fit(
        model,
        data.train,
        data.val,
        data.test,
        train_config,
        loss=task.loss(data) if task.loss is not None else None,
        metrics=metrics,
        batch_transform=data.batch_transform,
        out_dir=folder,
        callbacks=callbacks,
    )
    result.update(
        status=outcome.status,
        best_epoch=outcome.best_epoch,
        epochs_run=outcome.epochs_run,
        val=outcome.val,
        test=outcome.test or {},
        emissions=outcome.emissions,
    )
    if outcome.diverged is not None:
        result["diverged"] = outcome.diverged
    if ddp.is_main():
        if outcome.best_epoch:
            with explain_write_errors(folder / MODEL_DIR):
                _write_model_folder(
                    model,
                    folder / MODEL_DIR,
                    resolved.arch,
                    task.kind,
                    data.num_classes,
                    data.class_names,
                    preprocessing,
                    int(settings.input_size),
                    zoo_model=task.build_model is None,
                    model_name=spec.model,
                )
        _write_result(folder, result)
        remove_checkpoint(folder)
    ddp.barrier()
    return result


def _run_record(
    task: TaskSpec,
    resolved: ModelName,
    data_root: str | Path,
    train_config: TrainConfig,
    settings: RunSettings,
    preprocessing: Preprocessing,
) -> dict[str, Any]:
    """The run's configuration as ``result.json`` records it (and reruns compare it)."""
    regularisation = (
        get_architecture(resolved.arch).paper_regularisation
        if resolved.arch and task.build_model is None
        else {}
    )
    return {
        **train_config.to_dict(),
        **asdict(settings),
        "data": str(Path(data_root).expanduser().resolve()),
        "preprocessing": asdict(preprocessing),
        "world_size": ddp.world_size(),
        "task_settings": dict(task.settings),
        "regularisation": regularisation,
    }


def _started_result(
    spec: RunSpec, task: TaskSpec, train_config: TrainConfig, record: dict[str, Any]
) -> dict[str, Any]:
    """The ``result.json`` of a run that has started and not yet trained."""
    return started_result(
        task=task.name,
        model=spec.model,
        init=spec.init,
        weights=spec.weights,
        lr=spec.lr,
        run=spec.run,
        seed=train_config.seed,
        fraction=spec.fraction,
        config=record,
        versions=_versions(),
    )


def _write_result(folder: Path, result: dict[str, Any]) -> None:
    if not ddp.is_main():
        return
    with explain_write_errors(folder / RESULT_NAME):
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / RESULT_NAME, result)


def _build(
    spec: RunSpec,
    task: TaskSpec,
    data_root: str | Path,
    config: TrainConfig,
    settings: RunSettings,
    preprocessing: Preprocessing,
) -> tuple[TaskData, torch.nn.Module]:
    """The run's data and model (the new head initialised from the run's seed)."""
    size = int(settings.input_size or preprocessing.input_size)
    data = task.build_data(
        DataRequest(
            root=Path(data_root).expanduser(),
            seed=settings.split_seed,
            fraction=spec.fraction,
            preprocessing=preprocessing,
            input_size=size,
            in_chans=settings.in_chans,
            train_seed=config.seed,
            cache_dir=Path(settings.cache_dir) if settings.cache_dir is not None else None,
            settings=task.settings,
        )
    )
    torch.manual_seed(config.seed)  # the new head's initialisation
    if task.build_model is not None:
        model = task.build_model(
            ModelRequest(spec.model, spec.weights, data, settings.in_chans, size, settings.head)
        )
    else:
        model = build_model(
            spec.model,
            spec.weights,
            kind=task.kind,
            num_classes=data.num_classes,
            in_chans=settings.in_chans,
            head=settings.head,
            input_size=size,
            **get_architecture(spec.model).paper_regularisation,
        )
    return data, model


def run(
    task: str,
    data: str | Path,
    config: TrainConfig | None = None,
    settings: RunSettings | None = None,
    *,
    models: Iterable[str] | None = None,
    inits: Iterable[str] = PAPER_INITS,
    lrs: Iterable[str] | None = None,
    runs: int = 5,
    fractions: Iterable[float] | None = None,
    out: str | Path = "results",
    shard: str | tuple[int, int] | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Callable[[str, dict[str, Any]], None]] = (),
    task_settings: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run (this shard of) the paper's protocol on ``task`` into ``out``.

    Args:
        task: a registered task (``btmr``, ``covid19``, ``boneage``, ``grazpedwri``,
            ``folder``, ``luna16`` ...).
        data: the dataset folder.
        config: the training settings (:class:`~radiologynet.train.TrainConfig`; its
            ``lr`` and ``seed`` come from the grid, see :func:`run_config`).
        settings: the model head, the input size and channels, the split seed and the
            decoded-image cache (:class:`RunSettings`).
        models, lrs: default to the task's paper models and learning rates.
        inits: ``random``, ``imagenet``, ``radiologynet``, any tag, a path or ``name=PATH``.
        runs: repetitions per setting (seeds ``settings.split_seed*1000 + k - 1``).
        fractions: training fractions (the resource-limited experiment); ``None``: all.
        out: the results folder (one sub-folder per run).
        shard: ``"i/n"``: only the runs whose name hashes to share ``i`` of ``n``.
        overwrite: replace run folders that hold a run with other settings (runs with
            these settings are still reused or resumed).
        task_settings: overrides of the task's settings (:attr:`TaskSpec.settings`, e.g.
            ``{"samples_per_epoch": 512}`` for a CPU run of ``luna16``).

    Returns:
        the ``result.json`` contents of every run of this shard, in grid order.
    """
    config = config if config is not None else TrainConfig()
    spec = with_settings(get_task_spec(task), **(task_settings or {}))
    models = list(models) if models is not None else list(spec.models)
    if not models:
        raise InvalidArgumentError(f"task {spec.name!r} has no default models; pass models=")
    lrs = list(lrs) if lrs is not None else list(spec.lrs)
    fractions = list(fractions) if fractions else None
    check_output_folder(out)
    if not Path(data).expanduser().exists():
        raise RadiologyNetError(
            f"--data {data}: no such folder. Download the dataset "
            f"(radiologynet benchmark --help lists the tasks) first."
        )
    runs_to_do = plan(spec.name, models, list(inits), lrs, runs, fractions, shard)
    results = []
    for number, run_spec in enumerate(runs_to_do, 1):
        if config.progress and ddp.is_main():
            print(f"[{number}/{len(runs_to_do)}] {spec.name}/{run_spec.name}", flush=True)
        results.append(
            run_one(
                run_spec,
                spec,
                data,
                out,
                config,
                settings,
                callbacks=callbacks,
                overwrite=overwrite,
            )
        )
    return results
