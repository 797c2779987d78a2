"""The online loop for native agents: act and learn every step, batch of one per env.

Gymnasium vector envs with same-step autoreset: when an episode ends the returned observation
is already the next episode's first, and the final observation (for bootstrapping after a
truncation) is taken from ``info["final_obs"]``. No replay buffer. A checkpoint holds
everything the loop needs to continue bitwise: agent (weights, feedback, traces), optimizers,
RNG, every env's state, counters.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from torch import nn

import biocredit
from biocredit.agents import ModularAgent, agent_config
from biocredit.envs import check_env_id, make_sb3_vec_env
from biocredit.envs.state import capture_env, restore_env
from biocredit.training.callbacks import RunProgress
from biocredit.training.checkpoint import (
    load_checkpoint,
    load_optimizer_state,
    load_resume_state,
    optimizer_state,
    rng_state,
    save_checkpoint,
    save_resume_state,
    set_rng_state,
)
from biocredit.training.config import RunConfig
from biocredit.training.guard import DivergenceGuard
from biocredit.training.interrupt import StopRequest, catch_signals, resume_hint
from biocredit.training.run_dir import CHECKPOINT_DIR, create_run_dir, write_summary

EVAL_SEED_OFFSET = 1000
LOG_EVERY_STEPS = 2000


def make_online_envs(config: RunConfig) -> gym.vector.VectorEnv:
    """``n_envs`` synchronous copies with same-step autoreset and episode statistics."""
    check_env_id(config.env)
    envs = gym.make_vec(
        config.env,
        num_envs=config.n_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
        **config.env_kwargs,
    )
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def build_agent(config: RunConfig, envs: gym.vector.VectorEnv) -> ModularAgent:
    assert config.agent is not None
    agent_cfg = agent_config(config.agent, config.agent_kwargs, config.learner)
    return ModularAgent(
        envs.single_observation_space, envs.single_action_space, agent_cfg, config.n_envs
    )


def validate_online(config: RunConfig) -> None:
    """Check the env id and the agent's config before anything is written to disk."""
    check_env_id(config.env)
    assert config.agent is not None
    agent_config(config.agent, config.agent_kwargs, config.learner)


