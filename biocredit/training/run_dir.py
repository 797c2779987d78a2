"""Run folders: where a run's config, logs, checkpoint and summary live.

<run>/config.yaml        fully resolved config
<run>/progress.csv       SB3 logger rows (rollout/ep_rew_mean, train/..., time/...)
<run>/events.out.tfevents.*   TensorBoard
<run>/checkpoint/        model.safetensors + checkpoint.json
<run>/summary.json       env, algo, learner, seed, steps, wall time, final return
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
CHECKPOINT_DIR = "checkpoint"


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
    (Path(run_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")


@contextmanager
def continued_progress(run_dir: Path) -> Iterator[None]:
    """Keep the rows of an earlier session of this run: SB3's logger rewrites progress.csv, so
    the earlier rows are put back in front of the new ones (columns joined) afterwards."""
    path = Path(run_dir) / PROGRESS_FILE
    earlier: list[dict[str, str]] = []
    if path.is_file():
        with open(path, newline="") as handle:
            earlier = list(csv.DictReader(handle))
    try:
        yield
    finally:
        if earlier and path.is_file():
            with open(path, newline="") as handle:
                rows = earlier + list(csv.DictReader(handle))
            columns = list(dict.fromkeys(key for row in rows for key in row))
            with open(path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)


def update_run_config(run_dir: Path, config: RunConfig) -> None:
    """Rewrite the run's resolved config (e.g. a longer ``steps`` on resume)."""
    (Path(run_dir) / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
