"""Learning curves from run folders (``progress.csv``), drawn with matplotlib."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from biocredit.training.run_folder import PROGRESS_FILE, STEP_COLUMN

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
) -> Figure:
    """One panel per key of ``groups`` (e.g. env), one line per inner key (e.g. learner):
    the mean over its runs with a min-max band, on a common step grid; a learner keeps its colour
    in every panel, and a learner with no runs (a pending row) takes none, so the first learner
    drawn is the first colour. Writes ``path`` and returns the (closed) figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = (label for lines in groups.values() for label, runs in lines.items() if runs)
    labels = list(dict.fromkeys(drawn))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {label: colours[i % len(colours)] for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (panel, lines) in zip(axes[0], groups.items(), strict=True):
        for label, run_dirs in lines.items():
            curves = [read_curve(run_dir, column) for run_dir in run_dirs]
            curves = [(s, r) for s, r in curves if s.size]
            if not curves:
                continue
            grid = np.linspace(0, min(s[-1] for s, _ in curves), grid_points)
            values = np.stack([np.interp(grid, s, r) for s, r in curves])
            ax.plot(grid, values.mean(0), color=colour[label], label=f"{label} (n={len(curves)})")
            ax.fill_between(grid, values.min(0), values.max(0), color=colour[label], alpha=0.2)
        ax.set_title(panel if column == RETURN_COLUMN else f"{panel}: {column}")
        ax.set_xlabel("env steps")
        ax.set_ylabel("training episode return")
        ax.grid(alpha=0.3)
        if ax.lines:  # a panel whose runs have no finished episode yet has nothing to label
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def alignment_columns(run_dir: Path) -> dict[str, list[str]]:
    """``{network: [alignment/<network>/angle<l>, ...]}`` found in a run's ``progress.csv``."""
    with open(Path(run_dir) / PROGRESS_FILE, newline="") as handle:
        header = next(csv.reader(handle), [])
    networks: dict[str, list[str]] = {}
    for column in sorted(header):
        parts = column.split("/")
        if len(parts) == 3 and parts[0] == "alignment" and parts[2].startswith("angle"):
            networks.setdefault(parts[1], []).append(column)
    return networks


def plot_alignment(runs: Mapping[str, Path], path: Path) -> None:
    """One row per run (by label), one panel per network, one line per layer: the angle
    between the learner's update and backprop's gradient over training (90 degrees: none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = {label: alignment_columns(run_dir) for label, run_dir in runs.items()}
    n_cols = max((len(networks) for networks in tables.values()), default=1) or 1
    fig, axes = plt.subplots(
        len(runs), n_cols, figsize=(5 * n_cols, 3.2 * len(runs)), squeeze=False
    )
    for row, (label, run_dir) in enumerate(runs.items()):
        for col, (network, columns) in enumerate(tables[label].items()):
            ax = axes[row][col]
            for column in columns:
                steps, angles = read_curve(run_dir, column)
                ax.plot(steps, angles, label=f"layer {column.rsplit('angle', 1)[1]}")
            ax.axhline(90, color="grey", linestyle="--", linewidth=0.8)
            ax.set_title(f"{label}: {network}", fontsize=9)
            ax.set_xlabel("env steps")
            ax.set_ylabel("angle to backprop (degrees)")
            ax.set_ylim(0, 120)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
