"""MinAtar's games (Young & Tian 2019, "MinAtar: An Atari-Inspired Testbed for Thorough and
Reproducible Reinforcement Learning Experiments"), registered when first asked for.

``MinAtar/<Game>-v0`` (all 6 actions) and ``-v1`` (the game's minimal action set) for Asterix,
Breakout, Freeway, Seaquest and SpaceInvaders are MinAtar's own Gymnasium ids
(``minatar.gym.register_envs``). The package is an optional extra, ``pip install
"biocredit[minatar]"``, imported only when a ``MinAtar/`` id is used: importing ``minatar.gym``
also imports seaborn (its ``rgb_array`` colours).
"""

from __future__ import annotations

import importlib

import gymnasium as gym

from biocredit.errors import ConfigError

NAMESPACE = "MinAtar/"
GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")


def is_minatar(env_id: str) -> bool:
    return env_id.startswith(NAMESPACE)


def register_minatar(env_id: str) -> None:
    """Register MinAtar's ids once, for ``env_id`` in the ``MinAtar/`` namespace; a
    :class:`ConfigError` naming the extra if the package is missing."""
    if not is_minatar(env_id):
        return
    try:
        minatar_gym = importlib.import_module("minatar.gym")
    except ImportError:
        raise ConfigError(
            f"'{env_id}' is a MinAtar game, which needs the package 'minatar', not installed. "
            'Install the MinAtar extra: pip install "biocredit[minatar]".'
        ) from None
    if f"{NAMESPACE}{GAMES[0]}-v1" not in gym.registry:
        minatar_gym.register_envs()
