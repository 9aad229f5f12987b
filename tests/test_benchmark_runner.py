"""The protocol runner: grid planning, sharding, results folders, skip/resume, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from radiologynet.cli import main
from radiologynet.data.tasks import PaperProtocol
from radiologynet.errors import InvalidArgumentError, StaleRunError, UnknownTaskError
from radiologynet.models._weights import IMAGENET_MEAN
from radiologynet.protocol import TaskData, TaskSpec, get_task_spec, list_tasks, register_task
from radiologynet.protocol import run as run_grid
from radiologynet.protocol.runner import (
    RunSettings,
    parse_init,
    parse_shard,
    plan,
    preprocessing_for,
)
from radiologynet.train import TrainConfig
from tests.datasets_fakes import make_boneage, make_btmr, toy_task_info

TINY = TrainConfig(max_epochs=1, batch_size=8, progress=False)
#: The runner's settings of the tiny runs: 32-pixel inputs.
SMALL = RunSettings(input_size=32)
RESULT_KEYS = {
    "task",
    "model",
    "init",
    "weights",
    "lr",
    "run",
    "seed",
    "fraction",
    "status",
    "config",
    "versions",
    "best_epoch",
    "epochs_run",
    "val",
    "test",
    "emissions",
}


@pytest.fixture(scope="module")
def btmr(tmp_path_factory) -> Path:
    return make_btmr(tmp_path_factory.mktemp("btmr"))


def test_plan_names_and_order():
    runs = plan(
        "btmr",
        ["resnet50", "mobilenetv3_small_100"],
        ["random", "imagenet"],
        ["1e-3", "1e-4"],
        runs=2,
    )
    assert len(runs) == 2 * 2 * 2 * 2
    assert runs[0].name == "resnet50-random-1e-3-run1"
    assert {r.model for r in runs} == {"resnet50", "mobilenet_v3_small"}
    fractions = plan("btmr", ["resnet50"], ["random"], ["1e-4"], 1, fractions=[0.05, 0.5])
    assert [r.name for r in fractions] == [
        "resnet50-random-1e-4-run1-frac0.05",
        "resnet50-random-1e-4-run1-frac0.5",
    ]


def test_shards_partition_the_grid():
    full = plan(
        "btmr",
        ["resnet50", "resnet18"],
        ["random", "imagenet", "radiologynet"],
        ["1e-2", "1e-3", "1e-4", "1e-5"],
        runs=5,
    )
    shards = [
        plan(
            "btmr",
            ["resnet50", "resnet18"],
            ["random", "imagenet", "radiologynet"],
            ["1e-2", "1e-3", "1e-4", "1e-5"],
            runs=5,
            shard=f"{i}/4",
        )
        for i in range(4)
    ]
    names = [r.name for shard in shards for r in shard]
    assert sorted(names) == sorted(r.name for r in full)  # disjoint and complete
    assert all(shards)  # 120 runs over 4 shards: none empty
    again = plan(
        "btmr",
        ["resnet18", "resnet50"],
        ["radiologynet", "random", "imagenet"],
        ["1e-5", "1e-4", "1e-3", "1e-2"],
        runs=5,
        shard="2/4",
    )
    assert {r.name for r in again} == {r.name for r in shards[2]}  # by name, not position


@pytest.mark.parametrize("lr", ["0", "-1e-4", "nan", "inf", "x"])
def test_plan_refuses_learning_rates_train_config_refuses(lr):
    with pytest.raises(InvalidArgumentError, match="positive finite"):
        plan("btmr", ["resnet50"], ["random"], [lr], 1)


@pytest.mark.parametrize(
    "bad",
    [dict(scheduler="cosine"), dict(optimizer="sgd"), dict(lrs=("1e-3", "0"))],
)
def test_taskspec_refuses_what_the_trainer_cannot_run(bad):
    """A bad scheduler used to fail only at run time, naming a --scheduler flag."""
    with pytest.raises(InvalidArgumentError, match="TaskSpec 'toy'"):
        TaskSpec(
            toy_task_info("toy"), lambda request: None, protocol=PaperProtocol(models=(), **bad)
        )


@pytest.mark.parametrize("bad", ["4/4", "x", "1/0", "-1/2"])
def test_bad_shard(bad):
    with pytest.raises(InvalidArgumentError):
        parse_shard(bad)


def test_parse_init(tmp_path):
    assert parse_init("random") == ("random", None)
    assert parse_init("imagenet") == ("imagenet", "imagenet")
    assert parse_init(f"mine={tmp_path}") == ("mine", str(tmp_path))
    assert parse_init(str(tmp_path)) == (tmp_path.name, str(tmp_path))
    with pytest.raises(InvalidArgumentError):
        plan("btmr", ["resnet18"], ["random"], ["fast"], 1)


def test_per_init_preprocessing():
    assert preprocessing_for("resnet18", None).mean is None
    assert preprocessing_for("resnet18", "radiologynet").mean is None
    assert preprocessing_for("resnet18", "imagenet").mean == IMAGENET_MEAN
    assert preprocessing_for("inception_v3", None).input_size == 299


def test_tasks_registered():
    assert {"btmr", "covid19", "boneage", "grazpedwri", "folder"} <= set(list_tasks())
    assert get_task_spec("pba").name == "boneage"
    assert (
        get_task_spec("boneage").optimizer == "adam"
        and get_task_spec("boneage").scheduler == "plateau"
    )
    with pytest.raises(UnknownTaskError, match="Registered tasks"):
        get_task_spec("mnist")


def test_grid_2x2_end_to_end(btmr, tmp_path):
    from radiologynet.models import create_model

    out = tmp_path / "results"
    results = run_grid(
        "btmr",
        btmr,
        TINY,
        SMALL,
        models=["resnet18"],
        inits=["random", "scratch=random"],
        lrs=["1e-3", "1e-4"],
        runs=1,
        out=out,
    )
    assert len(results) == 4
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [
        "resnet18-random-1e-3-run1",
        "resnet18-random-1e-4-run1",
        "resnet18-scratch-1e-3-run1",
        "resnet18-scratch-1e-4-run1",
    ]
    for name in folders:
        folder = out / name
        result = json.loads((folder / "result.json").read_text())
        assert set(result) >= RESULT_KEYS
        assert result["status"] == "finished" and result["task"] == "btmr"
        assert set(result["test"]) == {"loss", "accuracy", "precision", "recall", "f1"} | {
            "classes",  # the per-image metrics, from test_predictions.csv
            "confusion_matrix",
            "auroc",
            "auroc_per_class",
        }
        assert result["epochs_run"] == 1 and result["best_epoch"] == 1
        log = [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]
        assert len(log) == 1 and "val_f1" in log[0]
        assert not (folder / "checkpoint.pt").exists()
        model = create_model("resnet18", weights=folder / "model")
        assert model.num_classes == 4
        assert model.pretrained_cfg["input_size"][-1] == 32
    assert results[0]["seed"] == 0


def test_rerun_skips_finished_and_resumes_interrupted(btmr, tmp_path, monkeypatch):
    out = tmp_path / "results"

    class Stop(Exception):
        pass

    def kill(event, info):
        if event == "batch_end" and info["epoch"] == 2:
            raise Stop

    kwargs = dict(
        models=["resnet18"],
        inits=["random"],
        lrs=["1e-3"],
        runs=1,
        out=out,
        config=replace(TINY, max_epochs=2, checkpoint_interval_s=0),
        settings=SMALL,
    )
    with pytest.raises(Stop):
        run_grid("btmr", btmr, callbacks=[kill], **kwargs)
    folder = out / "resnet18-random-1e-3-run1"
    stopped = json.loads((folder / "result.json").read_text())
    assert stopped["status"] == "failed" and stopped["error"] == "Stop: "  # an exception
    assert (folder / "checkpoint.pt").exists()  # partly trained: resumed, not restarted
    resumed = run_grid("btmr", btmr, **kwargs)[0]
    reference = run_grid("btmr", btmr, **{**kwargs, "out": tmp_path / "ref"})[0]
    assert resumed["status"] == "finished"
    assert resumed["test"] == reference["test"]

    import radiologynet.protocol.runner as runner

    def no_training(*args, **kw):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runner, "fit", no_training)
    assert run_grid("btmr", btmr, **kwargs)[0] == resumed


def test_plugged_task(tmp_path):
    def build_data(request):
        g = torch.Generator().manual_seed(request.seed)
        x = torch.randint(0, 255, (12, 1, 16, 16), generator=g, dtype=torch.uint8)
        ds = torch.utils.data.TensorDataset(x, torch.arange(12) % 2)
        return TaskData(
            train=ds,
            val=ds,
            test=None,
            num_classes=2,
            batch_transform=lambda i, t, train, generator: (
                i.float().expand(-1, 3, -1, -1) / 255,
                t,
            ),
        )

    seen = {}

    def build_model(request):
        seen["request"] = request
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))

    register_task(
        TaskSpec(
            toy_task_info("toy-plugin"),
            build_data,
            build_model=build_model,
            protocol=PaperProtocol(models=(), monitor="accuracy", mode="max"),
        )
    )
    (result,) = run_grid(
        "toy-plugin",
        tmp_path,
        TINY,
        SMALL,
        models=["resnet18"],
        inits=["random"],
        lrs=["1e-2"],
        runs=1,
        out=tmp_path / "out",
    )
    assert result["status"] == "finished" and result["test"] == {}
    assert "accuracy" in result["val"] and seen["request"].arch == "resnet18"


def test_bone_age_regression_run(tmp_path):
    make_boneage(tmp_path / "pba", n_train=12, n_val=4, n_test=4)
    (result,) = run_grid(
        "boneage",
        tmp_path / "pba",
        TINY,
        SMALL,
        models=["resnet18"],
        inits=["random"],
        lrs=["1e-3"],
        runs=1,
        out=tmp_path / "out",
    )
    assert set(result["test"]) == {"loss", "mae", "rmse"}
    assert result["config"]["optimizer"] == "adam"
    assert (
        tmp_path / "out" / "resnet18-random-1e-3-run1" / "model" / "model.safetensors"
    ).is_file()


def test_finetune_and_benchmark_cli(btmr, tmp_path, capsys):
    code = main(
        [
            "finetune",
            "--task",
            "btmr",
            "--data",
            str(btmr),
            "--model",
            "resnet18",
            "--weights",
            "random",
            "--lr",
            "1e-3",
            "--max-epochs",
            "1",
            "--batch-size",
            "8",
            "--input-size",
            "32",
            "--out",
            str(tmp_path / "ft"),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    # finetune names its run by the data (the fixture's folder) before the grid's name
    assert f"{btmr.name}-resnet18-random-1e-3-run1" in printed and '"f1"' in printed
    (run,) = (tmp_path / "ft").iterdir()
    assert run.name == f"{btmr.name}-resnet18-random-1e-3-run1"
    run.rename(tmp_path / "ft" / "resnet18-random-1e-3-run1")  # as benchmark names it
    code = main(
        [
            "benchmark",
            "--task",
            "btmr",
            "--data",
            str(btmr),
            "--models",
            "resnet18",
            "--inits",
            "random",
            "--lrs",
            "1e-3",
            "--runs",
            "2",
            "--out",
            str(tmp_path / "ft"),
            "--shard",
            "0/1",
            "--dry-run",
        ]
    )
    assert code == 0
    listing = capsys.readouterr().out
    assert "resnet18-random-1e-3-run1" in listing and "finished" in listing
    assert "resnet18-random-1e-3-run2" in listing and "new" in listing
    assert main(["benchmark", "--task", "nope", "--data", str(btmr)]) == 1


def test_disk_cache_gives_the_same_run(btmr, tmp_path):
    kwargs = dict(models=["resnet18"], inits=["random"], lrs=["1e-3"], runs=1)
    plain = run_grid("btmr", btmr, TINY, SMALL, out=tmp_path / "plain", **kwargs)[0]
    cached = run_grid(
        "btmr",
        btmr,
        TINY,
        replace(SMALL, cache_dir=str(tmp_path / "cache")),
        out=tmp_path / "cached",
        **kwargs,
    )[0]
    assert list((tmp_path / "cache").iterdir())  # the memory-mapped caches were built
    numbers = {k for k, v in plain["test"].items() if isinstance(v, float)}
    assert {k: cached["test"][k] for k in numbers} == pytest.approx(
        {k: plain["test"][k] for k in numbers}
    )
    assert cached["test"]["confusion_matrix"] == plain["test"]["confusion_matrix"]
    assert cached["val"] == pytest.approx(plain["val"])


def test_binary_task_run(tmp_path):
    from tests.datasets_fakes import make_covid19

    root = make_covid19(
        tmp_path / "covid",
        counts={"COVID": 16, "Normal": 20, "Lung_Opacity": 2, "Viral Pneumonia": 2},
    )
    (result,) = run_grid(
        "covid19",
        root,
        TINY,
        SMALL,
        models=["resnet18"],
        inits=["random"],
        lrs=["1e-3"],
        runs=1,
        out=tmp_path / "out",
    )
    assert set(result["test"]) == {"loss", "accuracy", "precision", "recall", "f1"} | {
        "classes",  # a binary task's per-image metrics
        "confusion_matrix",
        "auroc",
        "sensitivity",
        "specificity",
    }
    from radiologynet.models import create_model

    model = create_model(
        "resnet18", weights=tmp_path / "out" / "resnet18-random-1e-3-run1" / "model"
    )
    assert model.num_classes == 1  # one logit


def test_weights_folder_preprocessing_reaches_the_run(btmr, tmp_path):
    import timm

    from radiologynet.models._folder import write_weights_folder
    from radiologynet.models._weights import IMAGENET_STD

    folder = tmp_path / "imagenet-like"
    write_weights_folder(
        timm.create_model("resnet18", num_classes=1000).state_dict(),
        folder,
        arch="resnet18",
        extra_config={"pretrained_cfg": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}},
    )
    assert preprocessing_for("resnet18", str(folder)).mean == IMAGENET_MEAN
    (result,) = run_grid(
        "btmr",
        btmr,
        TINY,
        SMALL,
        models=["resnet18"],
        inits=[f"tv={folder}"],
        lrs=["1e-3"],
        runs=1,
        out=tmp_path / "out",
    )
    assert result["init"] == "tv" and result["weights"] == str(folder)
    assert tuple(result["config"]["preprocessing"]["mean"]) == IMAGENET_MEAN


def test_a_run_folder_holds_one_configuration(btmr, tmp_path, monkeypatch):
    import radiologynet.protocol.runner as runner

    kwargs = dict(models=["resnet18"], inits=["random"], lrs=["1e-3"], runs=1, out=tmp_path / "out")
    (first,) = run_grid("btmr", btmr, TINY, SMALL, **kwargs)
    config = first["config"]
    assert config["batch_size"] == 8 and config["precision"] == "auto"
    assert config["checkpoint_interval_s"] == 600.0 and config["lr"] == 1e-3
    assert (config["input_size"], config["in_chans"], config["split_seed"]) == (32, 3, 0)

    def no_training(*args, **kw):
        raise AssertionError("trained although the run is finished or refused")

    monkeypatch.setattr(runner, "fit", no_training)
    # where and how it runs may differ (a cache, more processes): the finished run is reused
    monkeypatch.setattr(runner.ddp, "world_size", lambda: 2)
    elsewhere = replace(SMALL, cache_dir=str(tmp_path / "cache"))
    faster = replace(TINY, num_workers=1, device="cpu")
    assert run_grid("btmr", btmr, faster, elsewhere, **kwargs) == [first]
    for change, settings, text in [
        (dict(max_epochs=2), {}, "max_epochs: 1 -> 2"),
        (dict(batch_size=4), {}, "batch_size: 8 -> 4"),
        ({}, dict(split_seed=1), "split_seed: 0 -> 1"),
        ({}, dict(input_size=48), "input_size: 32 -> 48"),
        ({}, dict(input_size=None), "input_size: 32 -> 224"),  # None: the weights' size
        ({}, dict(in_chans=1), "in_chans: 3 -> 1"),
        ({}, dict(head="paper"), "head: 'pooled' -> 'paper'"),
    ]:
        with pytest.raises(StaleRunError, match=text) as err:
            run_grid("btmr", btmr, replace(TINY, **change), replace(SMALL, **settings), **kwargs)
        assert "--overwrite" in str(err.value) and "new --out" in str(err.value)
    # --overwrite keeps a run made with these very settings
    assert run_grid("btmr", btmr, TINY, SMALL, overwrite=True, **kwargs) == [first]
    monkeypatch.undo()
    other_split = replace(SMALL, split_seed=1)
    (again,) = run_grid("btmr", btmr, TINY, other_split, overwrite=True, **kwargs)
    assert again["config"]["split_seed"] == 1 and again["seed"] == 1000


def test_a_diverging_run_is_recorded_as_diverged(btmr, tmp_path):
    (result,) = run_grid(
        "btmr",
        btmr,
        replace(TINY, max_epochs=3),
        SMALL,
        models=["resnet18"],
        inits=["random"],
        lrs=["1e6"],
        runs=1,
        out=tmp_path / "out",
    )
    assert result["status"] == "diverged" and "lr 1e+06" in result["diverged"]
    folder = tmp_path / "out" / "resnet18-random-1e6-run1"
    assert json.loads((folder / "result.json").read_text())["status"] == "diverged"
    assert not (folder / "checkpoint.pt").exists()


def test_one_run_folder_format_for_the_runner_the_demo_sweep_and_the_report(tmp_path):
    from radiologynet.analysis.report.results import INIT_ORDER, load_results
    from radiologynet.demo.sweep import write_run
    from radiologynet.paper import PAPER_INITS
    from radiologynet.protocol.runner import RunSpec
    from radiologynet.train.runs import RESULT_NAME, run_folder_name, started_result

    spec = RunSpec("btmr", "resnet18", "imagenet", "imagenet", "1e-4", 2, 0.25)
    assert spec.name == run_folder_name("resnet18", "imagenet", "1e-4", 2, 0.25)
    assert spec.name == "resnet18-imagenet-1e-4-run2-frac0.25"
    folder = write_run(
        tmp_path, task="btmr", model="resnet18", init="imagenet", lr="1e-4", run=2,
        fraction=0.25, val={"f1": 0.9}, test={"f1": 0.8}, best_epoch=3,
    )  # fmt: skip
    assert folder.name == spec.name
    written = json.loads((folder / RESULT_NAME).read_text())
    fields = dict(weights=None, seed=0, config={}, versions={})
    started = started_result(task="t", model="m", init="i", lr="1", run=1, fraction=None, **fields)
    assert set(written) == set(started)
    assert load_results(tmp_path)["status"].tolist() == ["finished"]
    assert [i for i in INIT_ORDER if i in PAPER_INITS] == list(PAPER_INITS)
