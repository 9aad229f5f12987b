"""The trainer, heads and metrics: exact resume, determinism, early stopping, heads."""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from torch import nn

from radiologynet import Preprocessing
from radiologynet.data.samples import (
    PAPER_AUGMENT,
    SampleDataset,
    batch_loader,
)
from radiologynet.errors import (
    InvalidArgumentError,
    OutputWriteError,
    RadiologyNetError,
    StaleRunError,
)
from radiologynet.train import (
    BoneAgeRegressor,
    PredictionMetrics,
    TrainConfig,
    TrainingInterrupted,
    build_model,
    checkpoint,
    evaluate,
    fit,
)
from radiologynet.train.checkpoint import (
    load_checkpoint,
    remove_checkpoint,
    rng_state,
    set_rng_state,
)
from radiologynet.train.config import RESUMABLE_FIELDS, config_changes, resolve_device
from radiologynet.train.preemption import Preemption
from radiologynet.transforms import BatchHook, BatchTransform


class Stop(Exception):
    pass


def _batch_transform(*, mean=None, std=None, augment=None) -> BatchHook:
    """The trainer's batch hook for images already at their size (the toy data's)."""
    pre = Preprocessing(
        input_size=0,
        mean=tuple(mean) if mean else None,
        std=tuple(std) if std else None,
    )
    return BatchHook(BatchTransform(pre, augment=augment, resize=False))


def _toy(n: int = 40, classes: int = 3, seed: int = 0) -> torch.utils.data.TensorDataset:
    """uint8 images whose brightness encodes the class (learnable in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = y.view(-1, 1, 1, 1) * 80 + torch.randint(0, 40, (n, 1, 16, 16), generator=g)
    return torch.utils.data.TensorDataset(x.to(torch.uint8), y)


class TinyNet(nn.Module):
    """A small CNN with BatchNorm and dropout (both touched by resume and RNG state)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.num_classes = classes
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.3),
        )
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def _config(**kw) -> TrainConfig:
    options = dict(
        kind="multiclass", lr=1e-2, max_epochs=4, patience=10, batch_size=8, seed=3, progress=False
    )
    options.update(kw)
    return TrainConfig(**options)


def _fit(out_dir, callbacks=(), recorded=None, **kw):
    torch.manual_seed(0)
    data = _toy()
    return fit(
        TinyNet(),
        data,
        _toy(12, seed=1),
        _toy(12, seed=2),
        _config(**kw),
        out_dir=out_dir,
        callbacks=callbacks,
        batch_transform=_batch_transform(augment=PAPER_AUGMENT),
        recorded=recorded,
    )


def _strip_times(history):
    return [{k: v for k, v in r.items() if k not in ("time_s", "images_per_s")} for r in history]


def test_fit_writes_log_and_restores_best(tmp_path):
    result = _fit(tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    for key in (
        "train_loss",
        "val_loss",
        "val_accuracy",
        "val_f1",
        "val_precision",
        "val_recall",
        "lr",
        "time_s",
        "images_per_s",
    ):
        assert key in lines[0]
    best = min(lines, key=lambda r: r["val_loss"])
    assert result.best_epoch == best["epoch"]
    assert result.val["loss"] == pytest.approx(best["val_loss"])
    assert not (tmp_path / "checkpoint.pt").exists()  # removed after a finished fit


def test_fit_is_deterministic(tmp_path):
    a = _fit(tmp_path / "a")
    b = _fit(tmp_path / "b")
    assert _strip_times(a.history) == _strip_times(b.history)
    assert a.test == b.test
    c = _fit(tmp_path / "c", seed=4)
    assert _strip_times(c.history) != _strip_times(a.history)


def test_resume_after_kill_mid_epoch_is_exact(tmp_path):
    reference = _fit(tmp_path / "ref")

    def kill(event, info):
        if event == "batch_end" and info["epoch"] == 3 and info["step"] == 2:
            raise Stop

    with pytest.raises(Stop):  # a checkpoint after every step
        _fit(tmp_path / "run", callbacks=[kill], checkpoint_interval_s=0)
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert (saved["state"]["epoch"], saved["state"]["step"]) == (2, 2)  # the last written
    resumed = _fit(tmp_path / "run")  # the same call again
    assert _strip_times(resumed.history) == _strip_times(reference.history)
    assert resumed.test == reference.test
    assert resumed.best_epoch == reference.best_epoch


def test_early_stopping_keeps_first_best(tmp_path):
    # lr 1e-30 (0 is refused): steps below float32 resolution, so the validation loss
    # never improves after epoch 1
    result = _fit(tmp_path, lr=1e-30, patience=2, max_epochs=10)
    assert result.epochs_run == 3
    assert result.best_epoch == 1
    assert result.stopped_early


def test_plateau_scheduler_and_adam(tmp_path):
    _fit(
        tmp_path,
        optimizer="adam",
        scheduler="plateau",
        max_epochs=1,
        keep_checkpoint=True,
        checkpoint_interval_s=0,
    )
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["scheduler"]["factor"] == 0.1 and saved["scheduler"]["patience"] == 3
    assert "amsgrad" in saved["optimizer"]["param_groups"][0]
    assert saved["optimizer"]["param_groups"][0]["weight_decay"] == 1e-3


def test_evaluate_matches_best_weights(tmp_path):
    model = TinyNet()
    torch.manual_seed(0)
    result = fit(
        model,
        _toy(),
        _toy(12, seed=1),
        _toy(12, seed=2),
        TrainConfig(max_epochs=2, batch_size=8, progress=False),
        batch_transform=_batch_transform(),
    )
    again = evaluate(
        model,
        _toy(12, seed=2),
        loss=nn.CrossEntropyLoss(),
        metrics=PredictionMetrics("multiclass", 3),
        batch_transform=_batch_transform(),
    )
    assert again == pytest.approx(result.test)


def test_bad_arguments_raise():
    with pytest.raises(RadiologyNetError, match="^max_epochs must be"):
        TrainConfig(max_epochs=0)  # the library names the setting, the CLI its option
    with pytest.raises(RadiologyNetError, match="monitor"):
        fit(
            TinyNet(),
            _toy(),
            _toy(),
            config=TrainConfig(max_epochs=1, monitor="auc", progress=False),
            batch_transform=_batch_transform(),
        )


def test_track_emissions_without_codecarbon(monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    with pytest.raises(RadiologyNetError, match=r"radiologynet\[emissions\]"):
        fit(
            TinyNet(),
            _toy(),
            _toy(),
            config=TrainConfig(max_epochs=1, track_emissions=True, progress=False),
        )


def test_rng_state_roundtrip():
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), __import__("random").random())
    set_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]


