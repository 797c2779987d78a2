"""A team of modular agents for a multi-agent env: independent learners or parameter sharing.

    multiagent:
      scheme: shared            # or independent
      groups:                   # optional; default: one group per role (name without "_<n>")
        predators: {agents: "adversary_*", learner: hebbian3f}
        prey: {agents: agent_0, agent: neuromodulated-ac, learner: dfa, agent_kwargs: {...}}

A group's agent is the run's named agent (or the group's ``agent``) with the run's
``agent_kwargs`` refined by the group's, and its learner (if set) in the actor and critic.

- ``independent``: one :class:`ModularAgent` per PettingZoo agent, each with its own networks,
  learners and optimizers (Tan 1993, independent Q-learners).
- ``shared``: one :class:`ModularAgent` per group, acting for all of the group's agents; the
  agent's one-hot index within the group is appended to its observation (parameter sharing,
  Gupta et al. 2017).

Each agent object keeps one row per (env copy, PettingZoo agent) it acts for, with that row's
own eligibility traces. Only live agents are asked: a row whose agent is not in the env copy's
``env.agents`` is padding, its action is dropped and it learns nothing (``active`` is false).
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

from biocredit.agents.config import AgentConfig
from biocredit.agents.modular import ModularAgent
from biocredit.agents.registry import AGENTS, agent_config
from biocredit.envs.parallel_vec_env import with_agent_id
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


def team_member_config(
    name: str, agent_kwargs: dict[str, Any], learner: str | None, group: str
) -> AgentConfig:
    """The config of a group's agent, which must be a memoryless :class:`ModularAgent`."""
    cfg = agent_config(name, agent_kwargs, learner)
    if not isinstance(cfg, AgentConfig):
        modular = [n for n, entry in AGENTS.items() if entry["class"] is ModularAgent]
        raise ConfigError(
            f"Agent '{name}' (group '{group}') cannot act in a multi-agent team: teams are made "
            f"of modular agents ({', '.join(modular)})."
        )
    memory = cfg.modules.memory
    if memory is not None and memory.kind != "passthrough":
        raise ConfigError(
            f"Group '{group}': memory modules are not supported in multi-agent teams yet (team "
            "evaluation does not carry a memory state between steps). Use a memoryless agent, "
            "e.g. modules.memory: null."
        )
    return cfg


