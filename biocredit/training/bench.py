"""Benchmark matrices: algo x learner x env x seeds, always with the bp baseline alongside.

A spec (``experiments/benchmarks/*.yaml``)::

    name: core
    algo: ppo                      # or a list, e.g. [ppo, sac]: each with its own bp baseline
    learners: [bp, fa, dfa]       # bp is added if missing; or per algorithm, e.g.
                                   # {ppo: [bp, fa, dfa], dqn: [bp, local]}
    variants:                      # optional: labels in `learners` that are a learner + options
      dfa-small: {learner: dfa, set: {learner_kwargs: {scale: 0.5}}}
      lstm: {algo: recurrent-ppo, agent: null, learner: bp}   # a variant may change algo/agent
      slow: {learner: fa, seeds: [0, 1]}   # ... and run on a subset of the seeds only
    seeds: [0, 1, 2, 3, 4]
    envs:
      CartPole-v1: {threshold: 475}
      InvertedPendulum-v5: {threshold: 950, steps: 100000, set: {normalize: false}}
      Hopper-v5: {steps: {ppo: 50000, sac: 20000}}   # steps per algo
      Pendulum-v1: {algos: [sac]}  # only some of the spec's algorithms on this env
    set: {}                        # RunConfig keys applied to every run

In ``set`` (top level or per env) a key named after an algorithm holds keys for that
algorithm's runs only (``set: {sac: {algo_kwargs: {learning_starts: 1000}}}``). Runs are
interleaved seed by seed so every learner meets the same machine load. They execute in a local
process pool (``workers`` processes) or, with ``backend="ray"``, as Ray tasks on a local Ray
instance or the cluster at ``ray_address`` (``pip install 'biocredit[ray]'``; every node needs
biocredit and must write to a folder the driver reads). Either way the results land in
``<out>/table.md`` (ratios to bp), ``<out>/curves.png`` and ``<out>/results.json``.

``--seeds`` runs the spec on other seeds (more seeds, or a first seed before the rest);
``--learners``, ``--envs`` and ``--algos`` run part of its rows now (bp always among them) and
leave a partial table that a later invocation completes (:class:`Selection`). ``--steps N`` and
``--set key=value`` change every run of the matrix (a short version, or a variant of the
settings; ``--set sac.algo_kwargs.learning_starts=1000`` for one algorithm's runs); their
results go to a folder of their own, named after the spec and the changes
(:func:`default_out`), unless ``--out`` says where.

The same command resumes a stopped bench (Ctrl-C, SIGTERM, SIGKILL, a machine stop): finished
runs are kept, the others continue from their checkpoints (:mod:`.bench_state`). Until every
run has finished, the table is a partial one, rewritten as runs finish and marked so.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shlex
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from rich.console import Console

from biocredit.envs.multiagent import is_multiagent
from biocredit.errors import ConfigError, unknown_name
from biocredit.learners.registry import make_learner
from biocredit.mappings import merge
from biocredit.schema import Config, at_least, build, choice, option
from biocredit.training.bench_state import (
    DONE,
    RESUME,
    START,
    Invocation,
    Sessions,
    holding_folder,
    join_bench,
    leave_if_orphaned,
    prepare_runs,
    read_summary,
)
from biocredit.training.config import ALGOS, RunConfig, apply_override, parse_override, read_yaml
from biocredit.training.interrupt import Stopped, handle_stop_signals
from biocredit.training.plots import plot_curves, steps_to_threshold
from biocredit.training.resolve import resolve_config
from biocredit.training.run import EVAL_SEED_OFFSET, run_with_recovery
from biocredit.training.run_folder import read_run_config
from biocredit.training.run_kinds import run_class
from biocredit.training.team_eval import evaluate_team, team_report

BASELINE = "bp"
BACKENDS = ("local", "ray")
#: run settings the matrix itself chooses, with the bench option that changes each
MATRIX_KEYS = {
    "algo": "the spec's algo",
    "agent": "the spec's agent",
    "env": "--envs",
    "learner": "--learners",
    "seed": "--seeds",
    "steps": "--steps",
    "out": "--out",
}
#: a variant's ``agent`` when it names none: its runs take the spec's ``agent``
SPEC_AGENT = "<the spec's agent>"


@dataclass
class BenchEnv(Config):
    """One env of a spec: its threshold, run length, settings and algorithms."""

    threshold: float | None = option(None, help="return counted as solved")
    steps: int | dict[str, int] | None = at_least(
        1, None, help="steps per run, or per algorithm ({ppo: 50000, sac: 20000})"
    )
    set: dict[str, Any] = option({}, help="RunConfig keys for this env's runs")
    algos: list[str] | None = choice(
        None, ALGOS, kind="algo", nonempty=True, help="only these of the spec's algorithms"
    )


@dataclass
class Variant(Config):
    """A learner label that is a learner plus options (and possibly another algo or agent)."""

    learner: str | None = option(None, help="the learner (default: the label itself)")
    algo: str | None = choice(None, ALGOS, kind="algo", help="another algorithm")
    agent: str | None = option(
        SPEC_AGENT, help="another native agent, or null for an SB3 algorithm (default: the spec's)"
    )
    set: dict[str, Any] = option({}, help="RunConfig keys for this variant's runs")
    seeds: list[int] | None = at_least(
        0,
        None,
        nonempty=True,
        help="run on these of the spec's seeds only",
        hint="Give a non-empty list taken from the spec's seeds.",
    )

    def agent_of(self, spec: BenchSpec) -> str | None:
        return spec.agent if self.agent == SPEC_AGENT else self.agent


@dataclass
class BenchSpec(Config):
    """A validated benchmark spec (see the module docstring)."""

    name: str = option(help="the results folder's name")
    algo: str | list[str] = choice("ppo", ALGOS, kind="algo", nonempty=True, help="algorithms")
    agent: str | None = option(None, help="a native agent instead of an SB3 algorithm")
    learners: list[str] | dict[str, list[str]] = option(
        [BASELINE, "fa", "dfa"],
        nonempty=True,
        help="learner labels (bp added if missing), or per algorithm",
    )
    variants: dict[str, Variant] = option({}, help="labels that are a learner plus options")
    seeds: list[int] = at_least(0, [0, 1, 2, 3, 4], nonempty=True, help="seeds of every row")
    envs: dict[str, BenchEnv] = option(
        {},
        nonempty=True,
        help="envs and their options",
        hint="A benchmark spec needs at least one entry under 'envs', e.g. "
        "envs: {CartPole-v1: {threshold: 475}}.",
    )
    set: dict[str, Any] = option({}, help="RunConfig keys applied to every run")
    out: str | None = option(None, help="results folder (default: experiments/results/<name>)")

    def check(self) -> None:
        self.check_env_algos()
        self.check_learners_per_algo()
        self.check_variant_seeds()

    def check_env_algos(self) -> None:
        for env in self.envs:
            algos = self.env_algos(env)
            if set(algos) - set(self.algos):
                raise ConfigError(
                    f"envs.{env}.algos is {algos!r}; it must be a non-empty list taken from the "
                    f"spec's algorithms {self.algos}."
                )

    def check_learners_per_algo(self) -> None:
        """Per-algorithm learners name each algorithm once; bp is added to every list."""
        if isinstance(self.learners, dict):
            if set(self.learners) != set(self.algos):
                raise ConfigError(
                    f"Per-algorithm learners must name each of the spec's algorithms "
                    f"{self.algos} once, got {sorted(self.learners)}."
                )
            for labels in self.learners.values():
                if BASELINE not in labels:
                    labels.insert(0, BASELINE)
        elif BASELINE not in self.learners:
            self.learners.insert(0, BASELINE)

    def check_variant_seeds(self) -> None:
        for label, variant in self.variants.items():
            seeds = variant.seeds or self.seeds
            if set(seeds) - set(self.seeds):
                raise ConfigError(
                    f"Variant '{label}' has seeds {seeds!r}; they must be a non-empty list taken "
                    f"from the spec's seeds {self.seeds}."
                )

    def variant(self, label: str) -> Variant:
        """The variant called ``label``, or the plain learner ``label``."""
        return self.variants.get(label) or Variant()

    @property
    def algos(self) -> list[str]:
        return [self.algo] if isinstance(self.algo, str) else list(self.algo)

    def label(self, algo: str, learner_label: str) -> str:
        """A row's name: the learner label, prefixed ``<algo>+`` when the spec has several."""
        return learner_label if len(self.algos) == 1 else f"{algo}+{learner_label}"

    def learners_of(self, algo: str) -> list[str]:
        """The learner labels run with ``algo`` (bp first)."""
        return self.learners[algo] if isinstance(self.learners, dict) else self.learners

    @property
    def learner_labels(self) -> list[str]:
        """Every learner label of the spec, each once, in the order first given."""
        return list(dict.fromkeys(label for algo in self.algos for label in self.learners_of(algo)))

    def env_algos(self, env: str) -> list[str]:
        """The algorithms run on ``env``: its own ``algos``, else all of the spec's."""
        return self.envs[env].algos or self.algos

    def labels(self, env: str | None = None) -> list[str]:
        """The rows of the table (of one env's part of it)."""
        algos = self.algos if env is None else self.env_algos(env)
        return [self.label(algo, label) for algo in algos for label in self.learners_of(algo)]

    def baseline(self, label: str) -> str:
        """The bp row ``label`` is compared with: bp of the same algorithm."""
        algo = label.split("+", 1)[0] if len(self.algos) > 1 else self.algos[0]
        return self.label(algo, BASELINE)


