"""What a benchmark's folder already holds, so that the same command resumes it.

On disk every run of the matrix is in one of three states:

- ``done``: its ``summary.json`` says so; the folder is kept untouched and the summary read;
- ``resume``: it has a complete checkpoint (taken every ``checkpoint_freq`` env steps and on a
  stop); the run continues from its newest one exactly, whatever stopped it (a signal, a
  SIGKILL, a machine stop, also mid-write);
- ``start``: no folder yet, or one a SIGKILL left before the first checkpoint, which is cleared.

A run folder whose config is not the plan's (another spec, another ``--steps``) is an error: a
table comes from one matrix. :func:`holding_folder` keeps a second invocation, and the workers
of a killed one, off the folder; :class:`Sessions` records each invocation's command and wall time.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from biocredit.checkpoints import RESUME_FILE, newest_checkpoint
from biocredit.errors import ConfigError
from biocredit.training.config import RunConfig
from biocredit.training.interrupt import INTERRUPTED_EXIT_CODE
from biocredit.training.run_folder import CONFIG_FILE, SUMMARY_FILE, read_run_config
from biocredit.training.run_kinds import run_class

DONE, RESUME, START = "done", "resume", "start"
LOCK_FILE = ".bench.lock"
SESSIONS_FILE = "sessions.json"
ORPHANS_WAIT_S = 600  # how long a new invocation waits for a killed one's workers to stop
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_worker: dict[str, Any] = {}  # a pool worker's driver pid and shared lock, for its lifetime


def check_planned(config: RunConfig, run_dir: Path) -> None:
    """Raise a :class:`ConfigError` if ``run_dir`` holds a run of another config."""
    stored, planned = read_run_config(run_dir).to_dict(), config.to_dict()
    differ = [key for key in planned if key != "out" and stored[key] != planned[key]]
    if differ:
        first = differ[0]
        raise ConfigError(
            f"'{run_dir}' holds a run of another matrix: its {', '.join(differ)} differ from "
            f"this spec's plan ({first} {stored[first]!r} there, {planned[first]!r} here). A "
            "table comes from one matrix: rerun the command that made that folder, or pass "
            "another --out."
        )


def resumable(config: RunConfig) -> bool:
    try:
        run_class(config).check_resumable()
    except ConfigError:  # multi-agent runs start again
        return False
    return True


def is_done(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` finished (a run stopped by a signal also writes a summary,
    ``status: interrupted``, and resumes from its checkpoint)."""
    summary = run_dir / SUMMARY_FILE
    return summary.is_file() and json.loads(summary.read_text())["status"] == "done"


def run_state(config: RunConfig) -> str:
    """``done``, ``resume`` or ``start``, from what the run's folder holds."""
    run_dir = Path(config.out or ".")
    if not (run_dir / CONFIG_FILE).is_file():
        return START
    check_planned(config, run_dir)
    if is_done(run_dir):
        return DONE
    last = newest_checkpoint(run_dir)
    if last is not None and (last / RESUME_FILE).is_file() and resumable(config):
        return RESUME
    return START


def prepare_runs(configs: list[RunConfig]) -> list[str]:
    """Every run's state; the folders of runs to start again are cleared (only once every
    folder has been checked against the plan)."""
    states = [run_state(config) for config in configs]
    for config, state in zip(configs, states, strict=True):
        if state == START:
            shutil.rmtree(config.out or ".", ignore_errors=True)
    return states


def read_summary(config: RunConfig) -> dict[str, Any]:
    return json.loads((Path(config.out or ".") / SUMMARY_FILE).read_text())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def wait_for_exclusive(handle: IO[str], path: Path, console: Console) -> None:
    """Take the exclusive lock on ``path``: at once if free, an error if another bench's
    driver holds it, after a wait if only the workers of a killed one do (they stop at their
    next rollout boundary)."""
    deadline, told = time.monotonic() + ORPHANS_WAIT_S, False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        handle.seek(0)
        owner = int(handle.read().strip() or 0)
        if owner and pid_alive(owner):
            raise ConfigError(
                f"Another `biocredit bench` (pid {owner}) is running on '{path.parent}'. Wait "
                f"for it, or stop it (kill -TERM {owner}) and run this command again to resume."
            )
        if time.monotonic() > deadline:
            raise ConfigError(
                f"Workers of a killed `biocredit bench` still use '{path.parent}' after "
                f"{ORPHANS_WAIT_S} s. List them with `fuser -v {path}`, stop them with "
                "kill -TERM, then run this command again."
            )
        if not told:
            console.print("waiting for the workers of a killed bench on this folder to stop ...")
            told = True
        time.sleep(1.0)


@contextmanager
def holding_folder(out_dir: Path, console: Console) -> Iterator[Path]:
    """Hold ``<out>/.bench.lock`` for this invocation; yield its path.

    First an exclusive lock, which proves no other bench nor a worker of a killed one uses the
    folder; then a shared one, which this bench's workers join (:func:`join_bench`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILE
    with open(path, "a+") as handle:
        wait_for_exclusive(handle, path, console)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_SH)
        yield path


def join_bench(lock_path: str, driver_pid: int) -> None:
    """Pool-worker initializer: share the bench's lock for the worker's lifetime and, on Linux,
    get SIGTERM when the driver dies, so that the runs of a killed bench checkpoint and stop
    instead of running on unseen."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != driver_pid:  # the driver died before prctl
            os.kill(os.getpid(), signal.SIGTERM)
    handle = open(lock_path)  # noqa: SIM115 - held until the process exits
    fcntl.flock(handle, fcntl.LOCK_SH)
    _worker.update(driver=driver_pid, lock=handle)


def leave_if_orphaned() -> None:
    """In a pool worker whose driver has died: exit (the pool would wait for a next task, and
    hold the lock, forever)."""
    if "driver" in _worker and os.getppid() != _worker["driver"]:
        os._exit(INTERRUPTED_EXIT_CODE)


@dataclass(frozen=True)
class Invocation:
    """One invocation that worked on a matrix: its command line (``None`` in folders written
    before commands were recorded), its workers and its wall time."""

    command: str | None
    workers: str | None
    elapsed_s: float


class Sessions:
    """Every invocation that worked on a matrix, in ``<out>/sessions.json``: its command, its
    workers and its wall time.

    Brought up to date whenever outputs are written, so a killed session counts up to its last
    finished run.
    """

    def __init__(self, out_dir: Path, fresh: bool, command: str, workers: str) -> None:
        self.path = out_dir / SESSIONS_FILE
        self.command, self.workers = command, workers
        self.earlier: list[Invocation] = []
        if self.path.is_file() and not fresh:
            saved = json.loads(self.path.read_text())
            count = len(saved["elapsed_s"])
            self.earlier = [
                Invocation(command, workers, elapsed)
                for command, workers, elapsed in zip(
                    saved.get("commands", [None] * count),
                    saved.get("workers", [None] * count),
                    saved["elapsed_s"],
                    strict=True,
                )
            ]
        self.start = time.perf_counter()

    def record(self, ran: bool = True) -> list[Invocation]:
        """Save this session's time so far (if it ran anything); return every session's."""
        this = Invocation(self.command, self.workers, round(time.perf_counter() - self.start, 1))
        invocations = [*self.earlier, this] if ran else self.earlier
        saved = {
            "elapsed_s": [i.elapsed_s for i in invocations],
            "commands": [i.command for i in invocations],
            "workers": [i.workers for i in invocations],
        }
        self.path.write_text(json.dumps(saved) + "\n")
        return invocations
