"""Run a benchmark matrix (:mod:`.bench_spec`, :mod:`.bench_plan`) and write its table
(:mod:`.bench_table`).

Runs execute in a local process pool (``workers`` processes) or, with ``backend="ray"``, as Ray
tasks on a local Ray instance or the cluster at ``ray_address`` (``pip install
'biocredit[ray]'``; every node needs biocredit and must write to a folder the driver reads).
Either way the results land in ``<out>/table.md`` (ratios to bp), ``<out>/curves.png`` and
``<out>/results.json``.

The same command resumes a stopped bench (Ctrl-C, SIGTERM, SIGKILL, a machine stop): finished
runs are kept, the others continue from their checkpoints (:mod:`.bench_state`). Until every
run has finished, the table is a partial one, rewritten as runs finish and marked so;
``--status`` shows where a matrix stands without running it (:mod:`.bench_status`).
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import closing, contextmanager
from itertools import islice
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from biocredit.errors import ConfigError, unknown_name
from biocredit.training.bench_plan import Selection, plan_matrix
from biocredit.training.bench_state import (
    DONE,
    RESUME,
    START,
    Sessions,
    holding_folder,
    join_bench,
    leave_if_orphaned,
    prepare_runs,
    read_summary,
)
from biocredit.training.bench_table import Outputs
from biocredit.training.config import RunConfig
from biocredit.training.interrupt import Stopped, handle_stop_signals
from biocredit.training.run import run_with_recovery
from biocredit.training.run_kinds import run_class

BACKENDS = ("local", "ray")
Task = tuple[int, RunConfig, bool]  # the run's index in the plan, its config, whether to resume


def _run_one(config: RunConfig, resume: bool) -> dict[str, Any]:
    """Start ``config``'s run, or continue it from its checkpoint; return its summary."""
    cls = run_class(config)
    run = cls.resume(config, Path(config.out or ".")) if resume else cls.start(config)
    summary = run_with_recovery(run, progress=False)
    leave_if_orphaned()
    return summary


@contextmanager
def stop_workers_on_signal() -> Iterator[None]:
    """Within the block, SIGINT or SIGTERM to this process stops the pool's work cleanly: every
    worker gets SIGTERM (its run checkpoints and stops, as a run does on its own) and
    :class:`Stopped` is raised, so no further run is submitted; leaving the pool's block then
    waits for the workers. Without it a SIGTERM kills this process alone (its workers then stop
    on their own: :func:`~biocredit.training.bench_state.join_bench`)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        for worker in multiprocessing.active_children():
            worker.terminate()
        name = signal.Signals(signum).name
        raise Stopped(name, f"stopped by {name}")

    with handle_stop_signals(stop):
        yield


def run_locally(
    tasks: list[Task], workers: int, lock_path: Path
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, summary)`` of every task as it finishes, from a pool of ``workers`` fresh
    processes that share the bench's lock.

    A run is handed to the pool only when a worker is free (``pool.map`` would queue one more
    than there are workers, and that run would start after a stop had reached its worker).
    """
    context = multiprocessing.get_context("spawn")
    queued = iter(tasks)
    running: dict[Future[dict[str, Any]], int] = {}
    with (
        ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=join_bench,
            initargs=(str(lock_path), os.getpid()),
        ) as pool,
        stop_workers_on_signal(),
    ):
        while True:
            for index, config, resume in islice(queued, workers - len(running)):
                running[pool.submit(_run_one, config, resume)] = index
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield running.pop(future), future.result()


def run_on_ray(
    tasks: list[Task], workers: int, address: str | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, summary)`` of every task as it finishes, each run a Ray task of one CPU: on the
    cluster at ``address``, or on a local Ray instance of ``workers`` CPUs started here."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--backend ray needs Ray, which is not installed. Install it with: "
            "pip install 'biocredit[ray]' (or use the default --backend local)."
        ) from None

    def results() -> Iterator[tuple[int, dict[str, Any]]]:
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        try:
            task = ray.remote(num_cpus=1)(_run_one)
            pending = {task.remote(config, resume): index for index, config, resume in tasks}
            while pending:
                done, _ = ray.wait(list(pending))
                yield pending.pop(done[0]), ray.get(done[0])
        finally:
            ray.shutdown()

    return results()


