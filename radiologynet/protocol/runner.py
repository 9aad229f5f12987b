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
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from radiologynet._atomic import atomic_write, atomic_write_json, atomic_write_text
from radiologynet._version import __version__
from radiologynet.errors import InvalidArgumentError, RadiologyNetError
from radiologynet.protocol.tasks import (
    DataRequest,
    ModelName,
    ModelRequest,
    TaskSpec,
    get_task_spec,
    resolve_model,
    with_settings,
)
from radiologynet.registry import get_architecture
from radiologynet.train import distributed as ddp
from radiologynet.train.heads import build_model
from radiologynet.train.trainer import CHECKPOINT_NAME, fit
from radiologynet.transforms import read_preprocessing
from radiologynet.weights import RANDOM_TAGS, Preprocessing, looks_like_path, resolve_weights_arg

logger = logging.getLogger(__name__)

RESULT_NAME = "result.json"
MODEL_DIR = "model"
#: The epoch budget of a run: the paper's 200, or 10 in the resource-limited experiment.
MAX_EPOCHS, FRACTION_MAX_EPOCHS = 200, 10


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
        """``<model>-<init>-<lr>-run<k>[-frac<f>]``."""
        base = f"{self.model}-{self.init}-{self.lr}-run{self.run}"
        return base + (f"-frac{self.fraction:g}" if self.fraction is not None else "")


def parse_init(init: str) -> tuple[str, str | None]:
    """``"random"`` -> ``("random", None)``; ``"imagenet"`` -> ``("imagenet", "imagenet")``;
    ``"mine=/w/folder"`` -> ``("mine", "/w/folder")``; a bare path is labelled by its
    folder name."""
    init = init.strip()
    if "=" in init:
        label, weights = init.split("=", 1)
        return _safe_label(label), weights
    if init.lower() in RANDOM_TAGS:
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


def _check_lr(lr: str) -> str:
    text = str(lr).strip()
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InvalidArgumentError(f"learning rate {lr!r} is not a positive number (e.g. 1e-4)")
    return text


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


