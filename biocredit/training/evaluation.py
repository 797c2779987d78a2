"""Evaluate a finished run from its folder: rebuild the policy, load its newest complete
checkpoint (safetensors, no pickle)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.policies import BasePolicy

from biocredit.agents import Agent, make_agent
from biocredit.checkpoints import load_module, require_checkpoint
from biocredit.envs import make_sb3_vec_env
from biocredit.envs.multiagent import is_multiagent
from biocredit.envs.normalize import frozen, normalize_options, read_statistics
from biocredit.errors import ConfigError
from biocredit.training.config import RunConfig
from biocredit.training.online import evaluate_online
from biocredit.training.run import EVAL_SEED_OFFSET
from biocredit.training.run_folder import read_run_config
from biocredit.training.sb3_runner import policy_choice
from biocredit.training.team_eval import evaluate_team, team_report
from biocredit.training.video import (
    FrameRecorder,
    choose_gl_backend,
    render_env_kwargs,
    require_video_extra,
)


def evaluate_multiagent_run(
    run_dir: Path, config: RunConfig, episodes: int, seed: int | None, deterministic: bool
) -> dict[str, Any]:
    """Team (sum over agents), per-group and per-agent returns of a multi-agent run."""
    from biocredit.training.run_kinds import run_class

    run = run_class(config)(config)
    meta = load_module(run.model(), require_checkpoint(run_dir), {"env": config.env})
    seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    with torch.no_grad():
        returns = evaluate_team(config, run.team_policy(deterministic), seed, episodes)
    return {
        **report_header(run_dir, config, seed, meta, episodes),
        **team_report(returns, run.groups),
    }


def report_header(
    run_dir: Path, config: RunConfig, seed: int, meta: dict[str, Any], episodes: int
) -> dict[str, Any]:
    """The fields every evaluation report starts with: which run, trained how far, on what."""
    return {
        "run_dir": str(run_dir),
        "env": config.env,
        "algo": config.algo,
        "agent": config.agent,
        "learner": config.learner,
        "seed": seed,
        "trained_steps": meta.get("num_timesteps"),
        "episodes": episodes,
    }


def load_run_policy(run_dir: Path) -> tuple[BasePolicy | Agent, dict]:
    """The trained policy or native agent of ``run_dir`` (in eval mode) and its metadata."""
    config = read_run_config(run_dir)
    env = make_sb3_vec_env(config.env, 1, config.seed, config.env_kwargs)
    policy: BasePolicy | Agent
    if config.agent is not None:
        policy = make_agent(
            config.agent,
            config.agent_kwargs,
            config.learner,
            env.observation_space,
            env.action_space,
            config.n_envs,
        )
    else:
        policy_class, kwargs = policy_choice(config, env.observation_space)
        policy = policy_class(env.observation_space, env.action_space, lambda _: 0.0, **kwargs)
    env.close()
    identity = {"env": config.env}
    identity.update({"agent": config.agent} if config.agent else {"learner": config.learner})
    meta = load_module(policy, require_checkpoint(run_dir), identity)
    return policy.eval(), meta


def evaluate_run(
    run_dir: Path,
    episodes: int = 10,
    seed: int | None = None,
    deterministic: bool = True,
    video: Path | None = None,
) -> dict[str, Any]:
    """Mean and std of the return of the run's policy over ``episodes`` fresh episodes, on the
    kind of env it trained on (a native agent's Gymnasium vector env, an SB3 policy's VecEnv);
    with ``video``, those episodes are also rendered offscreen into that MP4 file."""
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}.")
    config = read_run_config(run_dir)
    if is_multiagent(config.env):
        if video is not None:
            raise ConfigError(
                f"--video is not supported for PettingZoo runs ({config.env}); evaluate without "
                "--video for the per-agent and team returns."
            )
        return evaluate_multiagent_run(run_dir, config, episodes, seed, deterministic)
    if video is not None:
        require_video_extra()
    backend = choose_gl_backend() if video is not None else None  # before MuJoCo loads GL
    policy, meta = load_run_policy(run_dir)
    seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    env_kwargs = dict(config.env_kwargs)
    if video is not None:
        env_kwargs = render_env_kwargs(config.env, env_kwargs)
    recorder = FrameRecorder(Path(video), config.env, backend) if video is not None else None
    try:
        with torch.no_grad():
            if isinstance(policy, Agent):
                record = None if recorder is None else partial(render_into, recorder)
                returns, lengths = evaluate_online(
                    policy, config, seed, episodes, deterministic, env_kwargs, record
                )
            else:
                returns, lengths = evaluate_sb3_policy(
                    policy, run_dir, config, seed, episodes, deterministic, env_kwargs, recorder
                )
    finally:
        if recorder is not None:
            recorder.close()
    return {
        **report_header(run_dir, config, seed, meta, episodes),
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "length_mean": float(np.mean(lengths)),
        "returns": [float(r) for r in returns],
        **({"video": str(video), "video_frames": recorder.frames} if recorder else {}),
    }


def render_into(recorder: FrameRecorder, envs: Any) -> None:
    """Add the frame of a Gymnasium vector env's first copy to ``recorder``."""
    recorder.add(lambda: envs.render()[0], envs.metadata)


def evaluate_sb3_policy(
    policy: BasePolicy,
    run_dir: Path,
    config: RunConfig,
    seed: int,
    episodes: int,
    deterministic: bool,
    env_kwargs: dict[str, Any],
    recorder: FrameRecorder | None,
) -> tuple[list[float], list[int]]:
    """Returns and lengths on one SB3 VecEnv copy of the training env (its normalisation
    statistics frozen, rewards as they are)."""
    env = make_sb3_vec_env(config.env, 1, seed, env_kwargs)
    normalize = normalize_options(config.normalize)
    if normalize is not None:
        env = frozen(env, normalize, read_statistics(require_checkpoint(run_dir)))
    if recorder is not None:
        env.reset()
        recorder.add(lambda: env.get_images()[0], env.metadata)
        env.seed(seed)  # that reset used the seed: evaluation resets to the same first state

    def record(_locals: dict[str, Any], _globals: dict[str, Any]) -> None:
        if recorder is not None:
            recorder.add(lambda: env.get_images()[0], env.metadata)

    try:
        returns, lengths = evaluate_policy(
            policy,
            env,
            n_eval_episodes=episodes,
            deterministic=deterministic,
            return_episode_rewards=True,
            callback=record,
        )
    finally:
        env.close()
    return list(returns), list(lengths)
