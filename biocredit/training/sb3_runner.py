"""Train an SB3 algorithm whose policy learns by a biocredit learner, into a run folder."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

import biocredit
from biocredit.envs import check_env_id, make_sb3_vec_env
from biocredit.errors import ConfigError, closest
from biocredit.learners import learner_class
from biocredit.sb3 import BioActorCriticPolicy
from biocredit.training.callbacks import (
    DivergenceCallback,
    PeriodicCheckpoint,
    RichProgressCallback,
)
from biocredit.training.checkpoint import save_checkpoint
from biocredit.training.config import RunConfig
from biocredit.training.hyperparams import schedule
from biocredit.training.run_dir import CHECKPOINT_DIR, create_run_dir, write_summary

ALGO_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C}
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
# Arguments biocredit sets itself; the rest of the algorithm's signature is open to algo_kwargs.
RESERVED_ALGO_KEYS = {
    "self",
    "policy",
    "env",
    "seed",
    "device",
    "policy_kwargs",
    "verbose",
    "tensorboard_log",
    "_init_setup_model",
    "stats_window_size",
}
POLICY_KEYS = ("net_arch", "activation_fn", "ortho_init", "log_std_init", "optimizer_kwargs")
EVAL_SEED_OFFSET = 1000  # evaluation envs are seeded seed + 1000, apart from training envs


def algo_kwargs(config: RunConfig) -> dict[str, Any]:
    """``config.algo_kwargs`` checked against the algorithm's signature, schedules resolved."""
    signature = inspect.signature(ALGO_CLASSES[config.algo].__init__).parameters
    valid = [name for name in signature if name not in RESERVED_ALGO_KEYS]
    kwargs = {}
    for key, value in config.algo_kwargs.items():
        if key not in valid:
            hint = closest(key, valid)
            raise ConfigError(
                f"Unknown algo_kwargs key '{key}' for {config.algo}."
                f"{f' Did you mean {hint!r}?' if hint else ''} Valid keys: {', '.join(valid)}."
            )
        kwargs[key] = schedule(value, key) if key in SCHEDULE_KEYS else value
    return kwargs


def policy_kwargs(config: RunConfig) -> dict[str, Any]:
    """Keyword arguments for :class:`BioActorCriticPolicy` from the config."""
    for key in config.policy_kwargs:
        if key not in POLICY_KEYS:
            hint = closest(key, POLICY_KEYS)
            raise ConfigError(
                f"Unknown policy_kwargs key '{key}'.{f' Did you mean {hint!r}?' if hint else ''} "
                f"Valid keys: {', '.join(POLICY_KEYS)}."
            )
    learner_class(config.learner)
    if config.critic_learner is not None:
        learner_class(config.critic_learner)
    return dict(
        learner=config.learner,
        learner_kwargs=config.learner_kwargs,
        critic_learner=config.critic_learner,
        critic_learner_kwargs=config.critic_learner_kwargs,
        **config.policy_kwargs,
    )


def build_model(config: RunConfig, env: VecEnv) -> BaseAlgorithm:
    """The SB3 algorithm of ``config`` with a :class:`BioActorCriticPolicy`, seeded."""
    try:
        return ALGO_CLASSES[config.algo](
            BioActorCriticPolicy,
            env,
            seed=config.seed,
            device="cpu",
            policy_kwargs=policy_kwargs(config),
            **algo_kwargs(config),
        )
    except (ValueError, AssertionError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{config.algo} rejected its arguments: {exc}") from None


def guarded_modules(model: BaseAlgorithm) -> dict[str, nn.Module]:
    """The policy's modules by name, for the divergence guard."""
    extractor = model.policy.mlp_extractor
    modules: dict[str, nn.Module] = {
        "policy_net": extractor.policy_net,
        "value_net": extractor.value_net,
    }
    if isinstance(getattr(model.policy, "log_std", None), nn.Parameter):
        modules["log_std"] = nn.ParameterDict({"log_std": model.policy.log_std})
    return modules


def validate(config: RunConfig) -> None:
    """Check every name and option of ``config`` before anything is written to disk."""
    check_env_id(config.env)
    algo_kwargs(config)
    policy_kwargs(config)


def train(
    config: RunConfig,
    console: Console | None = None,
    progress: bool = True,
    callbacks: list[BaseCallback] | None = None,
) -> dict[str, Any]:
    """Run ``config`` to the end; return the summary also written to ``summary.json``.

    ``callbacks`` (SB3 callbacks) run first at every step, before biocredit's own.
    """
    validate(config)
    torch.set_num_threads(config.threads)
    env = make_sb3_vec_env(config.env, config.n_envs, config.seed, config.env_kwargs)
    model = build_model(config, env)
    run_dir = create_run_dir(config)
    model.set_logger(configure(str(run_dir), ["csv", "tensorboard"]))

    def save(directory: Path) -> None:
        meta = {
            "env": config.env,
            "algo": config.algo,
            "learner": config.learner,
            "num_timesteps": model.num_timesteps,
        }
        save_checkpoint(model.policy, directory, meta)

    callbacks = [*(callbacks or []), DivergenceCallback(guarded_modules(model))]
    if progress:
        label = f"{config.algo}+{config.learner} {config.env} seed {config.seed}"
        callbacks.append(RichProgressCallback(config.steps, label, console))
    if config.checkpoint_freq:
        callbacks.append(PeriodicCheckpoint(config.checkpoint_freq, run_dir / CHECKPOINT_DIR, save))

    start = time.perf_counter()
    model.learn(total_timesteps=config.steps, callback=callbacks)
    wall_time = time.perf_counter() - start
    save(run_dir / CHECKPOINT_DIR)
    env.close()

    eval_env = make_sb3_vec_env(config.env, 1, config.seed + EVAL_SEED_OFFSET, config.env_kwargs)
    returns, _ = evaluate_policy(
        model, eval_env, n_eval_episodes=config.eval_episodes, return_episode_rewards=True
    )
    eval_env.close()
    summary = {
        "env": config.env,
        "algo": config.algo,
        "learner": config.learner,
        "critic_learner": config.critic_learner or config.learner,
        "seed": config.seed,
        "steps": int(model.num_timesteps),
        "wall_time_s": round(wall_time, 3),
        "steps_per_s": round(model.num_timesteps / wall_time, 1),
        "final_return_mean": float(np.mean(returns)),
        "final_return_std": float(np.std(returns)),
        "eval_episodes": config.eval_episodes,
        "run_dir": str(run_dir),
        "biocredit_version": biocredit.__version__,
    }
    write_summary(run_dir, summary)
    return summary
