"""A spec's matrix as runs: which part an invocation runs, with what changes, into which folder.

Runs are interleaved seed by seed so every learner meets the same machine load. ``--seeds``
runs the spec on other seeds (more seeds, or a first seed before the rest); ``--learners``,
``--envs`` and ``--algos`` run part of its rows now (bp always among them) and leave a partial
table that a later invocation completes (:class:`Selection`). ``--steps N`` and ``--set
key=value`` change every run of the matrix (a short version, or a variant of the settings;
``--set sac.algo_kwargs.learning_starts=1000`` for one algorithm's runs); their results go to a
folder of their own, named after the spec and the changes (:func:`default_out`), unless
``--out`` says where. Every run is validated (its config, its learner's options) before any
starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from biocredit.errors import ConfigError
from biocredit.learners.registry import make_learner
from biocredit.mappings import merge
from biocredit.training.bench_spec import BASELINE, MATRIX_KEYS, BenchEnv, BenchSpec, load_spec
from biocredit.training.config import ALGOS, RunConfig, apply_override, parse_override
from biocredit.training.resolve import resolve_config
from biocredit.training.run_kinds import run_class


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