@dataclass(frozen=True)
class Selection:
    """Which part of a spec's matrix one invocation runs (``None``: all of it).

    ``seeds``, ``learners``, ``envs`` and ``algos`` name the runs of the matrix this invocation
    executes, bp always among them. Seeds outside the spec's add to the matrix: the table covers
    the spec's seeds, the ones asked for and every seed already in the results folder, and stays
    partial until each of them has run every row (a variant with its own seeds keeps them).
    """

    seeds: list[int] | None = None
    learners: list[str] | None = None
    envs: list[str] | None = None
    algos: list[str] | None = None

    def check(self, spec: BenchSpec) -> None:
        for flag, chosen, known in (
            ("--learners", self.learners, spec.learner_labels),
            ("--envs", self.envs, list(spec.envs)),
            ("--algos", self.algos, spec.algos),
        ):
            for name in chosen or ():
                if name not in known:
                    raise ConfigError(
                        f"{flag} names '{name}', which is not in spec '{spec.name}'. "
                        f"Choose from: {', '.join(known)}."
                    )
        if self.seeds is not None and (
            not self.seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds)
        ):
            raise ConfigError(f"--seeds must be integers >= 0, got {self.seeds!r}.")

    def matrix(self, spec: BenchSpec, out_dir: Path) -> BenchSpec:
        """``spec`` on its own seeds, the selection's and those of the runs in ``out_dir``."""
        seeds = set(spec.seeds) | set(self.seeds or ()) | seeds_in(out_dir)
        return spec if seeds == set(spec.seeds) else replace(spec, seeds=sorted(seeds))

    def includes(self, spec: BenchSpec, label: str, env: str, seed: int) -> bool:
        """Whether the run of row ``label`` on ``env`` with ``seed`` is this invocation's."""
        algo, learner = label.split("+", 1) if len(spec.algos) > 1 else (spec.algos[0], label)
        return (
            (self.seeds is None or seed in self.seeds)
            and (self.envs is None or env in self.envs)
            and (self.algos is None or algo in self.algos)
            and (self.learners is None or learner in self.learners or learner == BASELINE)
        )


