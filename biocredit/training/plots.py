"""Learning curves from run folders (``progress.csv``), drawn with matplotlib."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from biocredit.training.run_dir import PROGRESS_FILE, STEP_COLUMN

RETURN_COLUMN = "rollout/ep_rew_mean"


def read_curve(run_dir: Path, column: str = RETURN_COLUMN) -> tuple[np.ndarray, np.ndarray]:
    """Env steps and the mean training-episode return (SB3's last-100 window) at each log row;
    ``column`` picks another return, e.g. ``groups/predators`` of a multi-agent run."""
    steps, returns = [], []
    with open(Path(run_dir) / PROGRESS_FILE, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get(column):
                steps.append(float(row[STEP_COLUMN]))
                returns.append(float(row[column]))
    return np.asarray(steps), np.asarray(returns)


def steps_to_threshold(run_dir: Path, threshold: float) -> float | None:
    """First logged env step at which the training return reaches ``threshold``."""
    steps, returns = read_curve(run_dir)
    hits = np.nonzero(returns >= threshold)[0]
    return float(steps[hits[0]]) if hits.size else None


def plot_curves(
    groups: Mapping[str, Mapping[str, Sequence[Path]]],
    path: Path,
    grid_points: int = 200,
    column: str = RETURN_COLUMN,
) -> None:
    """One panel per key of ``groups`` (e.g. env), one line per inner key (e.g. learner):
    the mean over its runs with a min-max band, on a common step grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (panel, lines) in zip(axes[0], groups.items(), strict=True):
        for label, run_dirs in lines.items():
            curves = [read_curve(run_dir, column) for run_dir in run_dirs]
            curves = [(s, r) for s, r in curves if s.size]
            if not curves:
                continue
            grid = np.linspace(0, min(s[-1] for s, _ in curves), grid_points)
            values = np.stack([np.interp(grid, s, r) for s, r in curves])
            ax.plot(grid, values.mean(0), label=f"{label} (n={len(curves)})")
            ax.fill_between(grid, values.min(0), values.max(0), alpha=0.2)
        ax.set_title(panel if column == RETURN_COLUMN else f"{panel}: {column}")
        ax.set_xlabel("env steps")
        ax.set_ylabel("training episode return")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
