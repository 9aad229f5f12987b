"""Pre-emption: SIGTERM/SIGINT stop :func:`~radiologynet.train.fit` after the current step,
once its checkpoint is written (:class:`Preemption`, :class:`TrainingInterrupted`)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from radiologynet.errors import RadiologyNetError


class TrainingInterrupted(RadiologyNetError):
    """SIGTERM/SIGINT stopped training after a step; the checkpoint holds that step."""


class Preemption:
    """While active, SIGTERM and SIGINT only set :attr:`requested`; the trainer finishes
    its step, writes the checkpoint and stops (:class:`TrainingInterrupted`). A second
    SIGINT (Ctrl-C twice) raises ``KeyboardInterrupt`` at once. Handlers are installed
    only in the main thread and restored on exit."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def handle(self, signum: int, frame: Any = None) -> None:
        """The signal handler: remember the request; a second Ctrl-C stops at once."""
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
