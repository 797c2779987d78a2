"""Where a benchmark matrix stands, read from its results folder without running or changing
anything: ``biocredit bench SPEC --status``, safe while the bench runs.

Per row of the table (env and learner) it gives the seeds finished and their mean final
return, the runs started (env steps logged, and the step of the newest checkpoint a stop would
resume from) and the seeds not started; and an estimate of the run time left, from the wall time
per env step of the row's finished runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from biocredit.checkpoints import checkpoint_step, newest_checkpoint
from biocredit.training.bench_plan import Selection, plan_matrix
from biocredit.training.bench_state import (
    LOCK_FILE,
    check_planned,
    is_done,
    pid_alive,
    read_summary,
)
from biocredit.training.config import RunConfig
from biocredit.training.run_folder import (
    CONFIG_FILE,
    EARLIER_PROGRESS_FILE,
    PROGRESS_FILE,
    logged_at,
    read_rows,
)

DONE, STARTED, PENDING = "done", "started", "pending"


@dataclass(frozen=True)
class RunStatus:
    """One planned run: ``state`` is ``done``, ``started`` (a folder, not finished) or
    ``pending`` (no folder yet)."""

    env: str
    label: str
    seed: int
    steps: int
    state: str
    logged: int = 0
    checkpoint: int | None = None
    final_return: float | None = None
    wall_time_s: float | None = None


def run_status(label: str, config: RunConfig) -> RunStatus:
    """The status of the run ``config`` plans, from its folder."""
    run_dir = Path(config.out or ".")
    where = dict(env=config.env, label=label, seed=config.seed, steps=config.steps)
    if not (run_dir / CONFIG_FILE).is_file():
        return RunStatus(**where, state=PENDING)
    check_planned(config, run_dir)
    if is_done(run_dir):
        summary = read_summary(config)
        return RunStatus(
            **where,
            state=DONE,
            logged=summary["steps"],
            final_return=summary["final_return_mean"],
            wall_time_s=summary["wall_time_s"],
        )
    rows = read_rows(run_dir / EARLIER_PROGRESS_FILE) + read_rows(run_dir / PROGRESS_FILE)
    newest = newest_checkpoint(run_dir)
    return RunStatus(
        **where,
        state=STARTED,
        logged=int(max(map(logged_at, rows), default=0)),
        checkpoint=checkpoint_step(newest) if newest is not None else None,
    )


def bench_running(out_dir: Path) -> int | None:
    """The pid of the live ``biocredit bench`` holding ``out_dir``, if any."""
    lock = out_dir / LOCK_FILE
    text = lock.read_text().strip() if lock.is_file() else ""
    return int(text) if text.isdigit() and pid_alive(int(text)) else None


def seconds_left(row: list[RunStatus]) -> float | None:
    """The row's unfinished env steps times the wall time per step of its finished runs (a
    started run continues from its newest checkpoint); ``None`` if none has finished."""
    finished = [run for run in row if run.state == DONE and run.logged]
    if not finished:
        return None
    per_step = sum(run.wall_time_s or 0.0 for run in finished) / sum(r.logged for r in finished)
    left = sum(run.steps - (run.checkpoint or 0) for run in row if run.state != DONE)
    return per_step * left


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _started(run: RunStatus) -> str:
    resume = f", checkpoint {run.checkpoint:,}" if run.checkpoint else ", no checkpoint yet"
    return f"seed {run.seed}: {run.logged:,}/{run.steps:,}{resume}"


def render_status(name: str, out_dir: Path, runs: list[RunStatus], console: Console) -> None:
    """Print the per-row status table of ``runs`` and a summary line."""
    rows: dict[tuple[str, str], list[RunStatus]] = {}
    for run in runs:
        rows.setdefault((run.env, run.label), []).append(run)
    table = Table(title=f"benchmark '{name}' in {out_dir}")
    for column in ("env", "learner", "done", "mean final return", "started", "not started", "left"):
        table.add_column(column)
    total_left, estimated, unknown = 0.0, 0, 0
    for (env, label), row in rows.items():
        done = [run for run in row if run.state == DONE]
        returns = [run.final_return for run in done if run.final_return is not None]
        left = seconds_left(row) if len(done) < len(row) else 0.0
        total_left += left or 0.0
        estimated += bool(left)
        unknown += left is None
        table.add_row(
            env,
            label,
            f"{len(done)}/{len(row)}",
            f"{sum(returns) / len(returns):.1f}" if returns else "-",
            "; ".join(_started(run) for run in row if run.state == STARTED) or "-",
            " ".join(str(run.seed) for run in row if run.state == PENDING) or "-",
            "-" if left is None else _hours(left) if left else "",
        )
    console.print(table)
    finished = sum(run.state == DONE for run in runs)
    pid = bench_running(out_dir)
    running = (
        f"a bench (pid {pid}) is running on this folder"
        if pid
        else "no bench is running on this folder: the command that made it resumes it"
    )
    console.print(f"{finished} of {len(runs)} runs finished; {running}.")
    if estimated:
        rest = f" (not counting {unknown} row(s) with no finished run yet)" if unknown else ""
        console.print(
            f"About {_hours(total_left)} of run time left{rest}, to divide by the workers "
            "(from the finished runs' wall times, which depend on what else ran)."
        )
    elif unknown:
        console.print("No estimate of the time left: no row with runs left has finished one.")


def bench_status(
    spec_path: str | Path,
    out: str | None = None,
    steps: int | None = None,
    selection: Selection | None = None,
    overrides: list[str] | None = None,
    console: Console | None = None,
) -> list[RunStatus]:
    """Print where the matrix of ``spec_path`` (with the same ``out``, ``steps``, ``selection``
    and ``overrides`` as the bench command) stands, and return its runs' status."""
    selection = selection or Selection()
    spec, out_dir, plan = plan_matrix(spec_path, out, steps, selection, overrides)
    runs = [
        run_status(label, config)
        for label, config in plan
        if selection.includes(spec, label, config.env, config.seed)
    ]
    render_status(spec.name, out_dir, runs, console or Console())
    return runs
