"""PettingZoo Parallel envs as batches of rows, one row per (env copy, agent): the one adapter
of the native teams (:class:`ParallelEnvCopies`) and of parameter sharing in Stable-Baselines3
(:class:`ParallelVecEnv`, a ``VecEnv`` over the same copies).

Rows (:class:`AgentRows`): the agents come in blocks, one per network that acts for them (the
SB3 path: one block of every agent; a native team: one block per unit, see
``agents/team.py``). Blocks follow one another; within a block the rows are copy-major, row
``offset + copy * len(block) + i`` for its ``i``-th agent. A row holds the agent's flattened
observation (zeros while the agent is not live), then, when the block shares one network
(``ids``), the agent's one-hot index in its block, so the shared network can still tell its
agents apart; rows are zero-padded to the widest.

Agents that leave mid-episode, as PettingZoo defines it: an agent is asked for an action only
while it is in ``env.agents``. The step it is terminated or truncated, its row carries the
observation the step returned (for bootstrapping); after that the row is padding (zero
observation, zero reward, its actions dropped) until the copy's episode ends. When no agent is
left the copy is reset. The team return of an episode is the sum of its agents' returns
(:class:`~biocredit.envs.team_episodes.TeamEpisodes`).

Exact resume (:meth:`ParallelEnvCopies.capture`): a PettingZoo env has no general way to
save and restore its state, so each copy keeps what rebuilds it: the state of its RNGs just
before the reset that began its current episode, that reset's seed, and every action taken
since. :meth:`ParallelEnvCopies.restore` sets a fresh env's RNGs, resets it and replays the
actions; an env whose steps depend only on its own RNGs and the actions (the MPE envs) comes
back exactly, and the run checks that the replayed observations equal the saved ones.

SuperSuit's ``pettingzoo_env_to_vec_env_v1`` is the maintained SB3 adapter, but with
Stable-Baselines3 2.9 ``PPO(..., seed=...)`` fails on it (``'ConcatVecEnv' object has no
attribute 'seed'``), and it needs every agent alive all episode; hence this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from biocredit.envs.state import decode, encode
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


class AgentRows:
    """Where each (env copy, agent) sits in a batch of rows, and the conversions between
    PettingZoo's per-agent dicts and rows (see the module docstring); any number of copies.

    :param env: a copy of the env (its agents' spaces)
    :param blocks: the agents of each block, every agent of the env in exactly one
    :param ids: append each agent's one-hot index in its block (the block's agents then share
        one network, so they must have the same spaces)
    """

    def __init__(self, env: Any, blocks: Sequence[Sequence[str]], ids: bool, env_id: str = ""):
        self.blocks = [list(block) for block in blocks]
        self.ids = ids
        self.spaces: dict[str, spaces.Space] = {}
        for block in self.blocks:
            if ids:
                shared_spaces(env, block, env_id)
            for agent in block:
                space = env.observation_space(agent)
                if not isinstance(space, spaces.Box):
                    raise ConfigError(f"'{env_id}': observation space {space} is not a Box.")
                self.spaces[agent] = with_agent_id(space, len(block)) if ids else space
        self.sizes = {a: int(np.prod(env.observation_space(a).shape)) for a in self.spaces}
        self.id_column = {  # where a row's one-hot id is 1
            agent: self.sizes[agent] + i for block in self.blocks for i, agent in enumerate(block)
        }
        self.width = max(int(np.prod(space.shape)) for space in self.spaces.values())
        self.per_copy = len(self.spaces)
        self._places: dict[int, dict[tuple[int, str], int]] = {}

    def row_space(self, agent: str) -> spaces.Box:
        """The space of ``agent``'s rows, padding left out."""
        return self.spaces[agent]  # type: ignore[return-value]

    def places(self, copies: int) -> dict[tuple[int, str], int]:
        """``(copy, agent) -> row`` for ``copies`` env copies, in row order."""
        if copies not in self._places:
            places, offset = {}, 0
            for block in self.blocks:
                for copy in range(copies):
                    for i, agent in enumerate(block):
                        places[(copy, agent)] = offset + copy * len(block) + i
                offset += copies * len(block)
            self._places[copies] = dict(sorted(places.items(), key=lambda item: item[1]))
        return self._places[copies]

    def rows(self, observations: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """One row per (copy, agent) of the per-copy observation dicts (absent agents: zeros)."""
        out = np.zeros((len(observations) * self.per_copy, self.width), dtype=np.float32)
        for (copy, agent), row in self.places(len(observations)).items():
            size = self.sizes[agent]
            if agent in observations[copy]:
                out[row, :size] = np.ravel(observations[copy][agent])
            if self.ids:
                out[row, self.id_column[agent]] = 1.0
        return out

    def values(self, dicts: Sequence[Mapping[str, Any]], dtype: Any, default: Any) -> np.ndarray:
        """One value per row from per-copy dicts (rewards, terminations), ``default`` where an
        agent is absent."""
        out = np.full(len(dicts) * self.per_copy, default, dtype=dtype)
        for (copy, agent), row in self.places(len(dicts)).items():
            out[row] = dicts[copy].get(agent, default)
        return out

    def live(self, live: Sequence[Sequence[str]]) -> np.ndarray:
        """Per row: its agent is in its copy's ``live`` agents."""
        return self.values([dict.fromkeys(agents, True) for agents in live], bool, False)

    def actions(self, rows: Any, live: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
        """Per copy, the action of each of its ``live`` agents, read from its row."""
        places = self.places(len(live))
        return [
            {agent: rows[places[(copy, agent)]] for agent in agents}
            for copy, agents in enumerate(live)
        ]


@dataclass
class RowStep:
    """One step of every copy, as rows: each acting agent's observation the step returned (its
    last one if it left), reward, termination and truncation; ``acted``: the row's agent was
    live and acted; ``ended``: ``(copy, per-agent returns, length)`` of each episode that ended
    (its copy was reset)."""

    observations: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    acted: np.ndarray
    ended: list[tuple[int, dict[str, float], int]]


def _generators(env: Any) -> dict[str, np.random.Generator]:
    """The NumPy generators held by ``env`` and the envs it wraps, by layer and attribute."""
    found, layer, depth = {}, env, 0
    while layer is not None:
        attributes = vars(layer)
        for name, value in attributes.items():
            if isinstance(value, np.random.Generator):
                found[f"{depth}.{name}"] = value
        layer = attributes.get("aec_env", attributes.get("env"))
        depth += 1
    return found


class ParallelEnvCopies:
    """``envs`` (copies of one PettingZoo Parallel env) stepped together through ``layout``'s
    rows; a copy with no agent left is reset. Keeps the copies' team episodes
    (:attr:`episodes`) and what resumes them exactly (see the module docstring)."""

    def __init__(self, envs: list[Any], layout: AgentRows) -> None:
        self.envs, self.layout = envs, layout
        self.agents = list(envs[0].possible_agents)
        self.episodes = TeamEpisodes(len(envs))
        self.observations: list[dict[str, Any]] = [{} for _ in envs]  # the live agents'
        self.starts: list[dict[str, Any]] = [{} for _ in envs]
        self.taken: list[list[dict[str, Any]]] = [[] for _ in envs]

    def reset(self, seeds: Sequence[int | None]) -> None:
        for copy, seed in enumerate(seeds):
            self._reset(copy, seed)

    def _reset(self, copy: int, seed: int | None) -> None:
        env = self.envs[copy]
        rngs = {name: g.bit_generator.state for name, g in _generators(env).items()}
        self.starts[copy], self.taken[copy] = {"seed": seed, "rngs": rngs}, []
        self.observations[copy], _ = env.reset(seed=seed)

    def live(self) -> list[list[str]]:
        """Each copy's live agents, which are asked for actions."""
        return [list(env.agents) for env in self.envs]

    def rows(self) -> np.ndarray:
        """The live agents' observations as rows."""
        return self.layout.rows(self.observations)

    def step(self, action_rows: Any) -> RowStep:
        """Step every copy with its live agents' actions (read from ``action_rows``)."""
        layout, live = self.layout, self.live()
        results, ended = [], []
        for copy, (env, actions) in enumerate(
            zip(self.envs, layout.actions(action_rows, live), strict=True)
        ):
            self.taken[copy].append({agent: encode(action) for agent, action in actions.items()})
            next_obs, reward, terminated, truncated, _ = env.step(actions)
            results.append((next_obs, reward, terminated, truncated))
            self.episodes.add(copy, {agent: reward[agent] for agent in actions})
            self.observations[copy] = {agent: next_obs[agent] for agent in env.agents}
            if not env.agents:
                length = self.episodes.lengths[copy]
                ended.append((copy, self.episodes.end(copy), length))
                self._reset(copy, None)
        next_obs, rewards, terminated, truncated = (list(r) for r in zip(*results, strict=True))
        return RowStep(
            layout.rows(next_obs),
            layout.values(rewards, np.float32, 0.0),
            layout.values(terminated, bool, False),
            layout.values(truncated, bool, False),
            layout.live(live),
            ended,
        )

    def capture(self) -> list[dict[str, Any]]:
        """Plain data (JSON) that :meth:`restore` rebuilds every copy's state from."""
        return [
            {**start, "actions": taken}
            for start, taken in zip(self.starts, self.taken, strict=True)
        ]

    def restore(self, state: list[dict[str, Any]]) -> None:
        """Into fresh copies of the env: each copy's RNGs as they were before its episode's
        reset, that reset, then the episode's actions again. (Returns are not counted again;
        the run restores :attr:`episodes` itself.)"""
        for copy, (env, saved) in enumerate(zip(self.envs, state, strict=True)):
            generators = _generators(env)
            if set(generators) != set(saved["rngs"]):
                raise ValueError("the env's RNGs differ from the saved ones")
            for name, rng in saved["rngs"].items():
                generators[name].bit_generator.state = rng
            self._reset(copy, saved["seed"])
            for actions in saved["actions"]:
                decoded = {agent: decode(action) for agent, action in actions.items()}
                self.taken[copy].append(actions)
                next_obs, *_ = env.step(decoded)
                self.observations[copy] = {agent: next_obs[agent] for agent in env.agents}


class ParallelVecEnv(VecEnv):
    """``n_copies`` copies of a PettingZoo ParallelEnv as one block with ids; VecEnv index
    ``copy * n_agents + agent`` (SB3's ``dones``, ``terminal_observation`` and
    ``TimeLimit.truncated`` per index; the team return as SB3's episode info on the copy's first
    index, so ``rollout/ep_rew_mean`` is the team return)."""

    def __init__(self, make_env: Callable[[], Any], n_copies: int, env_id: str = "") -> None:
        envs = [make_env() for _ in range(n_copies)]
        self.agents = list(envs[0].possible_agents)
        self.n_agents = len(self.agents)
        self.layout = AgentRows(envs[0], [self.agents], ids=True, env_id=env_id)
        self.copies = ParallelEnvCopies(envs, self.layout)
        self.render_mode = None
        super().__init__(
            n_copies * self.n_agents,
            self.layout.row_space(self.agents[0]),
            envs[0].action_space(self.agents[0]),
        )
        self._actions: np.ndarray | None = None
        self._start = time.time()

    @property
    def envs(self) -> list[Any]:
        return self.copies.envs

    @property
    def episodes(self) -> TeamEpisodes:
        return self.copies.episodes

    def reset(self) -> VecEnvObs:
        self.copies.reset([self._seeds[copy * self.n_agents] for copy in range(len(self.envs))])
        self._reset_seeds()
        return self.copies.rows()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None
        step = self.copies.step(self._actions)
        dones = (step.terminated | step.truncated) & step.acted
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.nonzero(dones)[0]:
            infos[i]["terminal_observation"] = step.observations[i]
            infos[i]["TimeLimit.truncated"] = bool(step.truncated[i] and not step.terminated[i])
        for copy, returns, length in step.ended:
            infos[copy * self.n_agents]["episode"] = {
                "r": sum(returns.values()),
                "l": length,
                "t": round(time.time() - self._start, 6),
            }
        return self.copies.rows(), step.rewards, dones, infos

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