def run_folders(out_dir: Path) -> list[Path]:
    """The run folders ``out_dir/runs/<env>/<row>/seed<n>``, whose ``<env>`` may hold a
    namespace folder (``MinAtar/Breakout-v1``)."""
    runs = out_dir / "runs"
    found = runs.rglob("seed*") if runs.is_dir() else []
    return sorted(p for p in found if p.is_dir() and p.name.removeprefix("seed").isdigit())


def seeds_in(out_dir: Path) -> set[int]:
    """The seeds of :func:`run_folders`."""
    return {int(run.name.removeprefix("seed")) for run in run_folders(out_dir)}


def load_spec(path: str | Path) -> BenchSpec:
    data = read_yaml(path)
    data = {
        key: ({} if value is None and key in ("envs", "set") else value)
        for key, value in data.items()
    }
    if isinstance(data.get("envs"), dict):
        data["envs"] = {env: options or {} for env, options in data["envs"].items()}
    data.setdefault("name", Path(path).stem)
    return build(BenchSpec, data, source=f"benchmark spec '{path}'")


def for_algo(settings: dict[str, Any], algo: str) -> dict[str, Any]:
    """``settings`` without per-algorithm sub-mappings, merged with the one for ``algo``."""
    general = {key: value for key, value in settings.items() if key not in ALGOS}
    return merge(general, settings.get(algo) or {})


