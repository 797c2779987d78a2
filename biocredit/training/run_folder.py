"""A run's folder: where its config, logs, checkpoints and summary live.

<run>/config.yaml        fully resolved config
<run>/progress.csv       SB3 logger rows (rollout/ep_rew_mean, train/..., time/...)
<run>/events.out.tfevents.*   TensorBoard
<run>/checkpoints/       the last few complete checkpoints (:mod:`biocredit.checkpoints`)
<run>/summary.json       env, algo, learner, seed, steps, wall time, final return

This module reads and writes the config, the summary and ``progress.csv``;
:mod:`biocredit.checkpoints` owns ``checkpoints/``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from biocredit.errors import ConfigError, RunDirError
from biocredit.training.config import RunConfig, config_from_dict, read_yaml

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
PROGRESS_FILE = "progress.csv"
EARLIER_PROGRESS_FILE = "progress.earlier.csv"  # rows of earlier sessions, while one runs
STEP_COLUMN = "time/total_timesteps"


def default_run_dir(config: RunConfig, root: Path = Path("runs")) -> Path:
    """``runs/<env>/<algo>-<learner>/seed<seed>`` (``<agent>`` or ``<agent>-<learner>`` for a
    native agent), suffixed ``-2``, ``-3`` ... if taken."""
    if config.agent is not None:
        name = config.agent if config.learner is None else f"{config.agent}-{config.learner}"
    else:
        name = f"{config.algo}-{config.learner}"
    base = root / config.env / name / f"seed{config.seed}"
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def create_run_dir(config: RunConfig) -> Path:
    """Make the run folder (``config.out`` or the default) and write the resolved config."""
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    if (run_dir / CONFIG_FILE).exists():
        raise ConfigError(
            f"'{run_dir}' already holds a run. Choose another --out, or delete that folder."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    config.out = str(run_dir)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return run_dir


def read_run_config(run_dir: Path) -> RunConfig:
    """The resolved config of an existing run."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunDirError(
            f"'{run_dir}' is not a biocredit run folder: it has no {CONFIG_FILE}. "
            "Pass the folder `biocredit train` printed (e.g. runs/CartPole-v1/ppo-dfa/seed0)."
        )
    return config_from_dict(read_yaml(path), source=str(path))


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` whole (a temporary file that then replaces it)."""
    partial = Path(run_dir) / f"{SUMMARY_FILE}.tmp"
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    partial.replace(Path(run_dir) / SUMMARY_FILE)


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Write ``rows`` (columns joined) to a temporary file that then replaces ``path``."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    partial = path.with_name(path.name + ".tmp")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)


def logged_at(row: dict[str, str]) -> float:
    """The env step of a ``progress.csv`` row."""
    return float(row.get(STEP_COLUMN) or 0)


def in_order(rows: list[dict[str, str]], up_to: float = float("inf")) -> list[dict[str, str]]:
    """``rows`` up to env step ``up_to``, each step once (the first row logged at it)."""
    kept: list[dict[str, str]] = []
    for row in rows:
        if logged_at(row) <= up_to and (not kept or logged_at(row) > logged_at(kept[-1])):
            kept.append(row)
    return kept


@contextmanager
def continued_progress(run_dir: Path, up_to: int) -> Iterator[None]:
    """Keep the rows of earlier sessions of this run up to env step ``up_to`` (the checkpoint
    it continues from; rows a killed session logged after it are dropped, as that session's
    steps are done again).

    SB3's logger rewrites progress.csv, so the earlier rows wait in ``progress.earlier.csv``,
    which a SIGKILL leaves in place for the next session, and are put back in front of the new
    rows (columns joined) afterwards.
    """
    path, waiting = Path(run_dir) / PROGRESS_FILE, Path(run_dir) / EARLIER_PROGRESS_FILE
    earlier = in_order(read_rows(waiting) + read_rows(path), up_to)
    if not earlier:
        yield
        return
    write_rows(waiting, earlier)
    try:
        yield
    finally:
        write_rows(path, in_order(earlier + read_rows(path)))
        waiting.unlink()


def update_run_config(run_dir: Path, config: RunConfig) -> None:
    """Rewrite the run's resolved config (e.g. a longer ``steps`` on resume)."""
    (Path(run_dir) / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