def plan(task: str, models: Sequence[str], inits: Sequence[str], lrs: Sequence[str],
         runs: int = 5, fractions: Sequence[float] | None = None,
         shard: str | tuple[int, int] | None = None) -> list[RunSpec]:
    """The runs of the grid (this shard's, when ``shard`` is given), in a fixed order.

    Model names are read by the task (:func:`radiologynet.protocol.tasks.resolve_model`:
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
    rates = [_check_lr(lr) for lr in lrs]
    fracs: list[float | None] = [None]
    if fractions:
        fracs = []
        for f in fractions:
            if not 0 < float(f) <= 1:
                raise InvalidArgumentError(f"fraction {f!r} must be in (0, 1]")
            fracs.append(float(f))
    cells = [(m.name, label, weights) for m in resolved for label, weights in parsed
             if _takes_init(m, label, weights)]
    specs = [RunSpec(task, model, label, weights, lr, k, f)
             for f in fracs for model, label, weights in cells for lr in rates
             for k in range(1, runs + 1)]
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

    return {"radiologynet": __version__, "torch": torch.__version__,
            "timm": timm.__version__, "python": platform.python_version(),
            "platform": sys.platform}


def _read_result(folder: Path) -> dict[str, Any] | None:
    path = folder / RESULT_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_model_folder(model: torch.nn.Module, folder: Path, arch: str | None, kind: str,
                        num_classes: int, class_names: Sequence[str],
                        preprocessing: Preprocessing, input_size: int, zoo_model: bool,
                        model_name: str | None = None) -> None:
    pretrained = {**preprocessing.timm_cfg(), "input_size": (3, input_size, input_size)}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if zoo_model and arch is not None and kind in ("multiclass", "binary"):
        from radiologynet.convert import write_weights_folder

        write_weights_folder(state, folder, arch=arch,
                             num_classes=num_classes if kind == "multiclass" else 1,
                             label_names=class_names if kind == "multiclass" else (),
                             extra_config={"pretrained_cfg": pretrained})
        return
    # task-specific models (bone-age head, segmentation): weights plus a config naming them
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous().clone() for k, v in state.items()}
    atomic_write(folder / "model.safetensors",
                 lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    # "architecture": the encoder's timm name (load_unet reads it); None without one
    config = {"architecture": get_architecture(arch).timm_name if arch else None,
              "model": model_name or arch, "task_model": type(model).__name__,
              "kind": kind, "pretrained_cfg": pretrained}
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2))


def run_one(spec: RunSpec, task: TaskSpec, data_root: str | Path, out: str | Path, *,
            split_seed: int = 0, max_epochs: int = 200, patience: int = 10,
            batch_size: int | None = None, input_size: int | None = None,
            in_chans: int = 3, head: str = "pooled", device: str | None = None,
            num_workers: int = 0, progress: bool = True, track_emissions: bool = False,
            cache_dir: str | Path | None = None,
            callbacks: Sequence[Callable[[str, dict[str, Any]], None]] = ()
            ) -> dict[str, Any]:
    """Train and test one run into ``out/<spec.name>/``; returns its ``result.json``.

    A finished run is returned as it is; an interrupted one resumes from its checkpoint.
    """
    folder = Path(out) / spec.name
    existing = _read_result(folder)
    if existing is not None and existing.get("status") == "finished":
        return existing
    seed = split_seed * 1000 + spec.run - 1
    resolved = resolve_model(task, spec.model)
    preprocessing = model_preprocessing(resolved, spec.weights)
    if input_size:  # the preprocessing recorded and applied is the one at this size
        preprocessing = replace(preprocessing, input_size=int(input_size))
    size = preprocessing.input_size
    bs = batch_size or task.batch_size
    config = {"max_epochs": max_epochs, "patience": patience, "batch_size": bs,
              "input_size": size, "in_chans": in_chans, "optimizer": task.optimizer,
              "weight_decay": 1e-3, "scheduler": task.scheduler, "monitor": task.monitor,
              "mode": task.mode, "split_seed": split_seed, "head": head,
              "data": str(data_root), "preprocessing": asdict(preprocessing),
              "world_size": ddp.world_size(), "task_settings": dict(task.settings),
              "regularisation": (get_architecture(resolved.arch).paper_regularisation
                                 if resolved.arch and task.build_model is None else {})}
    result: dict[str, Any] = {
        "task": task.name, "model": spec.model, "init": spec.init, "weights": spec.weights,
        "lr": spec.lr, "run": spec.run, "seed": seed, "fraction": spec.fraction,
        "status": "running", "config": config, "versions": _versions(),
        "best_epoch": None, "epochs_run": 0, "val": {}, "test": {}, "emissions": None,
    }
    if ddp.is_main():
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / RESULT_NAME, result)
    data = task.build_data(DataRequest(
        root=Path(data_root).expanduser(), seed=split_seed, fraction=spec.fraction,
        preprocessing=preprocessing, input_size=size, in_chans=in_chans, train_seed=seed,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        settings=task.settings))
    torch.manual_seed(seed)  # the new head's initialisation
    if task.build_model is not None:
        model = task.build_model(ModelRequest(spec.model, spec.weights, data, in_chans, size,
                                              head))
    else:
        model = build_model(spec.model, spec.weights, kind=task.kind,
                            num_classes=data.num_classes, in_chans=in_chans, head=head,
                            input_size=size, **get_architecture(spec.model).paper_regularisation)
    outcome = fit(
        model, data.train, data.val, data.test, kind=task.kind,
        num_classes=data.num_classes, lr=float(spec.lr), max_epochs=max_epochs,
        patience=patience, batch_size=bs, seed=seed, optimizer=task.optimizer,
        scheduler=task.scheduler,
        loss=task.loss(data) if task.loss is not None else None,
        metrics=task.metrics(data) if task.metrics is not None else None,
        monitor=task.monitor, mode=task.mode, batch_transform=data.batch_transform,
        out_dir=folder, keep_checkpoint=True, device=device, num_workers=num_workers,
        callbacks=callbacks, progress=progress, track_emissions=track_emissions,
    )
    result.update(status="finished", best_epoch=outcome.best_epoch,
                  epochs_run=outcome.epochs_run, val=outcome.val, test=outcome.test or {},
                  emissions=outcome.emissions)
    if ddp.is_main():
        _write_model_folder(model, folder / MODEL_DIR, resolved.arch, task.kind,
                            data.num_classes, data.class_names, preprocessing, size,
                            zoo_model=task.build_model is None, model_name=spec.model)
        atomic_write_json(folder / RESULT_NAME, result)
        (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
    ddp.barrier()
    return result


def run(task: str, data: str | Path, *, models: Iterable[str] | None = None,
        inits: Iterable[str] = ("random", "imagenet", "radiologynet"),
        lrs: Iterable[str] | None = None, runs: int = 5,
        fractions: Iterable[float] | None = None, max_epochs: int | None = None,
        out: str | Path = "results", shard: str | tuple[int, int] | None = None,
        split_seed: int = 0, patience: int = 10, batch_size: int | None = None,
        input_size: int | None = None, in_chans: int = 3, head: str = "pooled",
        device: str | None = None, num_workers: int = 0, progress: bool = True,
        track_emissions: bool = False, cache_dir: str | Path | None = None,
        callbacks: Sequence[Callable[[str, dict[str, Any]], None]] = (),
        task_settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run (this shard of) the paper's protocol on ``task`` into ``out``.

    Args:
        task: a registered task (``btmr``, ``covid19``, ``boneage``, ``grazpedwri``,
            ``folder``, ``luna16`` ...).
        data: the dataset folder.
        models, lrs: default to the task's paper models and learning rates.
        inits: ``random``, ``imagenet``, ``radiologynet``, any tag, a path or ``name=PATH``.
        runs: repetitions per setting (seeds ``split_seed*1000 + k - 1``).
        fractions: training fractions (the resource-limited experiment); ``None``: all.
        max_epochs: default 200, or 10 with ``fractions`` (the paper's).
        out: the results folder (one sub-folder per run).
        shard: ``"i/n"``: only the runs whose name hashes to share ``i`` of ``n``.
        cache_dir: keep decoded images memory-mapped there (reused across processes).
        task_settings: overrides of the task's settings (:attr:`TaskSpec.settings`, e.g.
            ``{"samples_per_epoch": 512}`` for a CPU run of ``luna16``).

    Returns:
        the ``result.json`` contents of every run of this shard, in grid order.
    """
    spec = with_settings(get_task_spec(task), **(task_settings or {}))
    models = list(models) if models else list(spec.models)
    if not models:
        raise InvalidArgumentError(f"task {spec.name!r} has no default models; pass models=")
    lrs = list(lrs) if lrs else list(spec.lrs)
    fractions = list(fractions) if fractions else None
    if max_epochs is None:
        max_epochs = FRACTION_MAX_EPOCHS if fractions else MAX_EPOCHS
    if not Path(data).expanduser().exists():
        raise RadiologyNetError(f"--data {data}: no such folder. Download the dataset "
                                f"(radiologynet benchmark --help lists the tasks) first.")
    runs_to_do = plan(spec.name, models, list(inits), lrs, runs, fractions, shard)
    results = []
    for number, run_spec in enumerate(runs_to_do, 1):
        if progress and ddp.is_main():
            print(f"[{number}/{len(runs_to_do)}] {spec.name}/{run_spec.name}", flush=True)
        results.append(run_one(
            run_spec, spec, data, out, split_seed=split_seed, max_epochs=max_epochs,
            patience=patience, batch_size=batch_size, input_size=input_size,
            in_chans=in_chans, head=head, device=device, num_workers=num_workers,
            progress=progress, track_emissions=track_emissions, cache_dir=cache_dir,
            callbacks=callbacks))
    return results
