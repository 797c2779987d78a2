"""PettingZoo Parallel envs as one Stable-Baselines3 ``VecEnv``, for parameter sharing.

Each (env copy, agent) pair is one VecEnv index, so one SB3 policy acts for every agent and
learns from all their transitions; the agent's one-hot id (its index in ``possible_agents``)
is appended to its observation so the shared network can still tell agents apart.

SuperSuit's ``pettingzoo_env_to_vec_env_v1`` is the maintained adapter, but with
Stable-Baselines3 2.9 ``PPO(..., seed=...)`` fails on it (``'ConcatVecEnv' object has no
attribute 'seed'``), and it needs every agent alive all episode; hence this one.

Agents that leave mid-episode, as PettingZoo defines it: an agent is asked for an action only
while it is in ``env.agents``. When it is terminated or truncated its index reports ``done``
(with ``terminal_observation``, and ``TimeLimit.truncated`` for a truncation); until the
copy's episode ends its index then returns a zero observation and zero reward and its actions
are dropped (SB3 needs a fixed number of indices). When no agent is left the copy is reset.
The team return of an episode (the sum of the agents' returns) is reported as SB3's episode
info on the copy's first index, so ``rollout/ep_rew_mean`` is the team return; per-agent
returns are in :attr:`episodes`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from biocredit.envs.team_episodes import TeamEpisodes
from biocredit.errors import ConfigError


def shared_spaces(env: Any, agents: Sequence[str], env_id: str) -> tuple[spaces.Box, spaces.Space]:
    """The one observation (a Box) and action space ``agents`` all have, or a ConfigError."""
    observation, action = env.observation_space(agents[0]), env.action_space(agents[0])
    for agent in agents:
        if env.observation_space(agent) != observation or env.action_space(agent) != action:
            raise ConfigError(
                f"'{env_id}': agents {agents[0]} and {agent} have different spaces "
                f"({observation}, {action} vs {env.observation_space(agent)}, "
                f"{env.action_space(agent)}), so one shared network cannot act for both. Put "
                "them in different multiagent.groups (native agents), or use scheme: independent."
            )
    if not isinstance(observation, spaces.Box):
        raise ConfigError(f"'{env_id}': observation space {observation} is not a Box.")
    return observation, action


def with_agent_id(observation: spaces.Box, n_agents: int) -> spaces.Box:
    """``observation`` with ``n_agents`` one-hot entries in ``[0, 1]`` appended."""
    low = np.concatenate([observation.low.ravel(), np.zeros(n_agents)]).astype(np.float32)
    high = np.concatenate([observation.high.ravel(), np.ones(n_agents)]).astype(np.float32)
    return spaces.Box(low, high, dtype=np.float32)


class ParallelVecEnv(VecEnv):
    """``n_copies`` copies of a PettingZoo ParallelEnv; index ``copy * n_agents + agent``."""

    def __init__(self, make_env: Callable[[], Any], n_copies: int, env_id: str = "") -> None:
        self.envs = [make_env() for _ in range(n_copies)]
        self.agents = list(self.envs[0].possible_agents)
        self.n_agents = len(self.agents)
        observation, action = shared_spaces(self.envs[0], self.agents, env_id)
        self.obs_size = int(np.prod(observation.shape))
        self.identity = np.eye(self.n_agents, dtype=np.float32)
        self.render_mode = None
        super().__init__(
            n_copies * self.n_agents, with_agent_id(observation, self.n_agents), action
        )
        self.episodes = TeamEpisodes(n_copies)
        self.live: list[dict[str, np.ndarray]] = [{} for _ in range(n_copies)]
        self._actions: np.ndarray | None = None
        self._start = time.time()

    def _stack(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        """One row per agent: its observation (zeros if absent) and its one-hot id."""
        out = np.zeros((self.n_agents, self.obs_size + self.n_agents), dtype=np.float32)
        out[:, self.obs_size :] = self.identity
        for i, agent in enumerate(self.agents):
            if agent in observations:
                out[i, : self.obs_size] = np.ravel(observations[agent])
        return out

    def _reset_copy(self, copy: int) -> None:
        seed = self._seeds[copy * self.n_agents]
        self.live[copy], _ = self.envs[copy].reset(seed=seed)

    def reset(self) -> VecEnvObs:
        for copy in range(len(self.envs)):
            self._reset_copy(copy)
        self._reset_seeds()
        return np.concatenate([self._stack(self.live[copy]) for copy in range(len(self.envs))])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None
        n = self.n_agents
        obs = np.zeros((self.num_envs, *self.observation_space.shape), dtype=np.float32)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for copy, env in enumerate(self.envs):
            acting = [a for a in self.agents if a in env.agents]
            actions = {a: self._actions[copy * n + self.agents.index(a)] for a in acting}
            next_obs, reward, terminated, truncated, _ = env.step(actions)
            self.episodes.add(copy, {a: reward[a] for a in acting})
            self.live[copy] = {a: next_obs[a] for a in env.agents}
            final = self._stack(next_obs)
            for a in acting:
                i = copy * n + self.agents.index(a)
                rewards[i] = reward[a]
                if terminated[a] or truncated[a]:
                    dones[i] = True
                    infos[i]["terminal_observation"] = final[self.agents.index(a)]
                    infos[i]["TimeLimit.truncated"] = bool(truncated[a] and not terminated[a])
            if not env.agents:
                length = self.episodes.lengths[copy]
                team = sum(self.episodes.end(copy).values())
                infos[copy * n]["episode"] = {
                    "r": team,
                    "l": length,
                    "t": round(time.time() - self._start, 6),
                }
                self._reset_copy(copy)
            obs[copy * n : (copy + 1) * n] = self._stack(self.live[copy])
        return obs, rewards, dones, infos

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        raise NotImplementedError(f"ParallelVecEnv has no per-index method '{method_name}'.")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