def bootstrap_observations(next_obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """``next_obs`` with each finished env's final observation in place of its reset one."""
    if not done.any():
        return next_obs
    boot = next_obs.copy()
    for i in np.nonzero(done)[0]:
        boot[i] = info["final_obs"][i]
    return boot


class OnlineRun:
    """One run of a native agent: fresh (:meth:`start`) or from a checkpoint (:meth:`resume`)."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.run_dir = Path(config.out or ".")  # set by start() or resume()
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.envs = make_online_envs(config)
        self.agent = build_agent(config, self.envs)
        self.obs, _ = self.envs.reset(seed=config.seed)
        self.steps = self.episodes = 0
        self.next_log = LOG_EVERY_STEPS
        self.returns: deque[float] = deque(maxlen=100)
        self.elapsed = 0.0  # wall time of earlier sessions of this run
        modules: dict[str, nn.Module] = dict(self.agent.networks)
        if isinstance(getattr(self.agent, "log_std", None), nn.Parameter):
            modules["log_std"] = nn.ParameterDict({"log_std": self.agent.log_std})
        self.guard = DivergenceGuard(modules, lambda: self.steps)

    @classmethod
    def start(cls, config: RunConfig) -> OnlineRun:
        validate_online(config)
        run = cls(config)  # build first: a config that cannot be built writes no folder
        run.run_dir = create_run_dir(config)
        return run

    @classmethod
    def resume(cls, config: RunConfig, run_dir: Path) -> OnlineRun:
        """Rebuild the run as it started, then load every piece of state it had."""
        run = cls(config)
        run.run_dir = run_dir
        directory = run_dir / CHECKPOINT_DIR
        meta = load_checkpoint(run.agent, directory, run.checkpoint_identity())
        tensors, state = load_resume_state(directory), meta["resume"]
        for name, optimizer in run.optimizers().items():
            load_optimizer_state(optimizer, tensors, state["optimizers"][name], f"optim.{name}")
        set_rng_state(tensors, state["rng"])
        for env, env_state in zip(run.envs.unwrapped.envs, state["envs"], strict=True):
            restore_env(env, env_state)
        restore_env(run.envs, state["episode_statistics"])
        # a fresh, aligned copy: matmul kernels may sum in another order on unaligned memory
        run.obs = tensors["obs"].numpy().copy()
        run.steps, run.episodes = state["steps"], state["episodes"]
        run.next_log, run.elapsed = state["next_log"], state["elapsed"]
        run.returns.extend(state["returns"])
        return run

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {role: net.optimizer for role, net in self.agent.trained_networks().items()}
        if not self.agent.discrete:
            optimizers["log_std"] = self.agent.log_std_optimizer
        return optimizers

    def checkpoint_identity(self) -> dict[str, Any]:
        """What a checkpoint of this run is for; loading checks it."""
        return {
            "env": self.config.env,
            "agent": self.config.agent,
            "modules": {
                role: net.net.learner.name for role, net in self.agent.trained_networks().items()
            },
        }

    def save(self, elapsed: float) -> None:
        """Checkpoint everything :meth:`resume` needs."""
        tensors, rng = rng_state()
        tensors["obs"] = torch.as_tensor(self.obs).clone()
        optimizers = {}
        for name, optimizer in self.optimizers().items():
            optim_tensors, optimizers[name] = optimizer_state(optimizer, f"optim.{name}")
            tensors.update(optim_tensors)
        resume = {
            "steps": self.steps,
            "episodes": self.episodes,
            "next_log": self.next_log,
            "elapsed": elapsed,
            "returns": list(self.returns),
            "rng": rng,
            "optimizers": optimizers,
            "envs": [capture_env(env) for env in self.envs.unwrapped.envs],
            "episode_statistics": capture_env(self.envs),  # returns of unfinished episodes
        }
        meta = {**self.checkpoint_identity(), "num_timesteps": self.steps, "resume": resume}
        directory = self.run_dir / CHECKPOINT_DIR
        save_checkpoint(self.agent, directory, meta)
        save_resume_state(directory, tensors)

    def step(self) -> None:
        """Act in every env, learn from the transition, check for divergence."""
        agent, guard = self.agent, self.guard
        guard.check_parameters("weight")
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
        guard.check_parameters("update")
        self.obs = next_obs
        if done.any():
            finished = info["_episode"]
            self.returns.extend(float(r) for r in info["episode"]["r"][finished])
            self.episodes += int(finished.sum())

    def run(
        self,
        console: Console | None = None,
        progress: bool = True,
        callback: Callable[[ModularAgent, int], None] | None = None,
    ) -> dict[str, Any]:
        """Train to ``config.steps``; checkpoint every ``checkpoint_freq`` steps, on SIGINT or
        SIGTERM, and at the end; return the summary also written to ``summary.json``.

        ``callback(agent, steps)`` is called after every step's update.
        """
        config = self.config
        logger = configure(str(self.run_dir), ["csv", "tensorboard"])
        display = RunProgress(
            config.steps, f"{config.agent} {config.env} seed {config.seed}", console
        )
        next_checkpoint = self.steps + config.checkpoint_freq if config.checkpoint_freq else None
        if progress:
            display.start()
        start = time.perf_counter()
        stop: StopRequest
        with catch_signals() as stop:
            while self.steps < config.steps and not stop:
                self.step()
                if callback is not None:
                    callback(self.agent, self.steps)
                if self.steps >= self.next_log or self.steps >= config.steps:
                    self.log(logger, self.elapsed + time.perf_counter() - start)
                    if progress:
                        display.update(self.steps, self.recent())
                if next_checkpoint is not None and self.steps >= next_checkpoint:
                    self.save(self.elapsed + time.perf_counter() - start)
                    next_checkpoint += config.checkpoint_freq
        wall_time = self.elapsed + time.perf_counter() - start
        if progress:
            display.stop()
        self.save(wall_time)
        self.envs.close()
        if stop:
            summary = self.summary(wall_time, None, status="interrupted")
            print(resume_hint(str(self.run_dir), self.steps, stop.signal_name or "signal"))
        else:
            summary = self.summary(wall_time, self.evaluate())
        write_summary(self.run_dir, summary)
        return summary

    def recent(self) -> float | None:
        return float(np.mean(self.returns)) if self.returns else None

    def log(self, logger: Any, elapsed: float) -> None:
        self.next_log += LOG_EVERY_STEPS
        if (recent := self.recent()) is not None:
            logger.record("rollout/ep_rew_mean", recent)
        if self.agent.world_model is not None:
            logger.record("agent/surprise", self.agent.surprise)
        logger.record("time/total_timesteps", self.steps)
        logger.record("time/episodes", self.episodes)
        logger.record("time/fps", int(self.steps / max(elapsed, 1e-9)))
        logger.dump(self.steps)

    def evaluate(self) -> list[float]:
        config = self.config
        env = make_sb3_vec_env(config.env, 1, config.seed + EVAL_SEED_OFFSET, config.env_kwargs)
        returns, _ = evaluate_policy(
            self.agent, env, n_eval_episodes=config.eval_episodes, return_episode_rewards=True
        )
        env.close()
        return list(returns)

    def summary(self, wall_time: float, returns: list[float] | None, status: str = "done"):
        config, agent = self.config, self.agent
        return {
            "env": config.env,
            "algo": "online",
            "agent": config.agent,
            "learner": agent.actor.net.learner.name,
            "critic_learner": agent.critic.net.learner.name,
            "seed": config.seed,
            "status": status,
            "steps": self.steps,
            "episodes": self.episodes,
            "wall_time_s": round(wall_time, 3),
            "steps_per_s": round(self.steps / max(wall_time, 1e-9), 1),
            "final_return_mean": None if returns is None else float(np.mean(returns)),
            "final_return_std": None if returns is None else float(np.std(returns)),
            "eval_episodes": config.eval_episodes,
            "run_dir": str(self.run_dir),
            "biocredit_version": biocredit.__version__,
        }


def train_online(
    config: RunConfig,
    console: Console | None = None,
    progress: bool = True,
    callback: Callable[[ModularAgent, int], None] | None = None,
) -> dict[str, Any]:
    """Run a native agent online for ``config.steps`` env steps; return the summary."""
    return OnlineRun.start(config).run(console, progress, callback)
