"""Stage what a later session needs of benchmarks' run folders (``git add -f``), so that a long
matrix survives a machine restart in git without its bulk: per run, ``config.yaml``,
``summary.json`` and ``progress.csv`` (enough for the next bench to keep a finished run), and
for a run in flight its newest complete checkpoint (to resume it); per benchmark, its table,
results and curves; tracked files that are gone (a checkpoint a resumed run replaced) are staged
as removed. TensorBoard events, older checkpoints and the checkpoints of finished runs
stay behind (an off-policy one holds its replay buffer: 3 MB for DQN on CartPole-v1 at 50k
steps); ``--with-finished-checkpoints`` carries those too, for evaluating or rendering the
policies on the next machine.

Stop the bench first (files change under ``git add`` while it runs)::

    python experiments/carry_runs.py experiments/results/learners experiments/results/perception
    git commit -m "learners, perception: in-flight runs and partial tables"
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from biocredit.checkpoints import newest_checkpoint
from biocredit.training.bench_plan import run_folders
from biocredit.training.bench_state import is_done

RUN_FILES = ("config.yaml", "summary.json", "progress.csv")
BENCH_FILES = ("table.md", "results.json", "sessions.json", "curves.png")


def carried(bench: Path, finished_checkpoints: bool = False) -> list[Path]:
    """The paths of ``bench`` (a results folder) that a later session needs."""
    paths = [bench / name for name in BENCH_FILES if (bench / name).is_file()]
    for run in run_folders(bench):
        paths += [run / name for name in RUN_FILES if (run / name).is_file()]
        if finished_checkpoints or not is_done(run):
            newest = newest_checkpoint(run)
            paths += [newest] if newest is not None else []
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benches", nargs="+", type=Path, help="results folders")
    parser.add_argument(
        "--with-finished-checkpoints",
        action="store_true",
        help="also the newest checkpoint of every finished run",
    )
    args = parser.parse_args()
    paths = [p for bench in args.benches for p in carried(bench, args.with_finished_checkpoints)]
    subprocess.run(["git", "add", "-f", "--", *map(str, paths)], check=True)
    # tracked files a run has since removed (a checkpoint it replaced, an older layout's folder)
    subprocess.run(["git", "add", "--update", "--", *map(str, args.benches)], check=True)
    print(f"staged {len(paths)} paths, and the removal of tracked files no longer there")


if __name__ == "__main__":
    main()