def env_steps(options: BenchEnv, algo: str, steps: int | None) -> int | None:
    """The run length: ``steps`` (the command line's) if given, else the env's ``steps`` (a
    number, or a mapping by algorithm), else ``None`` (the hyperparameter file's)."""
    if steps is not None:
        return steps
    value = options.steps
    return value.get(algo) if isinstance(value, dict) else value


def plan_runs(
    spec: BenchSpec, out: Path, steps: int | None = None, overrides: list[str] | None = None
) -> list[tuple[str, RunConfig]]:
    """Every ``(label, run)`` of the matrix, seed-major so learners are interleaved; all
    validated upfront. ``overrides`` (``key.sub=value``, or ``<algo>.key=value`` for one
    algorithm's runs) apply to every run, over the spec and its variants."""
    changes: dict[str, Any] = {}
    for text in overrides or []:
        apply_override(changes, *parse_override(text))
    configs = []
    for seed in spec.seeds:
        for env, options in spec.envs.items():
            for algo in spec.env_algos(env):
                for learner_label in spec.learners_of(algo):
                    label = spec.label(algo, learner_label)
                    variant = spec.variant(learner_label)
                    if seed not in (variant.seeds or spec.seeds):
                        continue
                    agent = variant.agent_of(spec)
                    flags = {
                        "algo": variant.algo or ("online" if agent else algo),
                        "agent": agent,
                        "env": env,
                        "learner": variant.learner or learner_label,
                        "seed": seed,
                        "steps": env_steps(options, algo, steps),
                        "out": str(out / "runs" / env / label / f"seed{seed}"),
                    }
                    settings = merge(spec.set, options.set)
                    settings = merge(for_algo(settings, algo), variant.set)
                    settings = merge(settings, for_algo(changes, algo))
                    config = resolve_config(flags=merge(settings, flags))
                    run_class(config).validate(config)
                    if config.learner is not None:  # its options, before any run starts
                        make_learner(config.learner, **config.learner_kwargs)
                    configs.append((label, config))
    return configs


Task = tuple[int, RunConfig, bool]  # the run's index in the plan, its config, whether to resume


def _run_one(config: RunConfig, resume: bool) -> dict[str, Any]:
    """Start ``config``'s run, or continue it from its checkpoint; return its summary."""
    cls = run_class(config)
    run = cls.resume(config, Path(config.out or ".")) if resume else cls.start(config)
    summary = run_with_recovery(run, progress=False)
    leave_if_orphaned()
    return summary


