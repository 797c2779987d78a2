"""The online loop for a team of native agents on PettingZoo Parallel envs.

Every step, each of ``n_envs`` env copies is asked for an action of each live agent only
(``env.agents``), steps with them, and every agent object learns from the transition at once
(batch of one per agent row, no replay). An agent's episode ends when PettingZoo reports it
terminated or truncated; a copy with no agent left is reset. ``steps`` counts agent steps.
Checkpoints hold the weights, learner state and optimizers (for ``biocredit eval``); exact
resume of multi-agent runs is not supported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from biocredit.agents.team import Team, multiagent_config
from biocredit.envs.multiagent import check_multiagent_env_id, make_parallel_env
from biocredit.envs.team_episodes import TeamEpisodes
from biocredit.errors import ConfigError
from biocredit.training.config import RunConfig
from biocredit.training.guard import DivergenceGuard
from biocredit.training.run import EVAL_SEED_OFFSET
from biocredit.training.stepped import LOG_EVERY_STEPS, SteppedRun
from biocredit.training.team_eval import (
    evaluate_team,
    progress_detail,
    recent_returns,
    team_report,
)

NO_RESUME = (
    "Multi-agent runs cannot be resumed: their checkpoints hold the team's weights, learner "
    "state and optimizers for `biocredit eval`, but not the PettingZoo envs' state. Start a new "
    "run with the larger --steps instead."
)


def build_envs(config: RunConfig, n: int) -> list[Any]:
    wrappers = config.multiagent.get("aec_wrappers") or []
    return [make_parallel_env(config.env, config.env_kwargs, wrappers) for _ in range(n)]


def build_team(config: RunConfig, env: Any) -> Team:
    assert config.agent is not None
    agents = env.possible_agents
    return Team(
        {a: env.observation_space(a) for a in agents},
        {a: env.action_space(a) for a in agents},
        multiagent_config(config.multiagent),
        config.agent,
        config.agent_kwargs,
        config.learner,
        config.n_envs,
    )


def validate_multiagent_online(config: RunConfig) -> None:
    """Check the env, the multiagent section and every group's agent before writing anything."""
    check_multiagent_env_id(config.env)
    if config.on_divergence == "rollback":
        raise ConfigError(f"on_divergence: rollback resumes a checkpoint. {NO_RESUME}")
    env = build_envs(config, 1)[0]
    build_team(config, env)
    env.close()


class MultiAgentOnlineRun(SteppedRun):
    """A team of native agents trained online on a PettingZoo env."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        torch.manual_seed(config.seed)
        self.envs = build_envs(config, config.n_envs)
        self.team = build_team(config, self.envs[0])
        self.obs = [env.reset(seed=config.seed + i)[0] for i, env in enumerate(self.envs)]
        self.steps = self.env_steps = 0
        self.next_log = LOG_EVERY_STEPS
        self.episodes = TeamEpisodes(config.n_envs)
        self.last_eval: dict[str, Any] = {}
        modules = {
            f"{unit}.{role}": module
            for unit, agent in self.team.units.items()
            for role, module in agent.guarded_modules().items()
        }
        self.guard = DivergenceGuard(modules, lambda: self.steps)

    validate = staticmethod(validate_multiagent_online)

    @classmethod
    def check_resumable(cls) -> None:
        raise ConfigError(NO_RESUME)

    def model(self) -> nn.Module:
        return self.team

    def steps_done(self) -> int:
        return self.steps

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {
            f"{unit}.{role}": optimizer
            for unit, agent in self.team.units.items()
            for role, optimizer in agent.optimizers().items()
        }

    def identity(self) -> dict[str, Any]:
        return {"env": self.config.env, "agent": self.config.agent}

    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"steps": self.steps, "env_steps": self.env_steps}

    def summary_fields(self) -> dict[str, Any]:
        return {
            "algo": "online",
            "agent": self.config.agent,
            "scheme": self.team.config.scheme,
            "learner": self.config.learner,
            "group_learners": self.team.learners(),
            "episodes": self.episodes.count,
            "env_steps": self.env_steps,
            "final_group_returns": self.last_eval.get("group_returns"),
            "final_agent_returns": self.last_eval.get("agent_returns"),
        }

    def scale_learning_rates(self, factor: float) -> None:
        raise ConfigError(NO_RESUME)

    def evaluate(self) -> list[float]:
        """Team returns of ``eval_episodes`` deterministic episodes (per-group and per-agent
        returns kept for the summary)."""
        config = self.config
        episodes = evaluate_team(
            config, self.team_policy(), config.seed + EVAL_SEED_OFFSET, config.eval_episodes
        )
        self.last_eval = team_report(episodes, self.groups)
        return self.last_eval["returns"]

    @property
    def groups(self) -> dict[str, list[str]]:
        return self.team.groups

    def team_policy(self, deterministic: bool = True) -> Callable[[Any], dict[str, Any]]:
        """Live agents' observations -> their actions."""
        return lambda observations: self.team.predict(observations, deterministic)

    def step(self) -> None:
        """Act for every live agent of every copy, step, learn, check for divergence."""
        self.guard.check_step()
        live = [list(env.agents) for env in self.envs]
        actions = self.team.act(self.obs, live)
        results = [env.step(action) for env, action in zip(self.envs, actions, strict=True)]
        next_obs, rewards, terminated, truncated, _ = (list(r) for r in zip(*results, strict=True))
        self.env_steps += len(self.envs)
        self.steps += sum(len(agents) for agents in live)
        for copy, reward in enumerate(rewards):
            self.guard.check_values(
                observation=np.concatenate([np.ravel(next_obs[copy][a]) for a in live[copy]]),
                reward=np.asarray([reward[a] for a in live[copy]], dtype=np.float64),
            )
            self.episodes.add(copy, reward)
        self.team.learn(rewards, terminated, truncated, next_obs)
        for copy, env in enumerate(self.envs):
            if env.agents:
                self.obs[copy] = {agent: next_obs[copy][agent] for agent in env.agents}
            else:
                self.episodes.end(copy)
                self.obs[copy], _ = env.reset()

    def learning(self) -> Team:
        return self.team

    def record(self, logger: Any, elapsed: float) -> tuple[float | None, str]:
        rows = recent_returns(self.episodes, self.team.groups)
        for key, value in rows.items():
            logger.record(key, value)
        logger.record("time/total_timesteps", self.steps)
        logger.record("time/env_steps", self.env_steps)
        logger.record("time/episodes", self.episodes.count)
        logger.record("time/fps", int(self.steps / max(elapsed, 1e-9)))
        return rows.get("rollout/ep_rew_mean"), progress_detail(rows)

    def close(self) -> None:
        for env in self.envs:
            env.close()
