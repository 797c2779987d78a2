"""Stage what a later session needs of benchmarks' run folders (``git add -f``), so that a long
matrix survives a machine restart in git without its bulk: per run, ``config.yaml``,
``summary.json`` and ``progress.csv`` (enough for the next bench to keep a finished run), and
for a run in flight its newest complete checkpoint (to resume it); per benchmark, its table,
results and curves; tracked files that are gone (a checkpoint a resumed run replaced) are staged
as removed. TensorBoard events, older checkpoints and the checkpoints of finished runs
stay behind (an off-policy one holds its replay buffer: 3 MB for DQN on CartPole-v1 at 50k
steps); ``--with-finished-checkpoints`` carries those too, for evaluating or rendering the
policies on the next machine. A checkpoint larger than ``--max-checkpoint-mb`` (10 MB: a SAC
checkpoint on HalfCheetah at 100k steps holds about 20 MB of replay buffer) stays behind and is
named, since every commit keeps it in the history for good; stop such runs between runs instead.

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
MAX_CHECKPOINT_MB = 10.0
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


def size_mb(path: Path) -> float:
    """The size of a file, or of every file under a folder, in MiB."""
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(file.stat().st_size for file in files if file.is_file()) / 2**20


def too_large(paths: list[Path], max_checkpoint_mb: float) -> dict[Path, float]:
    """The checkpoints among ``paths`` larger than ``max_checkpoint_mb``, with their sizes."""
    sizes = {p: size_mb(p) for p in paths if p.parent.name == "checkpoints"}
    return {p: size for p, size in sizes.items() if size > max_checkpoint_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benches", nargs="+", type=Path, help="results folders")
    parser.add_argument(
        "--with-finished-checkpoints",
        action="store_true",
        help="also the newest checkpoint of every finished run",
    )
    parser.add_argument(
        "--max-checkpoint-mb",
        type=float,
        default=MAX_CHECKPOINT_MB,
        help="leave behind (and name) checkpoints larger than this (default: %(default)s)",
    )
    args = parser.parse_args()
    paths = [p for bench in args.benches for p in carried(bench, args.with_finished_checkpoints)]
    for large, size in too_large(paths, args.max_checkpoint_mb).items():
        paths.remove(large)
        print(
            f"left behind {large} ({size:.0f} MB > --max-checkpoint-mb "
            f"{args.max_checkpoint_mb:g}): on another machine its run resumes from an older "
            "carried checkpoint if one is tracked, else starts again"
        )
    subprocess.run(["git", "add", "-f", "--", *map(str, paths)], check=True)
    # tracked files a run has since removed (a checkpoint it replaced, an older layout's folder)
    subprocess.run(["git", "add", "--update", "--", *map(str, args.benches)], check=True)
    print(f"staged {len(paths)} paths, and the removal of tracked files no longer there")


if __name__ == "__main__":
    main()
