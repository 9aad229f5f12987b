"""The names 0.2 moved still work for one release, warn once, and point the warning at
the caller's line (so a user can find what to change)."""

from __future__ import annotations

import importlib
import sys

import pytest

THIS_FILE = __file__


def _caller_warned(record) -> None:
    warnings = [w for w in record if issubclass(w.category, DeprecationWarning)]
    assert warnings, "no DeprecationWarning"
    assert "removed in radiologynet 0.3" in str(warnings[0].message)
    assert warnings[0].filename == THIS_FILE, warnings[0].filename


@pytest.mark.parametrize(
    "call, new",
    [
        (lambda: importlib.import_module("radiologynet.hub").sha256_of, "sha256_file"),
        (
            lambda: importlib.import_module("radiologynet.convert").read_weights_folder,
            "hub.read_weights_folder",
        ),
        (
            lambda: importlib.import_module("radiologynet.protocol").get_task("covid"),
            "get_task_spec",
        ),
        (
            lambda: importlib.import_module("radiologynet.torchdata.samples").DeviceTransform(),
            "BatchTransform",
        ),
        (
            lambda: importlib.import_module("radiologynet.segmentation.task").LunaBatchTransform(),
            "luna_batch_transform",
        ),
        (
            lambda: importlib.import_module("radiologynet.train").metric_names("segmentation"),
            "compute",
        ),
    ],
    ids=[
        "sha256_of",
        "convert.read_weights_folder",
        "protocol.get_task",
        "DeviceTransform",
        "LunaBatchTransform",
        "train.metric_names",
    ],
)
def test_moved_names_warn_at_the_callers_line(call, new):
    with pytest.warns(DeprecationWarning, match=new) as record:
        assert call() is not None
    _caller_warned(record)


@pytest.mark.parametrize(
    "old, new",
    [
        ("radiologynet.benchmarks", "radiologynet.protocol"),
        ("radiologynet.data", "radiologynet.torchdata"),
        ("radiologynet.train.data", "radiologynet.torchdata.samples"),
    ],
)
def test_old_module_names_are_the_new_modules(old, new, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