@pytest.mark.parametrize("classes", [2, 4])
def test_classification_metrics_match_sklearn(classes):
    rng = np.random.default_rng(classes)
    logits = torch.tensor(rng.normal(size=(50, classes)), dtype=torch.float32)
    target = torch.tensor(rng.integers(0, classes, 50))
    metrics = PredictionMetrics("multiclass", classes)
    metrics.update(logits[:20], target[:20])
    metrics.update(logits[20:], target[20:])
    got = metrics.compute()
    pred = logits.argmax(1).numpy()
    y = target.numpy()
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert got["precision"] == pytest.approx(
        precision_score(y, pred, average="macro", zero_division=0)
    )
    assert got["recall"] == pytest.approx(recall_score(y, pred, average="macro", zero_division=0))


def test_binary_and_regression_metrics():
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    binary = PredictionMetrics("binary")
    binary.update(logits, target)
    got = binary.compute()
    assert got["accuracy"] == pytest.approx(0.5)
    assert got["f1"] == pytest.approx(f1_score([1, 1, 0, 0], [1, 0, 1, 0], average="macro"))
    reg = PredictionMetrics("regression")
    reg.update(torch.tensor([[10.0], [20.0]]), torch.tensor([12.0, 16.0]))
    assert reg.compute() == pytest.approx({"mae": 3.0, "rmse": float(np.sqrt(10.0))})


def test_multiclass_and_binary_heads():
    multi = build_model("resnet18", None, kind="multiclass", num_classes=4)
    binary = build_model("resnet18", None, kind="binary", num_classes=1)
    x = torch.rand(2, 3, 32, 32)
    assert multi(x).shape == (2, 4)
    assert binary(x).shape == (2, 1)


@pytest.mark.parametrize("head", ["pooled", "paper"])
def test_bone_age_head_uses_sex(head):
    torch.manual_seed(0)
    model = build_model(
        "resnet18", None, kind="regression", num_classes=1, head=head, input_size=64
    )
    assert isinstance(model, BoneAgeRegressor)
    first = model.regressor[0]
    # pooled: 512 features; the paper's head flattens the 512 x 2 x 2 map of a 64 px input
    assert first.in_features == (512 if head == "pooled" else 512 * 2 * 2) + 128
    assert model.sex.in_features == 1 and model.sex.out_features == 128
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    male, female = model(x, torch.ones(2)), model(x, torch.zeros(2))
    assert male.shape == (2, 1)
    assert not torch.allclose(male, female)


