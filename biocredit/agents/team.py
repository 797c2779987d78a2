"""A team of online agents for a multi-agent env: independent learners or parameter sharing.

    multiagent:
      scheme: shared            # or independent
      groups:                   # optional; default: one group per role (name without "_<n>")
        predators: {agents: "adversary_*", learner: hebbian3f}
        prey: {agents: agent_0, agent: neuromodulated-ac, learner: dfa, agent_kwargs: {...}}

A group's agent is the run's named agent (or the group's ``agent``) with the run's
``agent_kwargs`` refined by the group's, and its learner (if set) in the actor and critic.

- ``independent``: one agent object (a *unit*) per PettingZoo agent, each with its own networks,
  learners and optimizers (Tan 1993, independent Q-learners).
- ``shared``: one unit per group, acting for all of the group's agents; the agent's one-hot
  index within the group is appended to its observation (parameter sharing, Gupta et al. 2017).

A unit is any named :class:`~biocredit.agents.base.OnlineAgent` without a memory, and the team
is one too: it takes a batch of rows, one per (env copy, PettingZoo agent), in blocks of its
units' agents (:func:`team_units`, in order), each block copy-major, rows zero-padded to the widest;
``biocredit.envs.parallel_vec_env.AgentRows`` builds them (observation, one-hot id when shared)
from PettingZoo's dicts, and reads the actions back. Each unit keeps one row per (env copy,
agent) it acts for, with that row's own eligibility traces. Only live agents are asked: a row
whose agent is not in its env copy's ``env.agents`` is padding, its action is dropped and it
learns nothing (``active`` is false).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from biocredit.agents.base import OnlineAgent
from biocredit.agents.config import AgentConfig
from biocredit.agents.networks import TrainedNetwork
from biocredit.agents.registry import agent_config, make_agent
from biocredit.errors import ConfigError
from biocredit.mappings import merge
from biocredit.schema import Config, build, choice, option

SCHEMES = ("shared", "independent")


@dataclass
class GroupConfig(Config):
    """Agents (``fnmatch`` patterns over PettingZoo names) and what learns for them."""

    agents: list[str] | str = option(
        help="name patterns over the env's agents, e.g. 'adversary_*' (one or a list)"
    )
    agent: str | None = option(None, help="the group's named agent (default: the run's)")
    agent_kwargs: dict[str, Any] = option({}, help="refine the run's agent_kwargs")
    learner: str | None = option(None, help="the learner of the group's actor and critic")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.agents, str):
            self.agents = [self.agents]


@dataclass
class MultiAgentConfig(Config):
    """The ``multiagent`` section of a run config."""

    scheme: str = choice(
        "shared",
        SCHEMES,
        kind="multiagent scheme",
        help="shared: one network per group; independent: one per agent",
    )
    groups: dict[str, GroupConfig] = option(
        {}, help="groups by name (default: one group per role, the name without '_<n>')"
    )
    aec_wrappers: list[str] | str = option(
        [], help="PettingZoo wrappers applied to an AEC env (one or a list)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.aec_wrappers, str):
            self.aec_wrappers = [self.aec_wrappers]


def multiagent_config(data: Mapping[str, Any]) -> MultiAgentConfig:
    """Validate the ``multiagent`` mapping of a run config."""
    return build(MultiAgentConfig, {k: v for k, v in data.items() if v is not None}, "multiagent")


def role_of(agent: str) -> str:
    """PettingZoo's naming convention: ``adversary_2`` has role ``adversary``."""
    return re.sub(r"_\d+$", "", agent)


def assign_groups(agents: Sequence[str], groups: Mapping[str, GroupConfig]) -> dict[str, list[str]]:
    """Group name -> its agents (in ``agents`` order); every agent in exactly one group."""
    if not groups:
        by_role: dict[str, list[str]] = {}
        for agent in agents:
            by_role.setdefault(role_of(agent), []).append(agent)
        return by_role
    members: dict[str, list[str]] = {name: [] for name in groups}
    for agent in agents:
        matched = [
            name
            for name, group in groups.items()
            if any(fnmatch.fnmatchcase(agent, pattern) for pattern in group.agents)
        ]
        if len(matched) != 1:
            found = f"matches groups {matched}" if matched else "matches no group"
            raise ConfigError(
                f"Agent '{agent}' {found}; every agent of the env ({', '.join(agents)}) must "
                "match exactly one of multiagent.groups' 'agents' patterns."
            )
        members[matched[0]].append(agent)
    for name, found in members.items():
        if not found:
            raise ConfigError(
                f"multiagent.groups.{name} (agents {groups[name].agents}) matches none of the "
                f"env's agents: {', '.join(agents)}."
            )
    return members


