"""The paper's downstream protocol: a grid of tasks x models x inits x lrs x runs.

``run(...)`` executes (a shard of) the grid into one results folder per run;
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
    if name in ("run", "RunSpec", "RunSettings", "plan", "run_one"):
        from radiologynet.protocol import runner

        return getattr(runner, name)
    raise AttributeError(name)
