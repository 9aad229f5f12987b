"""DistributedDataParallel on the CPU (gloo, 2 processes) gives the single-process numbers,
also when killed mid-epoch and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from radiologynet.train import PredictionMetrics, TrainConfig, evaluate, fit

WORLD = 2


def _data(n: int, seed: int) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = y.view(-1, 1, 1, 1) * 60 + torch.randint(0, 80, (n, 1, 8, 8), generator=g)
    return torch.utils.data.TensorDataset(x.to(torch.uint8), y)


def _model() -> nn.Module:
    # no BatchNorm or dropout: per-replica statistics would (rightly) differ from one process
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )


def _scale(inputs, target, *, train, generator):
    return inputs.float() / 255, target


class Stop(Exception):
    """Stands for the job being killed."""


def _kill(event: str, info: dict) -> None:
    if event == "batch_end" and info["epoch"] == 2 and info["step"] == 1:
        raise Stop


def _train(out: Path | None, callbacks=()) -> dict:
    model = _model()
    # checkpoint after every step: the kill below leaves a mid-epoch checkpoint
    config = TrainConfig(
        num_classes=3,
        lr=0.05,
        max_epochs=3,
        batch_size=8,
        seed=1,
        progress=False,
        device="cpu",
        checkpoint_interval_s=0,
    )
    result = fit(
        model,
        _data(40, 0),
        _data(13, 1),
        _data(11, 2),
        config=config,
        batch_transform=_scale,
        out_dir=out,
        callbacks=callbacks,
    )
    scored = evaluate(
        model,
        _data(13, 1),
        loss=nn.CrossEntropyLoss(),
        metrics=PredictionMetrics("multiclass", 3),
        batch_size=4,
        batch_transform=_scale,
    )
    history = [
        {k: v for k, v in r.items() if k not in ("time_s", "images_per_s")} for r in result.history
    ]
    return {"history": history, "test": result.test, "val": result.val, "scored": scored}


def _worker(rank: int, store: str, out: str, kill: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        if kill:
            try:
                _train(Path(out) / "run", callbacks=[_kill])
            except Stop:
                return
            raise AssertionError("the run was not killed")
        outcome = _train(Path(out) / "run")
        Path(out, f"rank{rank}.json").write_text(json.dumps(outcome))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(tmp_path):
    torch.set_num_threads(1)
    single = _train(None)
    # killed mid-epoch, then resumed from the checkpoint the ranks wrote together
    mp.spawn(_worker, args=(str(tmp_path / "store1"), str(tmp_path), True), nprocs=WORLD, join=True)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert (saved["state"]["epoch"], saved["state"]["step"]) == (1, 1)
    assert len(saved["ranks"]) == WORLD  # each rank's RNG state
    mp.spawn(
        _worker, args=(str(tmp_path / "store2"), str(tmp_path), False), nprocs=WORLD, join=True
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert ranks[0] == ranks[1]  # every rank reports the synchronised numbers
    ddp = ranks[0]
    assert len(ddp["history"]) == len(single["history"]) == 3
    for one, two in zip(single["history"], ddp["history"], strict=True):
        assert one.keys() == two.keys()
        for key in one:
            assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key
    assert ddp["test"] == pytest.approx(single["test"], rel=1e-4, abs=1e-5)
    assert ddp["scored"] == pytest.approx(single["scored"], rel=1e-4, abs=1e-5)
    assert (tmp_path / "run" / "log.jsonl").is_file()  # written once, by rank 0
