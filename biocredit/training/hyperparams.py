"""Per-environment hyperparameters in RL-Zoo format (``experiments/hyperparams/<algo>.yaml``).

An entry is keyed by env id and uses the Zoo's keys: ``n_envs``, ``n_timesteps``,
``normalize``, ``policy_kwargs`` (a mapping) and the algorithm's own arguments (``n_steps``,
``batch_size``, ``learning_rate: lin_1e-3`` ..., and the Zoo's ``noise_type``/``noise_std``
for TD3). They are translated to :class:`RunConfig` keys here.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from biocredit.envs.memory_tasks import plain_id
from biocredit.errors import ConfigError
from biocredit.training.config import read_yaml

_PACKAGED = Path(__file__).resolve().parents[1] / "hyperparams"  # inside an installed wheel
_SOURCE = Path(__file__).resolve().parents[2] / "experiments" / "hyperparams"  # in a checkout


def hyperparams_dir() -> Path:
    """Where the Zoo-style hyperparameter files live for this installation."""
    return _PACKAGED if _PACKAGED.is_dir() else _SOURCE


def zoo_entry(algo: str, env_id: str, kwargs_key: str = "algo_kwargs") -> dict[str, Any]:
    """The tuned hyperparameters for ``(algo, env_id)`` as RunConfig keys; ``{}`` if none.

    ``algo`` names the file (an SB3 algorithm or a native agent); keys other than the Zoo's
    go to ``kwargs_key`` (``algo_kwargs``, or ``agent_kwargs`` for agents). Our own envs'
    namespaced ids (``biocredit/CuedTMaze-v0``) share the entries of their plain ids.
    """
    path = hyperparams_dir() / f"{algo}.yaml"
    if not path.is_file():
        return {}
    entries = read_yaml(path)
    entry = entries.get(env_id, entries.get(plain_id(env_id)))
    if entry is None:
        return {}
    entry = dict(entry)
    entry.pop("policy", None)  # always biocredit's policy for the algorithm
    config: dict[str, Any] = {}
    for zoo_key, key in (("n_envs", "n_envs"), ("n_timesteps", "steps")):
        if zoo_key in entry:
            config[key] = int(entry.pop(zoo_key))
    for key in ("policy_kwargs", "normalize"):
        if key in entry:
            config[key] = entry.pop(key)
    config[kwargs_key] = entry
    return config


def schedule(value: Any, key: str) -> float | Callable[[float], float] | None:
    """A constant, or ``"lin_<x>"``: SB3's progress-remaining schedule from ``x`` down to 0.

    The value (or ``x``) must be finite and > 0; ``None`` passes through (SB3's "off", e.g.
    clip_range_vf).
    """
    if value is None:
        return None
    start: float | None = None
    if isinstance(value, str) and value.startswith("lin_"):
        with contextlib.suppress(ValueError):
            start = float(value[4:])
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        start = float(value)
    if start is None:
        raise ConfigError(
            f"'{key}' must be a number or lin_<start> (e.g. lin_1e-3), got {value!r}."
        )
    if not (start > 0 and math.isfinite(start)):
        raise ConfigError(f"'{key}' must be a finite number > 0, got {value!r}.")
    return LinearSchedule(start) if isinstance(value, str) else start


class LinearSchedule:
    """``progress_remaining * start``, the RL Zoo's ``lin_`` schedule (a class, so it pickles)."""

    def __init__(self, start: float) -> None:
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start

    def __repr__(self) -> str:
        return f"lin_{self.start:g}"