@contextmanager
def stop_workers_on_signal() -> Iterator[None]:
    """Within the block, SIGINT or SIGTERM to this process stops the pool's work cleanly: every
    worker gets SIGTERM (its run checkpoints and stops, as a run does on its own) and
    :class:`Stopped` is raised, so no further run is submitted; leaving the pool's block then
    waits for the workers. Without it a SIGTERM kills this process alone (its workers then stop
    on their own: :func:`~biocredit.training.bench_state.join_bench`)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        for worker in multiprocessing.active_children():
            worker.terminate()
        name = signal.Signals(signum).name
        raise Stopped(name, f"stopped by {name}")

    with handle_stop_signals(stop):
        yield


def run_locally(
    tasks: list[Task], workers: int, lock_path: Path
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, summary)`` of every task as it finishes, from a pool of ``workers`` fresh
    processes that share the bench's lock.

    A run is handed to the pool only when a worker is free (``pool.map`` would queue one more
    than there are workers, and that run would start after a stop had reached its worker).
    """
    context = multiprocessing.get_context("spawn")
    queued = iter(tasks)
    running: dict[Future[dict[str, Any]], int] = {}
    with (
        ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=join_bench,
            initargs=(str(lock_path), os.getpid()),
        ) as pool,
        stop_workers_on_signal(),
    ):
        while True:
            for index, config, resume in islice(queued, workers - len(running)):
                running[pool.submit(_run_one, config, resume)] = index
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield running.pop(future), future.result()


def run_on_ray(
    tasks: list[Task], workers: int, address: str | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, summary)`` of every task as it finishes, each run a Ray task of one CPU: on the
    cluster at ``address``, or on a local Ray instance of ``workers`` CPUs started here."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--backend ray needs Ray, which is not installed. Install it with: "
            "pip install 'biocredit[ray]' (or use the default --backend local)."
        ) from None

    def results() -> Iterator[tuple[int, dict[str, Any]]]:
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        try:
            task = ray.remote(num_cpus=1)(_run_one)
            pending = {task.remote(config, resume): index for index, config, resume in tasks}
            while pending:
                done, _ = ray.wait(list(pending))
                yield pending.pop(done[0]), ray.get(done[0])
        finally:
            ray.shutdown()

    return results()


def check_overrides(overrides: list[str]) -> None:
    """Refuse a ``--set`` of a key the matrix chooses per run, naming the option that does."""
    for text in overrides:
        path = parse_override(text)[0]
        key = path[1] if path[0] in ALGOS and len(path) > 1 else path[0]
        if key in MATRIX_KEYS:
            raise ConfigError(
                f"bench --set cannot change '{key}': each run of the matrix gets it from "
                f"{MATRIX_KEYS[key]}."
            )


def default_out(spec: BenchSpec, steps: int | None, overrides: list[str]) -> Path:
    """``experiments/results/<spec>`` (or the spec's ``out``), with the changes made by the
    command line appended: ``mujoco-steps20000``, ``core-algo_kwargs.n_epochs=20``."""
    base = Path(spec.out or Path("experiments") / "results" / spec.name)
    changes = ([f"steps{steps}"] if steps is not None else []) + [
        re.sub(r"[^A-Za-z0-9._=+-]", "", text) for text in overrides
    ]
    return base.with_name("-".join([base.name, *changes]))


def check_options(workers: int, backend: str, ray_address: str | None) -> None:
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}.")
    if backend not in BACKENDS:
        raise unknown_name("bench backend", backend, BACKENDS)
    if ray_address is not None and backend != "ray":
        raise ConfigError("--ray-address is only used with --backend ray; add --backend ray.")


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
        groups = {
            env: {
                learner: [
                    Path(s["run_dir"])
                    for s in summaries
                    if s["env"] == env and s["label"] == learner
                ]
                for learner in self.spec.labels(env)
            }
            for env in self.spec.envs
        }
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