def team_units(agents: Sequence[str], config: MultiAgentConfig) -> dict[str, list[str]]:
    """Unit name -> the PettingZoo agents it acts for: a group (``shared``) or an agent
    (``independent``)."""
    units = {}
    for name, members in assign_groups(agents, config.groups).items():
        if config.scheme == "shared":
            units[name] = members
        else:
            units.update({agent: [agent] for agent in members})
    return units


def check_team_member(
    name: str, agent_kwargs: dict[str, Any], learner: str | None, group: str
) -> None:
    """A group's agent must be a named agent without a memory."""
    cfg = agent_config(name, agent_kwargs, learner)
    memory = cfg.modules.memory if isinstance(cfg, AgentConfig) else None
    if memory is not None and memory.kind != "passthrough":
        raise ConfigError(
            f"Group '{group}': memory modules are not supported in multi-agent teams yet (team "
            "evaluation does not carry a memory state between steps). Use a memoryless agent, "
            "e.g. modules.memory: null."
        )


@dataclass
class TeamConfig(Config):
    """What a team is rebuilt from: the run's agent, ``agent_kwargs`` and learner, and its
    ``multiagent`` section."""

    agent: str = option(help="the run's named agent")
    agent_kwargs: dict[str, Any] = option({}, help="the run's agent_kwargs")
    learner: str | None = option(None, help="the learner of the agents' learner roles")
    multiagent: MultiAgentConfig = option(factory=MultiAgentConfig, help="scheme and groups")


def team_config_from_dict(data: dict[str, Any]) -> TeamConfig:
    return build(TeamConfig, data, "team")


