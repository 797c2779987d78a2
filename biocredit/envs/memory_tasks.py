"""Partially observable tasks that need memory, registered as Gymnasium ids on ``import
biocredit``, under the namespace ``biocredit/`` and under their plain ids (used by specs and
hyperparameter files, which the namespaced ids share: :func:`plain_id`):

- ``MaskedCartPole-v1``: CartPole-v1 that observes only the cart position and the pole angle;
  the velocities must be inferred from how those change.
- ``CuedTMaze-v0``: a cue shown only at the first step, then a corridor of ``delay`` steps, then
  a junction where turning the cued way pays +1 and the other way -1 (Bakker 2002, NeurIPS).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from biocredit.learners.options import check_count

MASKED = [0, 2]  # cart position, pole angle


class MaskedCartPoleEnv(CartPoleEnv):
    """CartPole whose observation is ``(x, theta)``: velocities hidden, dynamics unchanged."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode)
        full = self.observation_space
        self.observation_space = spaces.Box(full.low[MASKED], full.high[MASKED], dtype=np.float32)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs[MASKED], reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        return obs[MASKED], info


class CuedTMazeEnv(gym.Env[np.ndarray, np.int64]):
    """A T-maze: remember a one-step cue through a corridor, then turn the cued way.

    Observation ``(cue, corridor, junction)``: ``cue`` is +1 (turn left) or -1 (turn right) at
    the first step and 0 afterwards; ``corridor`` is 1 for the ``delay`` corridor steps;
    ``junction`` is 1 at the end. The agent walks one cell per step whatever it does; at the
    junction action 0 turns left and 1 turns right, ending the episode with reward +1 if that is
    the cued side and -1 otherwise (``info["success"]``). Episodes last ``delay + 1`` steps; a
    memoryless policy succeeds half the time.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, delay: int = 20) -> None:
        self.delay = check_count(
            "CuedTMaze", "delay", delay, why="the corridor's length (env_kwargs)", hint=20
        )
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.position = 0
        self.cue = 1

    def _observation(self) -> np.ndarray:
        at_junction = self.position == self.delay
        cue = self.cue if self.position == 0 else 0
        return np.array([cue, not at_junction, at_junction], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.position = 0
        self.cue = 1 if self.np_random.integers(2) == 0 else -1
        return self._observation(), {"cue": self.cue}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        if self.position < self.delay:
            self.position += 1
            return self._observation(), 0.0, False, False, {}
        success = (action == 0) == (self.cue == 1)
        return self._observation(), (1.0 if success else -1.0), True, False, {"success": success}


IDS = {
    "MaskedCartPole-v1": dict(
        entry_point=MaskedCartPoleEnv, max_episode_steps=500, reward_threshold=475.0
    ),
    "CuedTMaze-v0": dict(entry_point=CuedTMazeEnv, reward_threshold=0.9),
}


NAMESPACE = "biocredit"


def plain_id(env_id: str) -> str:
    """``biocredit/CuedTMaze-v0`` -> ``CuedTMaze-v0``; any other id unchanged."""
    return env_id.removeprefix(f"{NAMESPACE}/")


def register_memory_tasks() -> None:
    """Register the ids above with Gymnasium, namespaced and plain (once per process)."""
    for env_id, kwargs in IDS.items():
        for name in (f"{NAMESPACE}/{env_id}", env_id):
            if name not in gym.registry:
                gym.register(name, **kwargs)