def check_options(workers: int, backend: str, ray_address: str | None) -> None:
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}.")
    if backend not in BACKENDS:
        raise unknown_name("bench backend", backend, BACKENDS)
    if ray_address is not None and backend != "ray":
        raise ConfigError("--ray-address is only used with --backend ray; add --backend ray.")


def run_benchmark(
    spec_path: str | Path,
    workers: int = 1,
    out: str | None = None,
    console: Console | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    steps: int | None = None,
    selection: Selection | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """Run the spec's matrix with ``workers`` processes (or Ray tasks); return the path of the
    table. ``steps`` replaces every run's length (e.g. a short version of a long spec);
    ``overrides`` (``key.sub=value``) change every run's settings; ``selection`` runs part of
    the matrix (:class:`Selection`).

    What ``out`` already holds is resumed (see :mod:`~biocredit.training.bench_state`): finished
    runs are kept, interrupted ones continue from their checkpoints. A partial table is
    written whenever a run finishes or the bench is stopped, the full one at the end.
    """
    console = console or Console()
    check_options(workers, backend, ray_address)
    selection = selection or Selection()
    spec, out_dir, plan = plan_matrix(spec_path, out, steps, selection, overrides)
    where = "Ray" if backend == "ray" else "process"
    command = "biocredit bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    with holding_folder(out_dir, console) as lock_path:
        fresh = not (out_dir / "runs").exists()
        states = prepare_runs([config for _, config in plan])
        sessions = Sessions(out_dir, fresh, command, f"{workers} {where} worker(s)")
        outputs = Outputs(spec, plan, out_dir, sessions)
        summaries = {
            index: {**read_summary(config), "label": label}
            for index, ((label, config), state) in enumerate(zip(plan, states, strict=True))
            if state == DONE
        }
        tasks = [
            (index, config, state == RESUME)
            for index, ((_, config), state) in enumerate(zip(plan, states, strict=True))
            if state != DONE and selection.includes(spec, plan[index][0], config.env, config.seed)
        ]
        pending = sum(state != DONE for state in states)
        console.print(
            f"benchmark '{spec.name}': {len(plan)} runs on {workers} {where} worker(s)"
            + (earlier_work(states) if not fresh else "")
            + (
                f"; this selection runs {len(tasks)} of the {pending} left"
                if len(tasks) < pending
                else ""
            )
        )
        if not tasks:
            return outputs.write(summaries, ran=False)
        results = (
            run_on_ray(tasks, workers, ray_address)
            if backend == "ray"
            else run_locally(tasks, workers, lock_path)
        )
        try:
            with closing(results):
                for index, summary in results:
                    summaries[index] = {**summary, "label": plan[index][0]}
                    report(console, summaries[index], len(summaries), len(plan))
                    outputs.write(summaries)
        except Stopped as stop:
            table_path = outputs.write(summaries)
            raise Stopped(
                stop.signal_name,
                f"Benchmark stopped by {stop.signal_name} with {len(summaries)} of {len(plan)} "
                "runs finished: the running ones checkpointed and the rest never started. "
                f"Partial table: {table_path}. Resume with the same command: {command}",
            ) from None
    return out_dir / "table.md"


def earlier_work(states: list[str]) -> str:
    """``: 3 finished earlier (kept), 1 to resume from its checkpoint, 4 to start``."""
    counts = Counter(states)
    return (
        f": {counts[DONE]} finished earlier (kept), {counts[RESUME]} to resume from their "
        f"checkpoints, {counts[START]} to start"
    )


def report(console: Console, summary: dict[str, Any], finished: int, total: int) -> None:
    console.print(
        f"  [{finished}/{total}] {summary['env']} {summary['label']} "
        f"seed {summary['seed']}: return {summary['final_return_mean']:.1f}, "
        f"{summary['wall_time_s']:.1f} s"
    )
