"""Run configuration: YAML layers validated into a dataclass.

A run's config is resolved from, lowest priority first: the defaults below, the per-env
hyperparameters in ``experiments/hyperparams/<algo>.yaml`` (RL-Zoo style), a ``--config`` file,
command-line flags, and ``--set key=value`` overrides. The resolved config is written into the
run folder. Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming
the key and the closest valid one.
"""

from __future__ import annotations

import re
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from biocredit.envs.multiagent import is_multiagent
from biocredit.envs.normalize import normalize_options
from biocredit.errors import ConfigError, check_keys, unknown_name
from biocredit.learners.registry import DEFAULT_LEARNER

DIVERGENCE_ACTIONS = ("stop", "rollback")
# "online": a native agent (``agent``); "recurrent-ppo": the LSTM backprop-through-time baseline
ALGOS = ("ppo", "a2c", "sac", "td3", "dqn", "recurrent-ppo", "online")


@dataclass
class RunConfig:
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

    env: str = "CartPole-v1"
    algo: str = "ppo"
    learner: str | None = DEFAULT_LEARNER
    agent: str | None = None
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    learner_kwargs: dict[str, Any] = field(default_factory=dict)
    critic_learner: str | None = None
    critic_learner_kwargs: dict[str, Any] | None = None
    steps: int = 100_000
    seed: int = 0
    n_envs: int = 1
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    normalize: bool | dict[str, Any] | str = False
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    multiagent: dict[str, Any] = field(default_factory=dict)
    eval_episodes: int = 10
    # env steps between checkpoints (0: only at the end and on a stop); a SIGKILL or a machine
    # stop loses at most this many steps of a run
    checkpoint_freq: int = 10_000
    # complete checkpoints a run keeps (the newest first); older ones are removed as new ones land
    keep_checkpoints: int = 2
    on_divergence: str = "stop"  # or "rollback": resume the last checkpoint, learning rates halved
    max_rollbacks: int = 3
    # every this many credit assignments of each network, log each layer's cosine to backprop's
    # gradient of the same loss (alignment/<network>/layer<l>); 0: off
    alignment_every: int = 0
    threads: int = 1
    out: str | None = None

    def __post_init__(self) -> None:
        positive = {
            "steps": self.steps,
            "n_envs": self.n_envs,
            "eval_episodes": self.eval_episodes,
            "threads": self.threads,
            "keep_checkpoints": self.keep_checkpoints,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"'{key}' must be >= 1, got {value}.")
        if self.seed < 0:
            raise ConfigError(f"'seed' must be >= 0, got {self.seed}.")
        if self.checkpoint_freq < 0:
            raise ConfigError(
                f"'checkpoint_freq' must be >= 0 (0 = only at the end), got {self.checkpoint_freq}."
            )
        if self.on_divergence not in DIVERGENCE_ACTIONS:
            raise unknown_name("on_divergence action", self.on_divergence, DIVERGENCE_ACTIONS)
        if self.alignment_every < 0:
            raise ConfigError(
                f"'alignment_every' must be >= 0 (0 = off), got {self.alignment_every}. "
                "Try alignment_every: 10."
            )
        if self.max_rollbacks < 0:
            raise ConfigError(f"'max_rollbacks' must be >= 0, got {self.max_rollbacks}.")
        if self.algo not in ALGOS:
            raise unknown_name("algo", self.algo, ALGOS)
        if (self.agent is None) != (self.algo != "online"):
            raise ConfigError(
                f"algo '{self.algo}' with agent {self.agent!r}: a native agent runs with algo "
                "'online' (set by --agent), an SB3 algorithm (ppo, a2c) without an agent."
            )
        if self.agent is None and self.learner is None:
            raise ConfigError("An SB3 run needs a learner, e.g. --learner dfa.")
        if self.multiagent and not is_multiagent(self.env):
            raise ConfigError(
                f"'multiagent' options apply to PettingZoo envs (env: pettingzoo:...), but env is "
                f"'{self.env}'. Remove 'multiagent' or name a PettingZoo env, e.g. "
                "pettingzoo:mpe2.simple_spread_v3."
            )
        if isinstance(self.normalize, str):  # the Zoo's text form, stored as a mapping
            self.normalize = normalize_options(self.normalize) or False
        if normalize_options(self.normalize) is not None and self.agent is not None:
            raise ConfigError(
                f"normalize is for SB3 runs; the native agent '{self.agent}' reads raw "
                "observations. Remove 'normalize' or train with --algo ppo/sac/td3."
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _type_ok(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _type_name(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(get_origin(hint) or hint, "__name__", str(hint))


def config_from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a plain dict into a :class:`RunConfig`; errors name ``source`` and the key."""
    hints = get_type_hints(RunConfig)
    check_keys(data, [f.name for f in fields(RunConfig)], source)
    for key, value in data.items():
        if not _type_ok(value, hints[key]):
            raise ConfigError(
                f"Key '{key}' in {source} must be {_type_name(hints[key])}, "
                f"got {type(value).__name__} {value!r}."
            )
    return RunConfig(**data)


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
