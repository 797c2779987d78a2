"""The online loop for native agents: act and learn every step, batch of one per env.

Gymnasium vector envs with same-step autoreset: when an episode ends the returned observation
is already the next episode's first, and the final observation (for bootstrapping after a
truncation) is taken from ``info["final_obs"]``. No replay buffer.
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
from biocredit.training.callbacks import RunProgress
from biocredit.training.checkpoint import save_checkpoint
from biocredit.training.config import RunConfig
from biocredit.training.guard import DivergenceGuard
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


def train_online(
    config: RunConfig,
    console: Console | None = None,
    progress: bool = True,
    callback: Callable[[ModularAgent, int], None] | None = None,
) -> dict[str, Any]:
    """Run a native agent online for ``config.steps`` env steps; return the summary.

    ``callback(agent, steps)`` is called after every step's update.
    """
    validate_online(config)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    envs = make_online_envs(config)
    agent = build_agent(config, envs)
    run_dir = create_run_dir(config)
    logger = configure(str(run_dir), ["csv", "tensorboard"])
    modules: dict[str, nn.Module] = dict(agent.networks)
    if isinstance(getattr(agent, "log_std", None), nn.Parameter):
        modules["log_std"] = nn.ParameterDict({"log_std": agent.log_std})
    guard = DivergenceGuard(modules, lambda: steps)
    display = RunProgress(config.steps, f"{config.agent} {config.env} seed {config.seed}", console)

    returns: deque[float] = deque(maxlen=100)
    episodes, steps, next_log = 0, 0, LOG_EVERY_STEPS
    obs, _ = envs.reset(seed=config.seed)
    envs.action_space.seed(config.seed)
    if progress:
        display.start()
    start = time.perf_counter()
    while steps < config.steps:
        guard.check_parameters("weight")
        action = agent.act(torch.as_tensor(obs, dtype=torch.float32))
        next_obs, reward, terminated, truncated, info = envs.step(agent.env_action(action))
        steps += config.n_envs
        guard.check_values(observation=next_obs, reward=reward, action=action)
        done = terminated | truncated
        boot = bootstrap_observations(next_obs, done, info)
        agent.learn(
            torch.as_tensor(reward, dtype=torch.float32),
            torch.as_tensor(terminated),
            torch.as_tensor(boot, dtype=torch.float32),
            torch.as_tensor(done),
        )
        guard.check_parameters("update")
        if callback is not None:
            callback(agent, steps)
        obs = next_obs
        if done.any():
            finished = info["_episode"]
            returns.extend(float(r) for r in info["episode"]["r"][finished])
            episodes += int(finished.sum())
        if steps >= next_log or steps >= config.steps:
            next_log += LOG_EVERY_STEPS
            recent = float(np.mean(returns)) if returns else None
            elapsed = time.perf_counter() - start
            if recent is not None:
                logger.record("rollout/ep_rew_mean", recent)
            if agent.world_model is not None:
                logger.record("agent/surprise", agent.surprise)
            logger.record("time/total_timesteps", steps)
            logger.record("time/episodes", episodes)
            logger.record("time/fps", int(steps / max(elapsed, 1e-9)))
            logger.dump(steps)
            if progress:
                display.update(steps, recent)
    wall_time = time.perf_counter() - start
    if progress:
        display.stop()
    envs.close()

    meta = {"env": config.env, "agent": config.agent, "num_timesteps": steps}
    save_checkpoint(agent, Path(run_dir) / CHECKPOINT_DIR, meta)
    eval_env = make_sb3_vec_env(config.env, 1, config.seed + EVAL_SEED_OFFSET, config.env_kwargs)
    eval_returns, _ = evaluate_policy(
        agent, eval_env, n_eval_episodes=config.eval_episodes, return_episode_rewards=True
    )
    eval_env.close()
    summary = {
        "env": config.env,
        "algo": "online",
        "agent": config.agent,
        "learner": agent.actor.net.learner.name,
        "critic_learner": agent.critic.net.learner.name,
        "seed": config.seed,
        "steps": steps,
        "episodes": episodes,
        "wall_time_s": round(wall_time, 3),
        "steps_per_s": round(steps / wall_time, 1),
        "final_return_mean": float(np.mean(eval_returns)),
        "final_return_std": float(np.std(eval_returns)),
        "eval_episodes": config.eval_episodes,
        "run_dir": str(run_dir),
        "biocredit_version": biocredit.__version__,
    }
    write_summary(run_dir, summary)
    return summary
