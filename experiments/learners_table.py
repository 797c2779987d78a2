"""The learners table: one row per learner of ``experiments/benchmarks/learners.yaml``, one
column per task (final return, seeds at threshold, wall time over bp's), the mean cosine of its
updates to backprop's gradient, and its plausibility flags; from the benchmark's results.

    python experiments/learners_table.py [--spec experiments/benchmarks/learners.yaml]

writes ``docs/learners.md`` and replaces the table between the ``learners-table`` markers of the
README, so a learner added to the spec (and run) adds a row. Cells of runs not finished yet read
"pending"; a cell with fewer seeds than planned says how many are still to run.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from biocredit.learners import make_learner
from biocredit.learners.plausibility import Plausibility
from biocredit.training.bench_plan import plan_runs
from biocredit.training.bench_spec import BASELINE, BenchSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- learners-table:start -->", "<!-- learners-table:end -->"


def mean_alignment(run_dir: Path) -> float | None:
    """Mean over a run's alignment readings (every network and layer) of the cosine to bp."""
    with open(run_dir / "progress.csv", newline="") as handle:
        values = [
            float(value)
            for row in csv.DictReader(handle)
            for key, value in row.items()
            if key.startswith("alignment/") and "/layer" in key and value not in ("", None)
        ]
    return float(np.mean(values)) if values else None


def flags(spec: BenchSpec, label: str) -> str:
    """The plausibility criteria the row's configuration addresses (short names)."""
    variant = spec.variants.get(label)
    options = variant.set.get("learner_kwargs", {}) if variant else {}
    learner = (variant.learner if variant else None) or label
    plausibility = make_learner(learner, **options).plausibility
    addressed = plausibility.as_dict()
    return " ".join(short for key, short in Plausibility.short_names().items() if addressed[key])


def task_cell(runs: list[dict], base: list[dict], threshold: float | None, planned: int) -> str:
    """``final mean (seeds >= threshold), wall time / bp``, or ``pending``."""
    if not runs:
        return "pending"
    finals = np.array([run["final_return_mean"] for run in runs])
    solved = f"{int((finals >= threshold).sum())}/{len(runs)}" if threshold is not None else "-"
    short = f", {planned - len(runs)} seeds pending" if len(runs) < planned else ""
    wall = "-"
    if base:
        ratio = np.mean([r["wall_time_s"] for r in runs]) / np.mean(
            [r["wall_time_s"] for r in base]
        )
        wall = f"{ratio:.2f}x"
    return f"{finals.mean():.1f} ({solved}{short}), {wall}"


def render(spec: BenchSpec, summaries: list[dict], command: str) -> str:
    tasks = [(algo, env) for env in spec.envs for algo in spec.env_algos(env)]
    header = [f"{algo.upper()} {env}" for algo, env in tasks]
    lines = [
        "| learner | " + " | ".join(header) + " | cosine to bp | addresses |",
        "|---|" + "---|" * (len(tasks) + 2),
    ]
    for label in spec.learner_labels:
        cells, cosines = [], []
        for algo, env in tasks:
            if label not in spec.learners_of(algo):
                cells.append("")
                continue
            row = spec.label(algo, label)
            variant = spec.variants.get(label)
            planned = len((variant.seeds if variant else None) or spec.seeds)
            runs = [s for s in summaries if s["env"] == env and s["label"] == row]
            base = [s for s in summaries if s["env"] == env and s["label"] == spec.baseline(row)]
            cells.append(task_cell(runs, base, spec.envs[env].threshold, planned))
            cosines += [c for c in (mean_alignment(Path(s["run_dir"])) for s in runs) if c]
        cosine = f"{np.mean(cosines):.2f}" if cosines else "pending"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {cosine} | {flags(spec, label)} |")
    seeds = ", ".join(map(str, spec.seeds))
    legend = (
        f"Each task cell: final return (deterministic policy, mean over seeds {seeds}), the "
        "seeds at or above the task's threshold, and wall time over bp's in the same "
        f"invocation. Cosine to bp: mean over every network, layer and reading (`alignment_every`"
        f") of the cosine between the learner's update and backprop's gradient of the same "
        f"loss. Flags: `biocredit learners` (docs/plausibility.md). Made by `{command}`."
    )
    return "\n".join([*lines, "", legend]) + "\n"


def replace_block(path: Path, table: str) -> bool:
    """Put ``table`` between the markers of ``path``; false when it has none."""
    text = path.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{table}{END}{tail}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "experiments/benchmarks/learners.yaml"))
    args = parser.parse_args()
    spec = load_spec(args.spec)
    results = ROOT / "experiments" / "results" / spec.name / "results.json"
    summaries = json.loads(results.read_text()) if results.is_file() else []
    bench = f"biocredit bench {Path(args.spec).relative_to(ROOT)}"
    table = render(spec, summaries, "python experiments/learners_table.py")
    finished, planned = len(summaries), len(plan_runs(spec, results.parent))
    doc = (
        "# Learners on the same tasks\n\n"
        f"Every learner a loss reaches, with {BASELINE} in the same invocation: `{bench}` "
        f"({finished} runs finished of {planned} planned; results in "
        f"`experiments/results/{spec.name}/`).\n\n{table}"
    )
    (ROOT / "docs" / "learners.md").write_text(doc)
    in_readme = replace_block(ROOT / "README.md", table)
    print(f"wrote docs/learners.md{' and the README table' if in_readme else ''}")


if __name__ == "__main__":
    main()
