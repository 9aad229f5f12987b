"""A run folder is locked while a run writes it, and a killed run's temporaries are
cleaned (issue 23, deliverable 9)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from radiologynet.errors import RunInProgressError
from radiologynet.protocol import run as run_grid
from radiologynet.protocol.runner import RunSettings
from radiologynet.train import TrainConfig
from radiologynet.train.lock import lock_path, run_folder_lock
from tests.datasets_fakes import make_btmr

TINY = TrainConfig(max_epochs=1, batch_size=8, progress=False)
SMALL = RunSettings(input_size=32)
GRID = dict(models=["resnet18"], inits=["random"], lrs=["1e-3"], runs=1)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of ``out/<run>`` until it is told to stop."""
    procs = []

    def hold(folder):
        code = textwrap.dedent(
            f"""
            import sys
            from filelock import FileLock
            lock = FileLock({str(lock_path(folder))!r})
            lock.acquire()
            print("held", flush=True)
            sys.stdin.read()
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield hold
    for proc in procs:
        proc.communicate("", timeout=30)


def test_a_second_run_into_a_locked_folder_is_refused_before_writing(tmp_path, holder):
    """Before: two runs into one --out both exited 0 and the second overwrote the first."""
    data = make_btmr(tmp_path / "btmr")
    out = tmp_path / "out"
    (out / "btmr" / "resnet18-random-1e-3-run1").mkdir(parents=True)
    name = "resnet18-random-1e-3-run1"
    holder(out / "btmr" / name)
    with pytest.raises(RunInProgressError, match="being written by another run"):
        run_grid("btmr", data, TINY, SMALL, out=out / "btmr", **GRID)
    assert [p.name for p in (out / "btmr" / name).iterdir()] == [".lock"]


def test_the_lock_passes_through_in_its_own_process_and_is_released(tmp_path, holder):
    folder = tmp_path / "run"
    folder.mkdir()
    with run_folder_lock(folder):
        with run_folder_lock(folder):  # the runner, then fit inside it
            pass
        assert lock_path(folder).exists()
    proc = holder(folder)  # released: another process takes it ...
    with pytest.raises(RunInProgressError, match=str(folder)):
        with run_folder_lock(folder):
            pass
    proc.communicate("", timeout=30)
    with run_folder_lock(folder):  # ... and gives it back
        pass


def test_fit_locks_its_out_dir(tmp_path, holder):
    """pretrain and pretrain-reconstruction write through fit: the lock covers them."""
    import torch

    from radiologynet.train import fit

    data = torch.utils.data.TensorDataset(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    (tmp_path / "run").mkdir()
    holder(tmp_path / "run")
    with pytest.raises(RunInProgressError):
        fit(torch.nn.Linear(3, 2), data, data, config=TINY, out_dir=tmp_path / "run")
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".lock"]


def test_a_killed_runs_temporaries_are_removed_when_the_folder_is_next_locked(tmp_path):
    """Before: a SIGKILLed run's .checkpoint.pt.*.tmp and half model folder stayed."""
    folder = tmp_path / "run"
    (folder / "model").mkdir(parents=True)
    left = [
        folder / ".checkpoint.pt.k2j3.tmp",
        folder / ".result.json.x.tmp",
        folder / "model" / ".model.safetensors.q.tmp",
    ]
    for temp in left:
        temp.write_bytes(b"\0" * 100)
    (folder / ".model.abc.tmp").mkdir()  # an atomic_dir staging folder
    keep = folder / "checkpoint.pt"
    keep.write_bytes(b"kept")
    with run_folder_lock(folder):
        pass
    assert not any(t.exists() for t in left) and not (folder / ".model.abc.tmp").exists()
    assert keep.read_bytes() == b"kept"
