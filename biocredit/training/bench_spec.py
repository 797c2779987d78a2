"""Benchmark specs: algo x learner x env x seeds, always with the bp baseline alongside.

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
algorithm's runs only (``set: {sac: {algo_kwargs: {learning_starts: 1000}}}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biocredit.errors import ConfigError
from biocredit.schema import Config, at_least, build, choice, option
from biocredit.training.config import ALGOS, read_yaml

BASELINE = "bp"
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