def test_batch_transform_as_the_trainers_hook():
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    plain, _ = _batch_transform()(x, None, train=False)
    assert plain.shape == (4, 3, 8, 8)
    assert torch.allclose(plain[:, 1], x[:, 0].float() / 255)
    norm, _ = _batch_transform(mean=(0.5,) * 3, std=(0.25,) * 3)(x, None, train=False)
    assert torch.allclose(norm, (plain - 0.5) / 0.25)
    aug = _batch_transform(augment=PAPER_AUGMENT)
    a, _ = aug(x, None, train=True, generator=torch.Generator().manual_seed(1))
    b, _ = aug(x, None, train=True, generator=torch.Generator().manual_seed(1))
    c, _ = aug(x, None, train=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_checkpoints_follow_the_interval_not_every_epoch(tmp_path):
    reference = _fit(tmp_path / "ref")

    def kill(event, info):
        if event == "epoch_end" and info["epoch"] == 3:
            raise Stop

    with pytest.raises(Stop):  # the default interval (600 s) has not passed: nothing written
        _fit(tmp_path / "run", callbacks=[kill])
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    assert (tmp_path / "run" / "log.jsonl").is_file()
    resumed = _fit(tmp_path / "run")  # starts again and ends the same
    assert _strip_times(resumed.history) == _strip_times(reference.history)


def test_sigterm_finishes_the_step_writes_and_resumes_exactly(tmp_path):
    reference = _fit(tmp_path / "ref")

    def preempt(event, info):
        if event == "batch_end" and info["epoch"] == 2 and info["step"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the cluster pre-empts the job

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="SIGTERM after epoch 2, step 2"):
        _fit(tmp_path / "run", callbacks=[preempt])
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert (saved["state"]["epoch"], saved["state"]["step"]) == (1, 2)
    resumed = _fit(tmp_path / "run")
    assert _strip_times(resumed.history) == _strip_times(reference.history)
    assert resumed.test == reference.test


def test_best_weights_are_one_file_not_a_copy_per_checkpoint(tmp_path):
    result = _fit(tmp_path, keep_checkpoint=True, checkpoint_interval_s=0)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert "best_weights" not in saved and "best_weights" not in saved["state"]
    files = sorted(p.name for p in tmp_path.glob("best-e*.safetensors"))
    assert files == [f"best-e{result.best_epoch}.safetensors"] == [saved["best_file"]]
    remove_checkpoint(tmp_path)
    assert not list(tmp_path.glob("best-e*")) and not (tmp_path / "checkpoint.pt").exists()


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    reference = _fit(tmp_path / "ref")
    real = checkpoint.atomic_write

    def no_space(path, writer):
        def fail(tmp):
            raise OSError(errno.ENOSPC, "No space left on device", tmp)

        return real(path, fail)

    def fill_disk(event, info):
        if event == "batch_end" and info["epoch"] == 3:
            monkeypatch.setattr(checkpoint, "atomic_write", no_space)

    with pytest.raises(OutputWriteError) as err:
        _fit(tmp_path / "run", callbacks=[fill_disk], checkpoint_interval_s=0)
    message = str(err.value)
    assert "\n" not in message and "checkpoint.pt" in message and "disk is full" in message
    monkeypatch.undo()
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")  # intact, epoch 2's end
    assert (saved["state"]["epoch"], saved["state"]["step"]) == (2, 0)
    resumed = _fit(tmp_path / "run")
    assert _strip_times(resumed.history) == _strip_times(reference.history)


def test_nan_loss_stops_the_run_as_diverged(tmp_path):
    result = _fit(tmp_path, lr=1e6, max_epochs=20, keep_checkpoint=True)
    assert result.status == "diverged"
    assert "lr 1e+06" in result.diverged and result.epochs_run < 20
    again = _fit(tmp_path, lr=1e6, max_epochs=20)  # the rerun reads the outcome back
    assert again.status == "diverged" and again.epochs_run == result.epochs_run


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    def kill(event, info):
        if event == "epoch_end" and info["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        _fit(tmp_path, callbacks=[kill], checkpoint_interval_s=0)
    with pytest.raises(StaleRunError, match="batch_size: 8 -> 4"):
        _fit(tmp_path, batch_size=4)
    # where and how fast it runs may change on resume
    _fit(tmp_path, num_workers=0, eval_batch_size=5, device="cpu")


def test_resume_refuses_a_checkpoint_of_other_recorded_settings(tmp_path):
    """Settings outside the TrainConfig (the data, the network's input: what pretraining
    passes as ``recorded``) are kept in the checkpoint and a resume must match them."""

    def kill(event, info):
        if event == "epoch_end" and info["epoch"] == 2:
            raise Stop

    data = {"input_size": 16, "in_chans": 3, "split_seed": 0}
    with pytest.raises(Stop):
        _fit(tmp_path, callbacks=[kill], checkpoint_interval_s=0, recorded=data)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["recorded"] == data
    for change, text in [
        ({"input_size": 32}, "input_size: 16 -> 32"),
        ({"in_chans": 1}, "in_chans: 3 -> 1"),
        ({"split_seed": 1}, "split_seed: 0 -> 1"),
    ]:
        with pytest.raises(StaleRunError, match=text):
            _fit(tmp_path, recorded={**data, **change})
    assert _fit(tmp_path, recorded=data).status == "finished"  # the same settings resume


@pytest.mark.parametrize(
    "bad",
    [
        dict(batch_size=0),
        dict(max_epochs=0),
        dict(num_workers=-1),
        dict(lr=float("inf")),
        dict(lr=float("nan")),
        dict(lr=0.0),
        dict(lr=-1e-4),
        dict(device="banana"),
        dict(precision="fp16"),
        dict(patience=0),
        dict(checkpoint_interval_s=-1),
    ],
)
def test_config_refuses_bad_values(bad):
    with pytest.raises(InvalidArgumentError) as err:
        TrainConfig(**bad)
    assert "\n" not in str(err.value)


def test_the_default_device_is_this_ranks_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device(None) == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(InvalidArgumentError, match="--device 'banana'"):
        resolve_device("banana")


def test_config_refuses_cuda_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidArgumentError, match="no CUDA GPU"):
        TrainConfig(device="cuda")


def test_batch_path_gives_the_dataloader_tensors(tmp_path):
    images = [tmp_path / f"{i}.png" for i in range(7)]
    for i, path in enumerate(images):
        Image.fromarray(np.full((20, 30), 30 * i, dtype=np.uint8)).save(path)
    samples = [SimpleNamespace(path=str(p), target=i % 2, sex=i % 2) for i, p in enumerate(images)]
    for cache in (None, tmp_path / "cache"):
        data = SampleDataset(samples, 16, with_sex=True, cache_dir=cache)
        subset = torch.utils.data.Subset(data, [6, 0, 3, 5, 1])
        order = [4, 0, 2, 1]
        fast = list(batch_loader(subset, order, 3))
        slow = list(
            torch.utils.data.DataLoader(torch.utils.data.Subset(subset, order), batch_size=3)
        )
        assert len(fast) == len(slow) == 2
        for (f_in, f_y), (s_in, s_y) in zip(fast, slow, strict=True):
            assert torch.equal(f_in[0], s_in[0]) and torch.equal(f_in[1], s_in[1])
            assert torch.equal(f_y, s_y)


def test_resumable_fields_are_train_config_fields():
    """RESUMABLE_FIELDS listed world_size, a key of the runner's record (review 5.8)."""
    assert RESUMABLE_FIELDS <= set(TrainConfig.field_names())


def test_train_config_holds_training_settings_only():
    """The data settings (input size, channels, split seed) and the runner's (head, cache)
    are the protocol runner's RunSettings and pretraining's configs, not TrainConfig's."""
    from dataclasses import fields

    from radiologynet.pretraining.pretrain import PretrainConfig
    from radiologynet.pretraining.reconstruction import ReconstructionConfig
    from radiologynet.protocol.runner import RunSettings

    data = {"input_size", "in_chans", "split_seed"}
    assert not (data | {"head", "cache_dir"}) & set(TrainConfig.field_names())
    assert data <= {f.name for f in fields(RunSettings)}
    assert data <= {f.name for f in fields(PretrainConfig)}
    assert {"input_size", "in_chans"} <= {f.name for f in fields(ReconstructionConfig)}


@pytest.mark.parametrize(
    ("bad", "text"),
    [
        (dict(input_size=0), "input_size must be an integer >= 1"),
        (dict(input_size=-32), "input_size must be an integer >= 1"),
        (dict(in_chans=0), "in_chans must be an integer >= 1"),
        (dict(split_seed=-1), "split_seed must be an integer >= 0"),
    ],
)
def test_data_settings_refuse_bad_values(bad, text):
    from radiologynet.pretraining.pretrain import PretrainConfig
    from radiologynet.protocol.runner import RunSettings

    for settings in (RunSettings, PretrainConfig):
        with pytest.raises(InvalidArgumentError, match=text):
            settings(**bad)


def test_config_changes_ignore_where_it_runs_and_unrecorded_settings():
    saved = TrainConfig(batch_size=8, device="cpu").to_dict()
    assert config_changes(saved, TrainConfig(batch_size=8, num_workers=2).to_dict()) == []
    assert config_changes(saved, TrainConfig(batch_size=4).to_dict()) == ["batch_size: 8 -> 4"]
    older = {k: v for k, v in saved.items() if k != "precision"}  # an older record
    assert config_changes(older, TrainConfig(batch_size=8, precision="fp32").to_dict()) == []


def test_second_ctrl_c_stops_at_once():
    preemption = Preemption()
    preemption.handle(signal.SIGINT)
    assert preemption.requested == "SIGINT"
    with pytest.raises(KeyboardInterrupt):
        preemption.handle(signal.SIGINT)
