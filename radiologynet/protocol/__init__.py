"""The paper's downstream protocol: a grid of tasks x models x inits x lrs x runs.

``run(...)`` executes (a shard of) the grid into one results folder per run, in paper mode
unless told otherwise (``paper_configuration()``, the same as ``radiologynet benchmark``);
:class:`TaskSpec` / :func:`register_task` plug a task in (see :mod:`.tasks`).
"""

from radiologynet.protocol.spec import (
    DataRequest,
    ModelName,
    ModelRequest,
    TaskData,
    TaskSpec,
    UnknownTaskError,
    get_task_spec,
    list_tasks,
    register_task,
    resolve_model,
    with_settings,
)
from radiologynet.protocol.tasks import classification, luna16  # noqa: F401  (they register)

__all__ = [
    "DataRequest",
    "ModelName",
    "ModelRequest",
    "TaskData",
    "TaskSpec",
    "UnknownTaskError",
    "get_task_spec",
    "list_tasks",
    "register_task",
    "resolve_model",
    "with_settings",
]


def __getattr__(name: str):  # the runner pulls in the trainer; load it on first use
    if name in ("run", "RunSpec", "RunSettings", "plan", "run_one", "paper_configuration"):
        from radiologynet.protocol import runner

        return getattr(runner, name)
    raise AttributeError(name)
