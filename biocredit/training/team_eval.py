"""Evaluate a team on a PettingZoo Parallel env: per-agent, per-group and team returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from biocredit.envs.multiagent import make_parallel_env
from biocredit.envs.team_episodes import TeamEpisodes
from biocredit.training.config import RunConfig

Policy = Callable[[Mapping[str, Any]], dict[str, Any]]


def team_episodes(env: Any, policy: Policy, episodes: int, seed: int) -> list[dict[str, float]]:
    """Per-agent returns of ``episodes`` episodes; the first reset is seeded ``seed``.

    ``policy`` gets the live agents' observations and returns their actions.
    """
    tracker = TeamEpisodes(1)
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        if episode:
            obs, _ = env.reset()
        while env.agents:
            obs, rewards, _, _, _ = env.step(policy(obs))
            tracker.add(0, rewards)
            obs = {agent: obs[agent] for agent in env.agents}  # only live agents are asked
        tracker.end(0)
    return list(tracker.finished)


def random_policy(env: Any, seed: int) -> Policy:
    """Uniformly random actions, each agent's action space seeded from ``seed``."""
    for i, agent in enumerate(env.possible_agents):
        env.action_space(agent).seed(seed + i)
    return lambda obs: {agent: env.action_space(agent).sample() for agent in obs}


def evaluate_team(config: RunConfig, policy: Policy | None, seed: int, episodes: int) -> list:
    """Per-agent returns of ``episodes`` episodes of ``policy`` (``None``: a random team) on a
    fresh copy of the run's env."""
    aec_wrappers = config.multiagent.get("aec_wrappers") or []
    env = make_parallel_env(config.env, config.env_kwargs, aec_wrappers)
    chosen = policy if policy is not None else random_policy(env, seed)
    returns = team_episodes(env, chosen, episodes, seed)
    env.close()
    return returns


def team_report(
    episodes: Sequence[Mapping[str, float]], groups: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """Team return (sum over agents) mean/std, per-group (sum over the group's agents) and
    per-agent means, over ``episodes``."""
    team = [sum(episode.values()) for episode in episodes]
    agents = sorted({agent for episode in episodes for agent in episode})
    return {
        "return_mean": float(np.mean(team)),
        "return_std": float(np.std(team)),
        "returns": [float(r) for r in team],
        "group_returns": {
            group: float(np.mean([sum(e.get(a, 0.0) for a in members) for e in episodes]))
            for group, members in groups.items()
        },
        "agent_returns": {
            agent: float(np.mean([e[agent] for e in episodes if agent in e])) for agent in agents
        },
    }


def recent_returns(tracker: TeamEpisodes, groups: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Logger rows of the last finished training episodes: ``rollout/ep_rew_mean`` (the team
    return), ``groups/<group>`` and ``agents/<agent>``; empty before the first episode ends."""
    if not tracker.finished:
        return {}
    report = team_report(tracker.finished, groups)
    rows = {"rollout/ep_rew_mean": report["return_mean"]}
    rows.update({f"groups/{g}": r for g, r in report["group_returns"].items()})
    rows.update({f"agents/{a}": r for a, r in report["agent_returns"].items()})
    return rows


def progress_detail(rows: Mapping[str, float]) -> str:
    """The per-group returns for the progress bar, e.g. ``predators 12.0, prey -30.1``."""
    return ", ".join(f"{k.split('/', 1)[1]} {v:.1f}" for k, v in rows.items() if "groups/" in k)
