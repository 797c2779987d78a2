"""Environment construction with clear errors for unknown ids and missing extras.

Optional envs register when first named (MinAtar's ``MinAtar/`` ids); binary image
observations become float images, channels first (:mod:`biocredit.envs.images`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from biocredit.envs.images import image_observations
from biocredit.envs.minatar import register_minatar
from biocredit.envs.multiagent import EXTRA_PACKAGES, PREFIX
from biocredit.errors import ConfigError, unknown_name


def check_env_id(env_id: str) -> None:
    """Raise an :class:`~biocredit.errors.UnknownNameError` if ``env_id`` is not registered
    (after registering an optional package's ids it names, or saying which extra it needs)."""
    register_minatar(env_id)
    if env_id not in gym.registry:
        if env_id.split(".")[0] in ("pettingzoo", *EXTRA_PACKAGES):
            raise ConfigError(
                f"'{env_id}' is not a Gymnasium env id; it looks like a PettingZoo env module. "
                f"Name PettingZoo envs with the prefix {PREFIX}, e.g. {PREFIX}{env_id}."
            )
        raise unknown_name(
            "environment",
            env_id,
            gym.registry.keys(),
            "List them all with: python -c 'import gymnasium; gymnasium.pprint_registry()'.",
        )


def make_sb3_vec_env(
    env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any] | None = None
) -> VecEnv:
    """``n_envs`` copies of ``env_id`` in a DummyVecEnv with Monitors, seeded ``seed + i``;
    binary image observations as float images, channels first."""
    check_env_id(env_id)
    try:
        return make_vec_env(
            env_id,
            n_envs=n_envs,
            seed=seed,
            env_kwargs=env_kwargs or {},
            wrapper_class=image_observations,
        )
    except TypeError as exc:
        raise ConfigError(f"env_kwargs {env_kwargs!r} do not fit '{env_id}': {exc}.") from None
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"'{env_id}' needs an extra package: {exc}") from None
