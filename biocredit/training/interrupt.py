"""Ctrl-C and SIGTERM as a request to stop cleanly: checkpoint, summary, then exit."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED_EXIT_CODE = 130  # what the CLI returns for any command a signal stopped


class Stopped(Exception):
    """A command that cannot checkpoint itself (a benchmark's driver) was stopped by a signal."""

    def __init__(self, signal_name: str, message: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name


class StopRequest:
    """Set by SIGINT/SIGTERM while :func:`catch_signals` is active; the loop polls it."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __bool__(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name


@contextmanager
def handle_stop_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM call ``handler``; the previous handlers return
    after it."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)


@contextmanager
def catch_signals() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set the yielded flag instead of killing the run."""
    request = StopRequest()
    with handle_stop_signals(request._handle):
        yield request


def resume_hint(run_dir: str, steps: int, signal_name: str) -> str:
    return (
        f"Stopped by {signal_name} at env step {steps}; checkpoint and summary written. "
        f"Resume with: biocredit train --resume {run_dir}"
    )