class Team(OnlineAgent):
    """The units acting for every PettingZoo agent of ``n_envs`` env copies.

    :param observation_space: each agent's row space (its observation and, when shared, its
        one-hot id: ``AgentRows.row_space``), a Dict in the order of the env's
        ``possible_agents`` (made from an ``OrderedDict``: gymnasium sorts a plain dict's keys)
    :param action_space: a Dict of each agent's action space
    :param n_envs: env copies
    """

    config_from_dict = staticmethod(team_config_from_dict)

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Dict,
        config: TeamConfig,
        n_envs: int = 1,
    ) -> None:
        super().__init__()
        self.observation_space, self.action_space = observation_space, action_space
        self.config, self.n_envs = config, n_envs
        multi = config.multiagent
        agents = list(observation_space.keys())
        self.groups = assign_groups(agents, multi.groups)
        self.members = team_units(agents, multi)  # unit -> the PettingZoo agents it acts for
        self.units = nn.ModuleDict()
        self.unit_group: dict[str, str] = {}
        for name, group_agents in self.groups.items():
            group = multi.groups.get(name, GroupConfig(agents=[]))
            kwargs = merge(config.agent_kwargs, group.agent_kwargs)
            agent, learner = group.agent or config.agent, group.learner or config.learner
            check_team_member(agent, kwargs, learner, name)
            for unit, acting in self.members.items():
                if acting[0] not in group_agents:
                    continue
                obs, action = observation_space[acting[0]], action_space[acting[0]]
                assert all(
                    (observation_space[a], action_space[a]) == (obs, action) for a in acting
                ), "AgentRows checks that a shared block's agents have the same spaces"
                self.units[unit] = make_agent(
                    agent, kwargs, learner, obs, action, n_envs * len(acting)
                )
                self.unit_group[unit] = name
        self._widths = [int(np.prod(unit.observation_space.shape)) for unit in self.units.values()]
        discrete = [isinstance(action_space[a[0]], spaces.Discrete) for a in self.members.values()]
        shapes = {
            (d, action_space[a[0]].shape)
            for d, a in zip(discrete, self.members.values(), strict=True)
        }
        self._joined = len(shapes) == 1  # units' actions concatenate; else padded float rows
        self._discrete = discrete
        self._action_sizes = [
            1 if d else int(np.prod(action_space[a[0]].shape))
            for d, a in zip(discrete, self.members.values(), strict=True)
        ]

    # rows <-> units ------------------------------------------------------------------------

    def _sizes(self, n_rows: int) -> list[int]:
        per_copy = sum(len(agents) for agents in self.members.values())
        copies = n_rows // per_copy
        return [copies * len(agents) for agents in self.members.values()]

    def _inputs(self, rows: Tensor) -> list[Tensor]:
        """Each unit's rows, padding cut, in fresh memory (see DEVELOPERS.md on alignment)."""
        parts = torch.split(rows, self._sizes(rows.shape[0]))
        return [
            part[:, :width].clone(memory_format=torch.contiguous_format)
            for part, width in zip(parts, self._widths, strict=True)
        ]

    def _split(self, values: Tensor | None) -> list[Tensor | None]:
        if values is None:
            return [None] * len(self.units)
        return list(torch.split(values, self._sizes(values.shape[0])))

    def _join(self, actions: list[Tensor]) -> Tensor:
        """The units' actions as one tensor: concatenated, or (when their kinds or shapes
        differ) as float rows zero-padded to the widest action."""
        if self._joined:
            return torch.cat(actions)
        out = torch.zeros(sum(len(a) for a in actions), max(self._action_sizes))
        start = 0
        for action, size in zip(actions, self._action_sizes, strict=True):
            out[start : start + len(action), :size] = action.reshape(len(action), -1).float()
            start += len(action)
        return out

    def _unit_actions(self, action: Tensor) -> list[Tensor]:
        parts = torch.split(action, self._sizes(action.shape[0]))
        if self._joined:
            return list(parts)
        out = []
        for part, unit, size, discrete in zip(
            parts, self.units.values(), self._action_sizes, self._discrete, strict=True
        ):
            action_part = part[:, :size]
            out.append(
                action_part[:, 0].long()
                if discrete
                else action_part.reshape(-1, *unit.action_space.shape)
            )
        return out

    @staticmethod
    def _stack(actions: list[np.ndarray]) -> np.ndarray:
        """Per-unit env actions as one array (an object array of rows when shapes differ)."""
        if len({a.shape[1:] for a in actions}) == 1:
            return np.concatenate(actions)
        rows = [row for part in actions for row in part]
        out = np.empty(len(rows), dtype=object)
        out[:] = rows
        return out

    # the online contract --------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Every unit samples actions for its rows (live or not; the env adapter drops those of
        agents that are not live)."""
        inputs = self._inputs(obs)
        return self._join(
            [unit.act(x) for unit, x in zip(self.units.values(), inputs, strict=True)]
        )

    def env_action(self, action: Tensor) -> np.ndarray:
        parts = self._unit_actions(action)
        return self._stack(
            [u.env_action(a) for u, a in zip(self.units.values(), parts, strict=True)]
        )

    @torch.no_grad()
    def learn(
        self,
        reward: Tensor,
        terminated: Tensor,
        next_obs: Tensor,
        done: Tensor,
        active: Tensor | None = None,
    ) -> None:
        """Every unit learns from its rows of the step just taken; an agent's episode ends
        when it is terminated or truncated, bootstrapping uses the observation the step returned
        for it, and rows of agents that were not live (``active`` false) change nothing."""
        splits = zip(
            self.units.values(),
            self._split(reward),
            self._split(terminated),
            self._inputs(next_obs),
            self._split(done),
            self._split(active),
            strict=True,
        )
        for unit, *rows in splits:
            unit.learn(*rows)

    @torch.no_grad()
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """Actions for a batch of rows (any number of env copies), training state untouched."""
        inputs = self._inputs(torch.as_tensor(np.asarray(observation), dtype=torch.float32))
        actions = [
            unit.predict(x.numpy(), deterministic=deterministic)[0]
            for unit, x in zip(self.units.values(), inputs, strict=True)
        ]
        return self._stack(actions), None

    @property
    def networks(self) -> nn.ModuleDict:  # type: ignore[override]
        """Every unit's networks, as ``<unit>/<role>``."""
        return nn.ModuleDict(
            {
                f"{u}/{role}": net
                for u, unit in self.units.items()
                for role, net in unit.networks.items()
            }
        )

    def _by_unit(self, values: str) -> dict[str, Any]:
        return {
            f"{name}/{key}": value
            for name, unit in self.units.items()
            for key, value in getattr(unit, values)().items()
        }

    def trained_networks(self) -> dict[str, TrainedNetwork]:
        return self._by_unit("trained_networks")

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._by_unit("optimizers")

    def guarded_modules(self) -> dict[str, nn.Module]:
        return self._by_unit("guarded_modules")

    def module_learners(self) -> dict[str, str]:
        return self._by_unit("module_learners")

    def diagnostics(self) -> dict[str, float]:
        return {
            f"{key}/{name}": value
            for name, unit in self.units.items()
            for key, value in unit.diagnostics().items()
        }

    def learner_names(self) -> dict[str, str]:
        """Group -> the learners its units name (actor, critic ...), e.g.
        ``hebbian3f/hebbian3f``."""
        names = {}
        for unit, group in self.unit_group.items():
            names.setdefault(group, "/".join(self.units[unit].learner_names().values()))
        return {group: names[group] for group in self.groups}
