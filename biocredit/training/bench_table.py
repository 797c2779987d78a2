"""A benchmark's outputs: ``<out>/results.json``, ``<out>/table.md`` (ratios to bp, the
commands that made it, each learner's options) and ``<out>/curves.png``; partial, and marked
so, until every planned run has finished.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biocredit.envs.multiagent import is_multiagent
from biocredit.learners.registry import make_learner
from biocredit.training.bench_spec import BASELINE, BenchSpec
from biocredit.training.bench_state import Invocation, Sessions
from biocredit.training.config import RunConfig
from biocredit.training.plots import plot_curves, steps_to_threshold
from biocredit.training.run import EVAL_SEED_OFFSET
from biocredit.training.run_folder import read_run_config
from biocredit.training.team_eval import evaluate_team, team_report


@dataclass
class Outputs:
    """A benchmark's results folder: ``results.json``, ``table.md`` and the curves, from the
    runs finished so far; the table is marked partial until every planned run has finished."""

    spec: BenchSpec
    plan: list[tuple[str, RunConfig]]
    out_dir: Path
    sessions: Sessions

    def write(self, summaries: dict[int, dict[str, Any]], ran: bool = True) -> Path:
        """Write the outputs of ``summaries`` (by plan index); ``ran``: whether this session
        ran anything (else its time is not counted)."""
        finished = [summaries[index] for index in sorted(summaries)]
        invocations = self.sessions.record(ran)
        planned = Counter((config.env, label) for label, config in self.plan)
        (self.out_dir / "results.json").write_text(json.dumps(finished, indent=2) + "\n")
        randoms = random_team_returns(self.spec, finished)
        table = render_table(self.spec, finished, invocations, randoms, planned)
        (self.out_dir / "table.md").write_text(table)
        if finished:
            self.plot(finished)
        return self.out_dir / "table.md"

    def plot(self, summaries: list[dict[str, Any]]) -> None:
        groups = curve_panels(self.spec, summaries)
        plot_curves(groups, self.out_dir / "curves.png")
        team_groups: dict[str, set[str]] = {}  # group -> the envs whose teams have it
        for summary in summaries:
            for group in summary.get("final_group_returns") or {}:
                team_groups.setdefault(group, set()).add(summary["env"])
        for group, envs in sorted(team_groups.items()) if len(team_groups) > 1 else []:
            plot_curves(
                {env: lines for env, lines in groups.items() if env in envs},
                self.out_dir / f"curves_{group}.png",
                column=f"groups/{group}",
            )


def curve_panels(
    spec: BenchSpec, summaries: list[dict[str, Any]]
) -> dict[str, dict[str, list[Path]]]:
    """``{env: {learner row: [run folders]}}`` of the finished runs, one panel per env that has
    one: a partial matrix's figure leaves out the envs it has not reached."""
    panels = {
        env: {
            label: [Path(s["run_dir"]) for s in summaries if (s["env"], s["label"]) == (env, label)]
            for label in spec.labels(env)
        }
        for env in spec.envs
    }
    return {env: rows for env, rows in panels.items() if any(rows.values())}


def random_team_returns(spec: BenchSpec, summaries: list[dict[str, Any]]) -> dict[str, float]:
    """For each PettingZoo env: the mean team return of uniformly random agents, evaluated like
    the runs (same eval seeds and episode count), averaged over the spec's seeds."""
    randoms = {}
    baselines = {spec.label(algo, BASELINE) for algo in spec.algos}
    for env in spec.envs:
        runs = {  # one bp run per seed: its config fixes the eval seeds and episodes
            s["seed"]: s for s in summaries if s["env"] == env and s["label"] in baselines
        }
        if not is_multiagent(env) or not runs:
            continue
        values = []
        for summary in runs.values():
            config = read_run_config(Path(summary["run_dir"]))
            seed = config.seed + EVAL_SEED_OFFSET
            values.append(
                team_report(evaluate_team(config, None, seed, config.eval_episodes), {})[
                    "return_mean"
                ]
            )
        randoms[env] = float(np.mean(values))
    return randoms


