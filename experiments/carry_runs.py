"""Stage what a later session needs of benchmarks' run folders (``git add -f``), so that a long
matrix survives a machine restart in git without its bulk: per run, ``config.yaml``,
``summary.json``, ``progress.csv`` and the newest complete checkpoint (enough to resume a run in
flight, keep a finished one and evaluate it); per benchmark, its table, results and curves.
TensorBoard events and older checkpoints stay behind.

Stop the bench first (files change under ``git add`` while it runs)::

    python experiments/carry_runs.py experiments/results/learners experiments/results/perception
    git commit -m "learners, perception: in-flight runs and partial tables"
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from biocredit.checkpoints import newest_checkpoint

RUN_FILES = ("config.yaml", "summary.json", "progress.csv")
BENCH_FILES = ("table.md", "results.json", "sessions.json", "curves.png")


def carried(bench: Path) -> list[Path]:
    """The paths of ``bench`` (a results folder) that a later session needs."""
    paths = [bench / name for name in BENCH_FILES if (bench / name).is_file()]
    for run in sorted(bench.glob("runs/*/*/seed*")):
        paths += [run / name for name in RUN_FILES if (run / name).is_file()]
        newest = newest_checkpoint(run)
        if newest is not None:
            paths.append(newest)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benches", nargs="+", type=Path, help="results folders")
    paths = [path for bench in parser.parse_args().benches for path in carried(bench)]
    subprocess.run(["git", "add", "-f", "--", *map(str, paths)], check=True)
    print(f"staged {len(paths)} paths")


if __name__ == "__main__":
    main()