class Team(nn.Module):
    """The agent objects acting for every PettingZoo agent of ``n_copies`` env copies.

    :param observation_spaces, action_spaces: by PettingZoo agent name (``possible_agents``)
    :param agent: the run's named agent; ``agent_kwargs`` and ``learner`` as in a run config
    """

    def __init__(
        self,
        observation_spaces: Mapping[str, spaces.Space],
        action_spaces: Mapping[str, spaces.Space],
        config: MultiAgentConfig,
        agent: str,
        agent_kwargs: dict[str, Any],
        learner: str | None,
        n_copies: int = 1,
    ) -> None:
        super().__init__()
        self.config = config
        self.groups = assign_groups(list(observation_spaces), config.groups)
        self.units = nn.ModuleDict()
        self.members: dict[str, list[str]] = {}  # unit -> the PettingZoo agents it acts for
        for name, agents in self.groups.items():
            group = config.groups.get(name, GroupConfig(agents=[]))
            kwargs = merge(agent_kwargs, group.agent_kwargs)
            cfg = team_member_config(group.agent or agent, kwargs, group.learner or learner, name)
            units = {name: agents} if config.scheme == "shared" else {a: [a] for a in agents}
            for unit, acting in units.items():
                obs_space = self._unit_space(acting, observation_spaces, action_spaces, name)
                rows = n_copies * len(acting)
                self.units[unit] = ModularAgent(obs_space, action_spaces[acting[0]], cfg, rows)
                self.members[unit] = acting
        self._active: dict[str, Tensor] = {}

    def _unit_space(
        self,
        agents: list[str],
        observation_spaces: Mapping[str, spaces.Space],
        action_spaces: Mapping[str, spaces.Space],
        group: str,
    ) -> spaces.Box:
        first = agents[0]
        for other in agents[1:]:
            if (observation_spaces[other], action_spaces[other]) != (
                observation_spaces[first],
                action_spaces[first],
            ):
                raise ConfigError(
                    f"Group '{group}' shares one network, but its agents {first} and {other} "
                    "have different observation or action spaces. Split them into separate "
                    "multiagent.groups, or use scheme: independent."
                )
        space = observation_spaces[first]
        if not isinstance(space, spaces.Box):
            raise ConfigError(f"Agent {first}'s observation space {space} is not a Box.")
        if self.config.scheme == "independent":
            return space
        return with_agent_id(space, len(agents))

    def _rows(self, unit: str, observations: Sequence[Mapping[str, Any]]) -> Tensor:
        """The unit's input rows, copy-major: each agent's observation (zeros if absent) and,
        when shared, its one-hot index in the group."""
        agents = self.members[unit]
        size = int(np.prod(self.units[unit].observation_space.shape))
        rows = np.zeros((len(observations) * len(agents), size), dtype=np.float32)
        for copy, obs in enumerate(observations):
            for i, agent in enumerate(agents):
                row = rows[copy * len(agents) + i]
                if agent in obs:
                    flat = np.ravel(obs[agent])
                    row[: flat.size] = flat
                if self.config.scheme == "shared":
                    row[size - len(agents) + i] = 1.0
        return torch.from_numpy(rows)

    def _live(self, unit: str, live: Sequence[Sequence[str]]) -> Tensor:
        agents = self.members[unit]
        return torch.tensor([agent in alive for alive in live for agent in agents])

    @torch.no_grad()
    def act(
        self, observations: Sequence[Mapping[str, Any]], live: Sequence[Sequence[str]]
    ) -> list[dict[str, Any]]:
        """Sample actions; per env copy, an action for each agent in ``live[copy]`` only."""
        actions: list[dict[str, Any]] = [{} for _ in observations]
        for unit, member in self.units.items():
            active = self._live(unit, live)
            action = member.env_action(member.act(self._rows(unit, observations)))
            self._active[unit] = active
            self._scatter(unit, action, active, actions)
        return actions

    def _scatter(
        self, unit: str, action: np.ndarray, active: Tensor, actions: list[dict[str, Any]]
    ) -> None:
        agents = self.members[unit]
        for row in torch.nonzero(active)[:, 0].tolist():
            copy, i = divmod(row, len(agents))
            actions[copy][agents[i]] = action[row]

    @torch.no_grad()
    def learn(
        self,
        rewards: Sequence[Mapping[str, float]],
        terminated: Sequence[Mapping[str, bool]],
        truncated: Sequence[Mapping[str, bool]],
        next_observations: Sequence[Mapping[str, Any]],
    ) -> None:
        """Learn from the step just taken (PettingZoo's dicts, one per env copy). An agent's
        episode ends when it is terminated or truncated; bootstrapping uses the observation the
        step returned for it."""
        for unit, member in self.units.items():
            agents, active = self.members[unit], self._active[unit]
            reward = torch.tensor(
                [float(r.get(a, 0.0)) for r in rewards for a in agents], dtype=torch.float32
            )
            term = torch.tensor([bool(t.get(a, False)) for t in terminated for a in agents])
            trunc = torch.tensor([bool(t.get(a, False)) for t in truncated for a in agents])
            done = term | trunc | ~active
            member.learn(reward, term, self._rows(unit, next_observations), done, active)

    @torch.no_grad()
    def predict(
        self, observations: Mapping[str, Any], deterministic: bool = True
    ) -> dict[str, Any]:
        """Actions for one env copy's live agents (those in ``observations``)."""
        actions: dict[str, Any] = {}
        for unit, member in self.units.items():
            agents = self.members[unit]
            rows = self._rows(unit, [observations])
            action, _ = member.predict(rows.numpy(), deterministic=deterministic)
            for i, agent in enumerate(agents):
                if agent in observations:
                    actions[agent] = action[i]
        return actions

    def learners(self) -> dict[str, str]:
        """Group -> the learners of its actor and critic, e.g. ``hebbian3f/hebbian3f``."""
        out = {}
        for name, agents in self.groups.items():
            unit = self.units[name if self.config.scheme == "shared" else agents[0]]
            out[name] = f"{unit.actor.net.learner.name}/{unit.critic.net.learner.name}"
        return out
