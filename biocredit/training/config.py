"""Run configuration: YAML layers validated into a dataclass.

A run's config is resolved from, lowest priority first: the defaults below, the per-env
hyperparameters in ``experiments/hyperparams/<algo>.yaml`` (RL-Zoo style), a ``--config`` file,
command-line flags, and ``--set key=value`` overrides. The resolved config is written into the
run folder. Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming
the key and the closest valid one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from biocredit.envs.multiagent import is_multiagent
from biocredit.envs.normalize import normalize_options
from biocredit.errors import ConfigError
from biocredit.learners.registry import DEFAULT_LEARNER, list_learners
from biocredit.schema import Config, at_least, build, choice, option

DIVERGENCE_ACTIONS = ("stop", "rollback")
# "online": a native agent (``agent``); "recurrent-ppo": the LSTM backprop-through-time baseline
ALGOS = ("ppo", "a2c", "sac", "td3", "dqn", "recurrent-ppo", "online")


@dataclass
class RunConfig(Config):
    """Everything that defines a training run.

    ``algo_kwargs`` go to the SB3 algorithm (``n_steps``, ``batch_size``, ``learning_rate`` ...;
    ``"lin_1e-3"`` means a linear schedule from 1e-3 to 0, as in the RL Zoo); ``policy_kwargs``
    to the policy (``net_arch``, ``activation_fn`` by name, ``ortho_init``, ``log_std_init``).
    A native agent (``agent``, with ``algo: online``) takes ``agent_kwargs`` instead; there
    ``learner``, if set, replaces every module's learner. A PettingZoo env
    (``env: pettingzoo:...``) takes ``multiagent`` (scheme, groups; see
    :mod:`biocredit.agents.team`), and ``steps`` then counts agent steps (one per agent per env
    step). ``normalize`` is the RL Zoo's
    observation/return normalisation (``true``, or ``{norm_obs: true, norm_reward: false}``
    ...; see :mod:`biocredit.envs.normalize`), for SB3 runs.
    """

    env: str = option("CartPole-v1", help="Gymnasium id, or pettingzoo:<module or id>")
    algo: str = choice(
        "ppo", ALGOS, kind="algo", help="SB3 algorithm, or online for a native agent"
    )
    learner: str | None = choice(
        DEFAULT_LEARNER,
        list_learners,
        kind="learner",
        help="the networks' learner (a native agent: replaces its learner roles' learners)",
    )
    agent: str | None = option(None, help="a native agent (biocredit agents), run online")
    agent_kwargs: dict[str, Any] = option({}, help="the native agent's config")
    learner_kwargs: dict[str, Any] = option({}, help="the learner's options")
    critic_learner: str | None = choice(
        None, list_learners, kind="learner", help="the critics' learner (default: learner)"
    )
    critic_learner_kwargs: dict[str, Any] | None = option(None, help="the critic learner's options")
    steps: int = at_least(1, 100_000, help="env steps (agent steps in a multi-agent env)")
    seed: int = at_least(0, 0, help="seeds everything of the run")
    n_envs: int = at_least(1, 1, help="parallel env copies")
    env_kwargs: dict[str, Any] = option({}, help="keyword arguments of the env")
    normalize: bool | dict[str, Any] | str = option(
        False, help="the RL Zoo's observation/return normalisation (SB3 runs)"
    )
    algo_kwargs: dict[str, Any] = option({}, help="the SB3 algorithm's keyword arguments")
    policy_kwargs: dict[str, Any] = option({}, help="the SB3 policy's keyword arguments")
    multiagent: dict[str, Any] = option({}, help="scheme and groups of a PettingZoo run")
    eval_episodes: int = at_least(1, 10, help="evaluation episodes at the end")
    checkpoint_freq: int = at_least(
        0,
        10_000,
        help="env steps between checkpoints (0: only at the end and on a stop); a SIGKILL or "
        "a machine stop loses at most this many steps of a run",
        hint="0 = only at the end and on a stop.",
    )
    keep_checkpoints: int = at_least(
        1, 2, help="complete checkpoints a run keeps (older ones are removed as new ones land)"
    )
    on_divergence: str = choice(
        "stop",
        DIVERGENCE_ACTIONS,
        kind="on_divergence action",
        help="stop, or rollback: resume the last checkpoint, learning rates halved",
    )
    max_rollbacks: int = at_least(0, 3, help="rollbacks before a diverging run stops")
    alignment_every: int = at_least(
        0,
        0,
        help="every this many credit assignments of each network, log each layer's cosine to "
        "backprop's gradient of the same loss (alignment/<network>/layer<l>); 0: off",
        hint="0 = off. Try alignment_every: 10.",
    )
    threads: int = at_least(1, 1, help="torch threads")
    out: str | None = option(None, help="the run folder (default: runs/<env>/<algo>-<learner>)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.normalize, str):  # the Zoo's text form, stored as a mapping
            self.normalize = normalize_options(self.normalize) or False

    def check(self) -> None:
        self.check_agent_or_algorithm()
        self.check_multiagent_env()
        self.check_normalize_is_for_sb3()

    def check_agent_or_algorithm(self) -> None:
        """A native agent runs with algo ``online``; an SB3 algorithm needs a learner."""
        if (self.agent is None) != (self.algo != "online"):
            raise ConfigError(
                f"algo '{self.algo}' with agent {self.agent!r}: a native agent runs with algo "
                "'online' (set by --agent), an SB3 algorithm (ppo, a2c) without an agent."
            )
        if self.agent is None and self.learner is None:
            raise ConfigError("An SB3 run needs a learner, e.g. --learner dfa.")

    def check_multiagent_env(self) -> None:
        if self.multiagent and not is_multiagent(self.env):
            raise ConfigError(
                f"'multiagent' options apply to PettingZoo envs (env: pettingzoo:...), but env is "
                f"'{self.env}'. Remove 'multiagent' or name a PettingZoo env, e.g. "
                "pettingzoo:mpe2.simple_spread_v3."
            )

    def check_normalize_is_for_sb3(self) -> None:
        if normalize_options(self.normalize) is not None and self.agent is not None:
            raise ConfigError(
                f"normalize is for SB3 runs; the native agent '{self.agent}' reads raw "
                "observations. Remove 'normalize' or train with --algo ppo/sac/td3."
            )


def config_from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a plain dict into a :class:`RunConfig`; errors name ``source`` and the key."""
    return build(RunConfig, data, source=source)


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1), which also reads YAML 1.2 floats written without a dot,
    ``1e-12`` or ``5E+2``, as numbers rather than strings."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable or non-mapping file is a :class:`ConfigError`."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=ConfigLoader)
    except OSError as exc:
        raise ConfigError(f"Cannot read config file '{path}': {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "it cannot be parsed"
        raise ConfigError(
            f"Config file '{path}' is not valid YAML{where}: {problem}. "
            "Check the brackets, quotes and indentation there."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file '{path}' must hold a mapping of keys to values, "
            f"got {type(data).__name__}."
        )
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"algo_kwargs.n_steps=64"`` -> ``(["algo_kwargs", "n_steps"], 64)``; values are YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set expects key=value, e.g. --set algo_kwargs.n_steps=64; got {text!r}."
        )
    try:
        value = yaml.load(raw, Loader=ConfigLoader) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``data[path[0]][path[1]]... = value``, creating nested mappings as needed."""
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"Cannot set '{'.'.join(path)}': '{part}' is not a mapping.")
        node = child
    node[path[-1]] = value
