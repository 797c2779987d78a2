"""PPO/A2C with a biocredit policy shared by every agent of a PettingZoo env.

The agents' transitions come through :class:`~biocredit.envs.parallel_vec_env.ParallelVecEnv`
(one VecEnv index per agent and env copy, one-hot agent id appended), so one policy network,
trained by its learner, acts and learns for all of them (parameter sharing). ``steps`` counts
agent steps, as SB3's ``num_timesteps`` does. ``rollout/ep_rew_mean`` is the team return;
per-agent returns are logged as ``agents/<agent>`` after every rollout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from rich.console import Console
from stable_baselines3.common.callbacks import BaseCallback

from biocredit.agents.team import assign_groups, multiagent_config
from biocredit.envs.multiagent import check_multiagent_env_id, make_parallel_env
from biocredit.envs.normalize import normalize_options
from biocredit.envs.parallel_vec_env import ParallelVecEnv
from biocredit.errors import ConfigError
from biocredit.training.config import RunConfig
from biocredit.training.run import EVAL_SEED_OFFSET
from biocredit.training.sb3_runner import ON_POLICY, SB3Run, algo_kwargs, policy_kwargs
from biocredit.training.team_eval import evaluate_team, recent_returns, team_report

NO_RESUME = (
    "Multi-agent SB3 runs (PPO or A2C on a PettingZoo env) cannot be resumed: their checkpoints "
    "hold the shared policy and its optimizer for `biocredit eval`, but not SB3's rollout state "
    "over the PettingZoo envs. Start a new run with the larger --steps instead; a team of native "
    "agents (--agent) resumes exactly."
)


def validate_multiagent_sb3(config: RunConfig) -> None:
    """Parameter sharing of one on-policy SB3 policy over all agents, checked upfront."""
    check_multiagent_env_id(config.env)
    if config.algo not in ON_POLICY:
        raise ConfigError(
            f"algo '{config.algo}' on a PettingZoo env: the multi-agent SB3 path shares one "
            f"on-policy policy over the agents; use {' or '.join(ON_POLICY)}."
        )
    multi = multiagent_config(config.multiagent)
    if multi.scheme != "shared" or multi.groups:
        raise ConfigError(
            "With an SB3 algorithm every agent shares one policy (multiagent.scheme: shared, "
            "no groups). For independent learners or per-group learners use a native agent, "
            "e.g. --agent neuromodulated-ac."
        )
    if config.on_divergence == "rollback":
        raise ConfigError(f"on_divergence: rollback resumes a checkpoint. {NO_RESUME}")
    if normalize_options(config.normalize) is not None:
        raise ConfigError(
            "normalize is not supported on PettingZoo envs (VecNormalize would mix the agents' "
            "statistics); remove 'normalize' from the config."
        )
    algo_kwargs(config)
    policy_kwargs(config)
    make_vec_env(config, 1).close()


def make_vec_env(config: RunConfig, n_copies: int) -> ParallelVecEnv:
    wrappers = config.multiagent.get("aec_wrappers") or []
    return ParallelVecEnv(
        lambda: make_parallel_env(config.env, config.env_kwargs, wrappers), n_copies, config.env
    )


class TeamReturnsCallback(BaseCallback):
    """Logs per-group and per-agent training returns after every rollout."""

    def __init__(self, env: ParallelVecEnv, groups: dict[str, list[str]]) -> None:
        super().__init__()
        self.env, self.groups = env, groups

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        for key, value in recent_returns(self.env.episodes, self.groups).items():
            if key != "rollout/ep_rew_mean":  # SB3 logs it from the team's episode infos
                self.logger.record(key, value)


class MultiAgentSB3Run(SB3Run):
    """An SB3 run whose env is a PettingZoo env and whose policy is shared by its agents."""

    env: ParallelVecEnv  # never normalised: validate_multiagent_sb3 refuses `normalize`

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.groups = assign_groups(self.env.agents, {})
        self.last_eval: dict[str, Any] = {}
        self.progress_detail = lambda: agent_returns_text(self.env)

    validate = staticmethod(validate_multiagent_sb3)

    def make_envs(self, config: RunConfig) -> ParallelVecEnv:
        return make_vec_env(config, config.n_envs)

    @classmethod
    def check_resumable(cls) -> None:
        raise ConfigError(NO_RESUME)

    def steps_done(self) -> int:
        return int(self.algo.num_timesteps - (self.env.num_envs if self.halted else 0))

    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"num_timesteps": self.algo.num_timesteps}

    def summary_fields(self) -> dict[str, Any]:
        return {
            **super().summary_fields(),
            "scheme": "shared",
            "episodes": self.env.episodes.count,
            "env_steps": self.steps_done() // self.env.n_agents,
            "final_group_returns": self.last_eval.get("group_returns"),
            "final_agent_returns": self.last_eval.get("agent_returns"),
        }

    def scale_learning_rates(self, factor: float) -> None:
        raise ConfigError(NO_RESUME)

    def team_policy(self, deterministic: bool = True) -> Any:
        """Live agents' observations -> their actions, from the shared policy."""
        layout = self.env.layout

        def act(observations: dict[str, Any]) -> dict[str, Any]:
            rows = layout.rows([observations])
            actions, _ = self.algo.predict(rows, deterministic=deterministic)
            return layout.actions(actions, [list(observations)])[0]

        return act

    def evaluate(self) -> list[float]:
        config = self.config
        with torch.no_grad():
            episodes = evaluate_team(
                config, self.team_policy(), config.seed + EVAL_SEED_OFFSET, config.eval_episodes
            )
        self.last_eval = team_report(episodes, self.groups)
        return self.last_eval["returns"]

    def run(
        self,
        console: Console | None = None,
        progress: bool = True,
        callbacks: list[BaseCallback] | None = None,
    ) -> dict[str, Any]:
        team = TeamReturnsCallback(self.env, self.groups)
        return super().run(console, progress, [*(callbacks or []), team])


def agent_returns_text(env: ParallelVecEnv) -> str:
    """Recent per-agent means, e.g. ``agent_0 -20.1, agent_1 -19.8``."""
    return ", ".join(
        f"{a} {np.mean(env.episodes.agent_returns(a)):.1f}"
        for a in env.agents
        if env.episodes.agent_returns(a)
    )
