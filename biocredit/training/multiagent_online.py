"""The online loop for a team of native agents on PettingZoo Parallel envs.

Every step, each of ``n_envs`` env copies is asked for an action of each live agent only
(``env.agents``), steps with them, and the team learns from the transition at once (batch of one
per agent row, no replay). The team is an :class:`~biocredit.agents.base.OnlineAgent`, and this
loop talks to it through that contract only: rows in
(:class:`~biocredit.envs.parallel_vec_env.AgentRows`, one per env copy and agent), actions out,
``learn`` with ``active`` marking the live agents' rows. An agent's episode ends when PettingZoo
reports it terminated or truncated; a copy with no agent left is reset. ``steps`` counts agent
steps.

A checkpoint holds everything the loop needs to continue bitwise: the team (every unit's
weights, learner state and traces), optimizers, RNGs, counters, the episodes in progress, and
each env copy as :meth:`~biocredit.envs.parallel_vec_env.ParallelEnvCopies.capture` keeps it
(RNG state before its episode's reset and the actions taken since, replayed on resume; the
replayed observations must equal the saved ones, else the resume is refused).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from biocredit.agents.team import Team, TeamConfig, multiagent_config, team_units
from biocredit.checkpoints import read_meta, require_checkpoint, rng_state, set_rng_state
from biocredit.envs.multiagent import check_multiagent_env_id, make_parallel_env
from biocredit.envs.parallel_vec_env import AgentRows, ParallelEnvCopies
from biocredit.errors import RunDirError
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


def build_envs(config: RunConfig, n: int) -> list[Any]:
    wrappers = config.multiagent.get("aec_wrappers") or []
    return [make_parallel_env(config.env, config.env_kwargs, wrappers) for _ in range(n)]


def build_team(config: RunConfig, env: Any, n_copies: int) -> tuple[Team, AgentRows]:
    """The team for ``n_copies`` copies of ``env``, and the rows it reads (observation, and the
    agent's one-hot id in its group when the scheme is shared)."""
    assert config.agent is not None
    multi = multiagent_config(config.multiagent)
    agents = list(env.possible_agents)
    blocks = list(team_units(agents, multi).values())
    layout = AgentRows(env, blocks, ids=multi.scheme == "shared", env_id=config.env)
    team = Team(  # OrderedDicts: a Dict of a plain dict would sort the agents by name
        spaces.Dict(OrderedDict((a, layout.row_space(a)) for a in agents)),
        spaces.Dict(OrderedDict((a, env.action_space(a)) for a in agents)),
        TeamConfig(config.agent, config.agent_kwargs, config.learner, multi),
        n_copies,
    )
    return team, layout


def validate_multiagent_online(config: RunConfig) -> None:
    """Check the env, the multiagent section and every group's agent before writing anything."""
    check_multiagent_env_id(config.env)
    env = build_envs(config, 1)[0]
    build_team(config, env, 1)
    env.close()


class MultiAgentOnlineRun(SteppedRun):
    """A team of native agents trained online on a PettingZoo env: fresh (:meth:`start`) or
    from a checkpoint (:meth:`resume`, exact). Checkpoints can be taken after any step."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        torch.manual_seed(config.seed)
        envs = build_envs(config, config.n_envs)
        self.team, layout = build_team(config, envs[0], config.n_envs)
        self.copies = ParallelEnvCopies(envs, layout)
        self.copies.reset([config.seed + i for i in range(config.n_envs)])
        self.obs = self.copies.rows()
        self.steps = self.env_steps = 0
        self.next_log = LOG_EVERY_STEPS
        self.last_eval: dict[str, Any] = {}
        self.guard = DivergenceGuard(self.team.guarded_modules(), lambda: self.steps)

    validate = staticmethod(validate_multiagent_online)

    @classmethod
    def resume(cls, config: RunConfig, run_dir: Path) -> MultiAgentOnlineRun:
        """As every run resumes (:meth:`TrainingRun.resume`), once its checkpoint is known to
        hold the env copies (earlier biocredit versions did not keep them)."""
        if "envs" not in read_meta(require_checkpoint(Path(run_dir))).get("resume", {}):
            raise RunDirError(
                f"'{run_dir}' is a multi-agent run of an earlier biocredit, whose checkpoints did "
                "not keep the PettingZoo envs' state; it cannot be resumed. Start a new run with "
                "the larger --steps instead."
            )
        return super().resume(config, run_dir)  # type: ignore[return-value]

    @property
    def envs(self) -> list[Any]:
        return self.copies.envs

    @property
    def episodes(self) -> Any:
        return self.copies.episodes

    def model(self) -> nn.Module:
        return self.team

    def predictor(self) -> Team:
        return self.team

    def steps_done(self) -> int:
        return self.steps

    def model_meta(self) -> dict[str, Any]:
        return self.team.checkpoint_meta()  # so that Team.load(run_dir) works

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.team.optimizers()

    def identity(self) -> dict[str, Any]:
        modules = self.team.module_learners()
        return {"env": self.config.env, "agent": self.config.agent, "modules": modules}

    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {"obs": torch.as_tensor(self.obs).clone()}
        state = {
            "steps": self.steps,
            "env_steps": self.env_steps,
            "next_log": self.next_log,
            "episodes": self.episodes.state(),
            "envs": self.copies.capture(),
        }
        return tensors, state

    def load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        saved_rng = rng_state()  # an env replaying its episode must not move the run's RNGs
        try:
            self.copies.restore(state["envs"])
        except ValueError as exc:
            raise RunDirError(
                f"'{self.run_dir}': the env copies cannot be restored ({exc})."
            ) from None
        set_rng_state(*saved_rng)
        # a fresh, aligned copy: matmul kernels may sum in another order on unaligned memory
        self.obs = tensors["obs"].numpy().copy()
        if not np.array_equal(self.copies.rows(), self.obs):
            raise RunDirError(
                f"'{self.run_dir}': replaying the current episodes of '{self.config.env}' from "
                "their reset did not give back the observations saved with the checkpoint (the "
                "env draws randomness outside its own seeded RNG), so the run cannot be "
                "resumed exactly. Start a new run with the larger --steps instead."
            )
        self.episodes.load_state(state["episodes"])
        self.steps, self.env_steps = state["steps"], state["env_steps"]
        self.next_log = state["next_log"]

    def summary_fields(self) -> dict[str, Any]:
        return {
            "algo": "online",
            "agent": self.config.agent,
            "scheme": self.team.config.multiagent.scheme,
            "learner": self.config.learner,
            "group_learners": self.team.learner_names(),
            "episodes": self.episodes.count,
            "env_steps": self.env_steps,
            "final_group_returns": self.last_eval.get("group_returns"),
            "final_agent_returns": self.last_eval.get("agent_returns"),
        }

    def scale_learning_rates(self, factor: float) -> None:
        for optimizer in self.optimizers().values():
            for group in optimizer.param_groups:
                group["lr"] *= factor

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
        """Live agents' observations (one env copy) -> their actions."""
        layout = self.copies.layout

        def act(observations: dict[str, Any]) -> dict[str, Any]:
            actions, _ = self.team.predict(layout.rows([observations]), deterministic=deterministic)
            return layout.actions(actions, [list(observations)])[0]

        return act

    def step(self) -> None:
        """Act for every live agent of every copy, step, learn, check for divergence."""
        team, guard = self.team, self.guard
        guard.check_step()
        action = team.act(torch.from_numpy(self.obs))
        result = self.copies.step(team.env_action(action))
        acted = result.acted
        self.env_steps += len(self.envs)
        self.steps += int(acted.sum())
        guard.check_values(observation=result.observations[acted], reward=result.rewards[acted])
        team.learn(
            torch.from_numpy(result.rewards),
            torch.from_numpy(result.terminated),
            torch.from_numpy(result.observations),
            torch.from_numpy(result.terminated | result.truncated),
            torch.from_numpy(acted),
        )
        self.obs = self.copies.rows()

    def learning(self) -> Team:
        return self.team

    def record(self, logger: Any, elapsed: float) -> tuple[float | None, str]:
        rows = recent_returns(self.episodes, self.team.groups)
        for key, value in {**rows, **self.team.diagnostics()}.items():
            logger.record(key, value)
        logger.record("time/total_timesteps", self.steps)
        logger.record("time/env_steps", self.env_steps)
        logger.record("time/episodes", self.episodes.count)
        logger.record("time/fps", int(self.steps / max(elapsed, 1e-9)))
        return rows.get("rollout/ep_rew_mean"), progress_detail(rows)

    def close(self) -> None:
        for env in self.envs:
            env.close()