def subsets(spec: BenchSpec) -> str:
    """`` (bptt: [0, 1])`` for the variants that ran on part of the seeds only."""
    parts = [
        f"{label}: {variant.seeds}"
        for label, variant in spec.variants.items()
        if label in spec.learner_labels and variant.seeds not in (None, spec.seeds)
    ]
    return f" ({'; '.join(parts)})" if parts else ""


def render_table(
    spec: BenchSpec,
    summaries: list[dict[str, Any]],
    invocations: list[Invocation],
    randoms: dict[str, float],
    planned: Counter[tuple[str, str]],
) -> str:
    """Markdown table: per env and learner, final return, solved seeds, steps to threshold,
    wall time, and ratios to the bp baseline of the same invocation; for multi-agent envs also
    the gap closed to bp from a random team, ``(learner - random) / (bp - random)``.

    ``planned``: the number of runs planned per ``(env, label)``. While fewer have finished
    the table is marked partial, and so is every row short of seeds."""
    lines = [
        f"# Benchmark `{spec.name}`: {spec.agent or ', '.join(a.upper() for a in spec.algos)} x "
        f"{{{', '.join(spec.learner_labels)}}}",
        "",
        *partial_note(len(summaries), sum(planned.values())),
        *commands_note(invocations),
        f"Seeds {spec.seeds}{subsets(spec)}; each learner ran in the same matrix (spec, seeds, "
        "steps) as the bp baseline.",
        "Final return: deterministic policy, mean over the run's evaluation episodes, then mean "
        "+/- std over seeds. Steps to threshold: first log row whose training return (SB3's "
        "100-episode mean) reaches it; median over the seeds that reached it. "
        "Ratios: learner / bp of the same algorithm (return ratios only where bp's mean return "
        "is positive). Steps: the env steps each run trained for.",
        "",
        "| env | learner | steps | final return | seeds >= threshold | steps to threshold "
        "| wall time (s) | steps/s | return / bp | wall time / bp | gap closed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for env, options in spec.envs.items():
        runs = {
            label: [s for s in summaries if s["env"] == env and s["label"] == label]
            for label in spec.labels(env)
        }
        for label, own in runs.items():
            base = runs[spec.baseline(label)]
            name = label + seeds_short(len(own), planned[env, label])
            lines.append(table_row(env, name, own, base, options.threshold, randoms))
    per_seed = [
        f"\nRandom team on {env}: {value:.1f} (same eval seeds and episodes)."
        for env, value in randoms.items()
    ]
    per_seed += ["", "Per seed (final return):", ""]
    for env in spec.envs:
        for label in spec.labels(env):
            values = [
                f"{s['final_return_mean']:.0f}"
                for s in summaries
                if s["env"] == env and s["label"] == label
            ]
            per_seed.append(f"- {env} {label}: {', '.join(values) or 'pending'}")
    return "\n".join(lines + per_seed + learner_notes(spec, summaries)) + "\n"


def commands_note(invocations: list[Invocation]) -> list[str]:
    """The commands that made a table, each with its workers and minutes; sessions of one
    command (resumed with the same command line) are added up."""
    groups: dict[tuple[str | None, str | None], list[float]] = {}
    for invocation in invocations:
        groups.setdefault((invocation.command, invocation.workers), []).append(invocation.elapsed_s)
    total = sum(invocation.elapsed_s for invocation in invocations) / 60

    def said(command: str | None, workers: str | None, times: list[float]) -> str:
        sessions = f" over {len(times)} sessions" if len(times) > 1 else ""
        where = f"{workers}, " if workers else ""
        unrecorded = (
            "invocations whose commands were not recorded"
            if len(times) > 1
            else "an invocation whose command was not recorded"
        )
        what = f"`{command}`" if command else unrecorded
        return f"{what} ({where}{sum(times) / 60:.1f} min{sessions})"

    if len(groups) == 1:
        (command, workers), times = next(iter(groups.items()))
        return [f"Command: {said(command, workers, times)}."]
    lines = [f"Commands ({total:.1f} min in all), in the order they first ran:", ""]
    lines += [f"- {said(command, workers, times)}" for (command, workers), times in groups.items()]
    return [*lines, ""]


def learner_notes(spec: BenchSpec, summaries: list[dict[str, Any]]) -> list[str]:
    """Per row, the learner and options of every network its runs trained (from their
    ``summary.json``), networks sharing a configuration listed together."""
    notes = []
    for label in spec.labels():
        networks = next((s.get("networks") for s in summaries if s["label"] == label), None)
        if not networks:  # no run finished yet, or one written before summaries recorded them
            continue
        groups: dict[str, list[str]] = {}
        for name, net in networks.items():
            text = make_learner(net["learner"], **net["options"]).describe()
            groups.setdefault(text, []).append(name)
        parts = [
            text if len(groups) == 1 else f"{text} for {', '.join(names)}"
            for text, names in groups.items()
        ]
        notes.append(f"- {label}: {'; '.join(parts)}")
    header = ["", "Learners and their options (every network; from the runs' summary.json):", ""]
    return header + notes if notes else []


def partial_note(finished: int, planned: int) -> list[str]:
    """The lines that mark a partial table; none once every planned run has finished."""
    if finished >= planned:
        return []
    return [
        f"**Partial table: {finished} of {planned} runs finished.** A learner marked "
        "(k/n seeds) has fewer seeds than planned and its ratios compare the runs finished so "
        "far; the same command resumes the benchmark and replaces this table when all have.",
        "",
    ]


def seeds_short(finished: int, planned: int) -> str:
    return f" ({finished}/{planned} seeds)" if finished < planned else ""


def table_row(
    env: str,
    name: str,
    runs: list[dict[str, Any]],
    base: list[dict[str, Any]],
    threshold: float | None,
    randoms: dict[str, float],
) -> str:
    """One row of the table: ``runs`` of one learner, compared with the bp runs ``base``."""
    if not runs:
        return f"| {env} | {name} | - | pending |" + " - |" * 7
    finals = np.array([s["final_return_mean"] for s in runs])
    walls = np.array([s["wall_time_s"] for s in runs])
    base_return = np.mean([s["final_return_mean"] for s in base]) if base else np.nan
    base_wall = np.mean([s["wall_time_s"] for s in base]) if base else np.nan
    solved, to_threshold = "-", "-"
    if threshold is not None:
        solved = f"{int((finals >= threshold).sum())}/{len(runs)}"
        hits = [steps_to_threshold(Path(s["run_dir"]), threshold) for s in runs]
        hits = [h for h in hits if h is not None]
        to_threshold = (
            f"{np.median(hits):,.0f} ({len(hits)}/{len(runs)})"
            if hits
            else f"not reached (0/{len(runs)})"
        )
    ratio = f"{finals.mean() / base_return:.2f}" if base_return > 0 else "n/a"
    wall_ratio = f"{walls.mean() / base_wall:.2f}" if base else "n/a"
    gap = "-"
    if env in randoms and base and base_return != randoms[env]:
        gap = f"{(finals.mean() - randoms[env]) / (base_return - randoms[env]):.2f}"
    run_steps = sorted({s["steps"] for s in runs})
    return (
        f"| {env} | {name} | {', '.join(f'{n:,}' for n in run_steps)} "
        f"| {finals.mean():.1f} +/- {finals.std():.1f} | {solved} "
        f"| {to_threshold} | {walls.mean():.1f} "
        f"| {np.mean([s['steps_per_s'] for s in runs]):.0f} | {ratio} "
        f"| {wall_ratio} | {gap} |"
    )
