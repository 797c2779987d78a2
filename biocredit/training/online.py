"""The online loop for native agents: act and learn every step, batch of one per env.

Gymnasium vector envs with same-step autoreset: when an episode ends the returned observation
is already the next episode's first, and the final observation (for bootstrapping after a
truncation) is taken from ``info["final_obs"]``. No replay buffer. A checkpoint holds
everything the loop needs to continue bitwise: agent (weights, feedback, traces), optimizers,
RNG, every env's state, counters.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from torch import nn

from biocredit.agents import Agent, agent_config, make_agent
from biocredit.envs import check_env_id
from biocredit.envs.images import image_observations
from biocredit.envs.state import capture_env, restore_env
from biocredit.training.alignment import attach_monitors, fresh_alignment
from biocredit.training.config import RunConfig
from biocredit.training.guard import DivergenceGuard
from biocredit.training.run import EVAL_SEED_OFFSET
from biocredit.training.stepped import LOG_EVERY_STEPS, SteppedRun


def make_online_envs(config: RunConfig) -> gym.vector.VectorEnv:
    """``n_envs`` synchronous copies with same-step autoreset and episode statistics; binary
    image observations as float images, channels first."""
    check_env_id(config.env)
    envs = gym.make_vec(
        config.env,
        num_envs=config.n_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
        wrappers=[image_observations],
        **config.env_kwargs,
    )
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def build_agent(config: RunConfig, envs: gym.vector.VectorEnv) -> Agent:
    assert config.agent is not None
    return make_agent(
        config.agent,
        config.agent_kwargs,
        config.learner,
        envs.single_observation_space,
        envs.single_action_space,
        config.n_envs,
    )


def validate_online(config: RunConfig) -> None:
    """Check the env id and the agent's config before anything is written to disk."""
    check_env_id(config.env)
    assert config.agent is not None
    agent_config(config.agent, config.agent_kwargs, config.learner)


def evaluate_online(
    agent: Agent,
    config: RunConfig,
    seed: int,
    episodes: int,
    deterministic: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    on_step: Callable[[gym.vector.VectorEnv], None] | None = None,
) -> tuple[list[float], list[int]]:
    """Returns and lengths of ``episodes`` episodes of ``agent.predict`` on one copy of the env
    the agent trains on (the same Gymnasium vector env and wrappers, reset with ``seed``);
    ``on_step(envs)`` after the reset and after every step (e.g. to render a frame)."""
    envs = make_online_envs(replace(config, n_envs=1, env_kwargs=env_kwargs or config.env_kwargs))
    returns: list[float] = []
    lengths: list[int] = []
    try:
        obs, _ = envs.reset(seed=seed)
        if on_step is not None:
            on_step(envs)
        state, episode_start = None, np.ones(1, dtype=bool)  # a memory's state, carried along
        while len(returns) < episodes:
            action, state = agent.predict(obs, state, episode_start, deterministic)
            obs, _, terminated, truncated, info = envs.step(action)
            if on_step is not None:
                on_step(envs)
            episode_start = terminated | truncated
            if episode_start[0]:
                returns.append(float(info["episode"]["r"][0]))
                lengths.append(int(info["episode"]["l"][0]))
    finally:
        envs.close()
    return returns, lengths


