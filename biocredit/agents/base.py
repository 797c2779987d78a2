"""The contract every single-agent online learner implements; the online loop talks to nothing
else.

One step of training is ``action = agent.act(obs)``, ``agent.env_action(action)`` into the
vector env, then ``agent.learn(reward, terminated, next_obs, done)`` (one row per env; a team
of agents on a PettingZoo env takes one row per env copy and agent, and ``active`` marks the
rows of live agents). Checkpoints hold the
agent's ``state_dict`` (weights, learner state, buffers) and :meth:`optimizers`; the divergence
guard watches :meth:`guarded_modules`; a run's summary and checkpoint identity record
:meth:`learner_names` and :meth:`module_learners`; :meth:`diagnostics` go to TensorBoard and
``progress.csv``; ``predict`` is SB3's, for evaluation and users.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from biocredit.agents.networks import TrainedNetwork
from biocredit.agents.savable import SavableAgent
from biocredit.errors import ConfigError


def check_box_observations(space: spaces.Space) -> spaces.Box:
    """``space`` if it is a Box (agents read observations as flat rows), else a ConfigError."""
    if not isinstance(space, spaces.Box):
        raise ConfigError(f"Observation space {space} is not a Box.")
    return space


def is_discrete_action(space: spaces.Space, why_bounded: str) -> bool:
    """Whether ``space`` is Discrete; a ConfigError unless it is Discrete or a bounded Box
    (``why_bounded``: why the agent needs the bounds)."""
    if isinstance(space, spaces.Discrete):
        return True
    if isinstance(space, spaces.Box) and space.is_bounded():
        return False
    raise ConfigError(f"Action space {space} is not Discrete or a bounded Box; {why_bounded}.")


class OnlineAgent(SavableAgent, metaclass=ABCMeta):
    """An agent that acts and learns at every step of a vector env (one row per env).

    Subclasses own ``networks`` (an ``nn.ModuleDict`` of their module networks, by role)."""

    networks: nn.ModuleDict

    @abstractmethod
    def act(self, obs: Tensor) -> Tensor:
        """Actions for a batch of observations (one row per env); remembers what ``learn``
        needs."""

    @abstractmethod
    def env_action(self, action: Tensor) -> np.ndarray:
        """``action`` as the env takes it."""

    @abstractmethod
    def learn(
        self,
        reward: Tensor,
        terminated: Tensor,
        next_obs: Tensor,
        done: Tensor,
        active: Tensor | None = None,
    ) -> Any:
        """Learn from the transition just taken (``next_obs``: each finished episode's final
        observation; ``done``: its episode ended there). ``active`` (bool per row, default
        all): the rows that took a real step; the others are padding (an agent that has left a
        multi-agent episode), learn nothing and count as done."""

    @abstractmethod
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """SB3-style prediction, the agent's own training state untouched."""

    @abstractmethod
    def trained_networks(self) -> dict[str, TrainedNetwork]:
        """The module networks with their optimizers, by role."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer a checkpoint must hold, by name."""

    @abstractmethod
    def learner_names(self) -> dict[str, str]:
        """The learners a run's summary names (``learner``, ``critic_learner`` ...)."""

    def diagnostics(self) -> dict[str, float]:
        """Values to log after a step (``agent/surprise`` ...); none by default."""
        return {}

    def guarded_modules(self) -> dict[str, nn.Module]:
        """Every module whose weights the agent's updates change, by role (the divergence guard
        watches them): its networks by default."""
        return dict(self.networks)

    def module_learners(self) -> dict[str, str]:
        """Each learning module's learner, by role: what a checkpoint was made for."""
        return {role: net.net.learner.name for role, net in self.trained_networks().items()}