def plan_matrix(
    spec_path: str | Path,
    out: str | None,
    steps: int | None,
    selection: Selection,
    overrides: list[str] | None,
) -> tuple[BenchSpec, Path, list[tuple[str, RunConfig]]]:
    """The spec (on every seed of its matrix), its results folder and its planned runs, all
    checked; what :func:`run_benchmark` and ``--status`` share."""
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}.")
    spec = load_spec(spec_path)
    overrides = list(overrides or [])
    check_overrides(overrides)
    selection.check(spec)
    out_dir = Path(out) if out else default_out(spec, steps, overrides)
    spec = selection.matrix(spec, out_dir)
    return spec, out_dir, plan_runs(spec, out_dir, steps, overrides)


def run_benchmark(
    spec_path: str | Path,
    workers: int = 1,
    out: str | None = None,
    console: Console | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    steps: int | None = None,
    selection: Selection | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """Run the spec's matrix with ``workers`` processes (or Ray tasks); return the path of the
    table. ``steps`` replaces every run's length (e.g. a short version of a long spec);
    ``overrides`` (``key.sub=value``) change every run's settings; ``selection`` runs part of
    the matrix (:class:`Selection`).

    What ``out`` already holds is resumed (see :mod:`~biocredit.training.bench_state`): finished
    runs are kept, interrupted ones continue from their checkpoints. A partial table is
    written whenever a run finishes or the bench is stopped, the full one at the end.
    """
    console = console or Console()
    check_options(workers, backend, ray_address)
    selection = selection or Selection()
    spec, out_dir, plan = plan_matrix(spec_path, out, steps, selection, overrides)
    where = "Ray" if backend == "ray" else "process"
    command = "biocredit bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    with holding_folder(out_dir, console) as lock_path:
        fresh = not (out_dir / "runs").exists()
        states = prepare_runs([config for _, config in plan])
        sessions = Sessions(out_dir, fresh, command, f"{workers} {where} worker(s)")
        outputs = Outputs(spec, plan, out_dir, sessions)
        summaries = {
            index: {**read_summary(config), "label": label}
            for index, ((label, config), state) in enumerate(zip(plan, states, strict=True))
            if state == DONE
        }
        tasks = [
            (index, config, state == RESUME)
            for index, ((_, config), state) in enumerate(zip(plan, states, strict=True))
            if state != DONE and selection.includes(spec, plan[index][0], config.env, config.seed)
        ]
        pending = sum(state != DONE for state in states)
        console.print(
            f"benchmark '{spec.name}': {len(plan)} runs on {workers} {where} worker(s)"
            + (earlier_work(states) if not fresh else "")
            + (
                f"; this selection runs {len(tasks)} of the {pending} left"
                if len(tasks) < pending
                else ""
            )
        )
        if not tasks:
            return outputs.write(summaries, ran=False)
        results = (
            run_on_ray(tasks, workers, ray_address)
            if backend == "ray"
            else run_locally(tasks, workers, lock_path)
        )
        try:
            with closing(results):
                for index, summary in results:
                    summaries[index] = {**summary, "label": plan[index][0]}
                    report(console, summaries[index], len(summaries), len(plan))
                    outputs.write(summaries)
        except Stopped as stop:
            table_path = outputs.write(summaries)
            raise Stopped(
                stop.signal_name,
                f"Benchmark stopped by {stop.signal_name} with {len(summaries)} of {len(plan)} "
                "runs finished: the running ones checkpointed and the rest never started. "
                f"Partial table: {table_path}. Resume with the same command: {command}",
            ) from None
    return out_dir / "table.md"


def earlier_work(states: list[str]) -> str:
    """``: 3 finished earlier (kept), 1 to resume from its checkpoint, 4 to start``."""
    counts = Counter(states)
    return (
        f": {counts[DONE]} finished earlier (kept), {counts[RESUME]} to resume from their "
        f"checkpoints, {counts[START]} to start"
    )


def report(console: Console, summary: dict[str, Any], finished: int, total: int) -> None:
    console.print(
        f"  [{finished}/{total}] {summary['env']} {summary['label']} "
        f"seed {summary['seed']}: return {summary['final_return_mean']:.1f}, "
        f"{summary['wall_time_s']:.1f} s"
    )


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
        what = f"`{command}`" if command else "an invocation whose command was not recorded"
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