def bootstrap_observations(next_obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """``next_obs`` with each finished env's final observation in place of its reset one."""
    if not done.any():
        return next_obs
    boot = next_obs.copy()
    for i in np.nonzero(done)[0]:
        boot[i] = info["final_obs"][i]
    return boot


class OnlineRun(SteppedRun):
    """One run of a native agent: fresh (:meth:`start`) or from a checkpoint (:meth:`resume`).

    Checkpoints can be taken after any step.
    """

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        torch.manual_seed(config.seed)
        self.envs = make_online_envs(config)
        self.agent = build_agent(config, self.envs)
        self.obs, _ = self.envs.reset(seed=config.seed)
        self.steps = self.episodes = 0
        self.next_log = LOG_EVERY_STEPS
        self.returns: deque[float] = deque(maxlen=100)
        self.guard = DivergenceGuard(self.agent.guarded_modules(), lambda: self.steps)
        self.monitors = attach_monitors(self.agent.networks, config.alignment_every)

    validate = staticmethod(validate_online)

    def model(self) -> nn.Module:
        return self.agent

    def predictor(self) -> Agent:
        return self.agent

    def evaluate(self) -> list[float]:
        """Returns of ``eval_episodes`` deterministic episodes on a copy of the training env,
        seeded apart from it."""
        config = self.config
        with torch.no_grad():
            seed = config.seed + EVAL_SEED_OFFSET
            return evaluate_online(self.agent, config, seed, config.eval_episodes)[0]

    def steps_done(self) -> int:
        return self.steps

    def model_meta(self) -> dict[str, Any]:
        return self.agent.checkpoint_meta()  # so that Agent.load(run_dir) works

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.agent.optimizers()

    def identity(self) -> dict[str, Any]:
        modules = self.agent.module_learners()
        return {"env": self.config.env, "agent": self.config.agent, "modules": modules}

    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {"obs": torch.as_tensor(self.obs).clone()}
        state = {
            "steps": self.steps,
            "episodes": self.episodes,
            "next_log": self.next_log,
            "returns": list(self.returns),
            "envs": [capture_env(env) for env in self.envs.unwrapped.envs],
            "episode_statistics": capture_env(self.envs),  # returns of unfinished episodes
        }
        return tensors, state

    def load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        for env, env_state in zip(self.envs.unwrapped.envs, state["envs"], strict=True):
            restore_env(env, env_state)
        restore_env(self.envs, state["episode_statistics"])
        # a fresh, aligned copy: matmul kernels may sum in another order on unaligned memory
        self.obs = tensors["obs"].numpy().copy()
        self.steps, self.episodes = state["steps"], state["episodes"]
        self.next_log = state["next_log"]
        self.returns.extend(state["returns"])

    def summary_fields(self) -> dict[str, Any]:
        return {
            "algo": "online",
            "agent": self.config.agent,
            **self.agent.learner_names(),
            "episodes": self.episodes,
        }

    def scale_learning_rates(self, factor: float) -> None:
        for optimizer in self.optimizers().values():
            for group in optimizer.param_groups:
                group["lr"] *= factor

    def step(self) -> None:
        """Act in every env, learn from the transition, check for divergence."""
        agent, guard = self.agent, self.guard
        guard.check_step()  # the last step's update, and any weight
        action = agent.act(torch.as_tensor(self.obs, dtype=torch.float32))
        next_obs, reward, terminated, truncated, info = self.envs.step(agent.env_action(action))
        self.steps += self.config.n_envs
        guard.check_values(observation=next_obs, reward=reward, action=action)
        done = terminated | truncated
        agent.learn(
            torch.as_tensor(reward, dtype=torch.float32),
            torch.as_tensor(terminated),
            torch.as_tensor(bootstrap_observations(next_obs, done, info), dtype=torch.float32),
            torch.as_tensor(done),
        )
        self.obs = next_obs
        if done.any():
            finished = info["_episode"]
            self.returns.extend(float(r) for r in info["episode"]["r"][finished])
            self.episodes += int(finished.sum())

    def learning(self) -> Agent:
        return self.agent

    def recent(self) -> float | None:
        return float(np.mean(self.returns)) if self.returns else None

    def record(self, logger: Any, elapsed: float) -> tuple[float | None, str]:
        if (recent := self.recent()) is not None:
            logger.record("rollout/ep_rew_mean", recent)
        for key, value in {**self.agent.diagnostics(), **fresh_alignment(self.monitors)}.items():
            logger.record(key, value)
        logger.record("time/total_timesteps", self.steps)
        logger.record("time/episodes", self.episodes)
        logger.record("time/fps", int(self.steps / max(elapsed, 1e-9)))
        return recent, ""

    def close(self) -> None:
        self.envs.close()


def train_online(
    config: RunConfig,
    console: Console | None = None,
    progress: bool = True,
    callback: Callable[[Agent, int], None] | None = None,
) -> dict[str, Any]:
    """Run a native agent online for ``config.steps`` env steps; return the summary."""
    return OnlineRun.start(config).run(console, progress, callback)
