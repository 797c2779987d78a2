"""Train an SB3 algorithm whose policy learns by a biocredit learner, into a run folder."""

from __future__ import annotations

import inspect
import time
from collections import deque
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
from biocredit.envs.state import capture_env, restore_env
from biocredit.errors import ConfigError, closest
from biocredit.learners import learner_class
from biocredit.sb3 import BioActorCriticPolicy
from biocredit.training.callbacks import (
    DivergenceCallback,
    RichProgressCallback,
    RolloutCheckpoint,
)
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
from biocredit.training.hyperparams import schedule
from biocredit.training.interrupt import catch_signals, resume_hint
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


class SB3Run:
    """One SB3 run: fresh (:meth:`start`) or from a checkpoint (:meth:`resume`).

    Checkpoints are taken at rollout boundaries (after an update, before the next rollout),
    where the policy, optimizer, RNGs, env states and the algorithm's counters and last
    observation define the rest of the run completely.
    """

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.run_dir = Path(config.out or ".")  # set by start() or resume()
        torch.set_num_threads(config.threads)
        self.env = make_sb3_vec_env(config.env, config.n_envs, config.seed, config.env_kwargs)
        self.model = build_model(config, self.env)
        self.elapsed = 0.0  # wall time of earlier sessions of this run

    @classmethod
    def start(cls, config: RunConfig) -> SB3Run:
        validate(config)
        run = cls(config)  # build first: a config that cannot be built writes no folder
        run.run_dir = create_run_dir(config)
        return run

    @classmethod
    def resume(cls, config: RunConfig, run_dir: Path) -> SB3Run:
        """Rebuild the run as it started, then load every piece of state it had."""
        run = cls(config)
        run.run_dir = run_dir
        model, directory = run.model, run_dir / CHECKPOINT_DIR
        meta = load_checkpoint(model.policy, directory, run.checkpoint_identity())
        tensors, state = load_resume_state(directory), meta["resume"]
        load_optimizer_state(model.policy.optimizer, tensors, state["optimizer"], "optim")
        set_rng_state(tensors, state["rng"])
        for env, env_state in zip(run.env.envs, state["envs"], strict=True):
            restore_env(env, env_state)
        # fresh, aligned copies: matmul kernels may sum in another order on unaligned memory
        model._last_obs = tensors["last_obs"].numpy().copy()
        model._last_episode_starts = tensors["last_episode_starts"].numpy().copy()
        model.num_timesteps = state["num_timesteps"]
        model._n_updates = state["n_updates"]
        model._episode_num = state["episode_num"]
        model.ep_info_buffer = deque(state["ep_info_buffer"], maxlen=100)
        model.ep_success_buffer = deque(state["ep_success_buffer"], maxlen=100)
        run.elapsed = state["elapsed"]
        return run

    def checkpoint_identity(self) -> dict[str, Any]:
        """What a checkpoint of this run is for; loading checks it."""
        config = self.config
        return {
            "env": config.env,
            "algo": config.algo,
            "learner": config.learner,
            "critic_learner": config.critic_learner or config.learner,
        }

    def save(self, elapsed: float) -> None:
        """Checkpoint everything :meth:`resume` needs (call at a rollout boundary)."""
        model = self.model
        tensors, rng = rng_state()
        optim_tensors, optim_plain = optimizer_state(model.policy.optimizer, "optim")
        tensors.update(optim_tensors)
        tensors["last_obs"] = torch.as_tensor(model._last_obs).clone()
        tensors["last_episode_starts"] = torch.as_tensor(model._last_episode_starts).clone()
        resume = {
            "num_timesteps": model.num_timesteps,
            "n_updates": model._n_updates,
            "episode_num": model._episode_num,
            "ep_info_buffer": list(model.ep_info_buffer),
            "ep_success_buffer": list(model.ep_success_buffer),
            "elapsed": elapsed,
            "rng": rng,
            "optimizer": optim_plain,
            "envs": [capture_env(env) for env in self.env.envs],
        }
        meta = {
            **self.checkpoint_identity(),
            "num_timesteps": model.num_timesteps,
            "resume": resume,
        }
        directory = self.run_dir / CHECKPOINT_DIR
        save_checkpoint(model.policy, directory, meta)
        save_resume_state(directory, tensors)

    def run(
        self,
        console: Console | None = None,
        progress: bool = True,
        callbacks: list[BaseCallback] | None = None,
    ) -> dict[str, Any]:
        """Train to ``config.steps``; return the summary also written to ``summary.json``.

        ``callbacks`` (SB3 callbacks) run first at every step, before biocredit's own.
        """
        config, model = self.config, self.model
        model.set_logger(configure(str(self.run_dir), ["csv", "tensorboard"]))
        start = time.perf_counter()
        with catch_signals() as stop:
            checkpoints = RolloutCheckpoint(
                config.checkpoint_freq,
                lambda: self.save(self.elapsed + time.perf_counter() - start),
                stop,
            )
            all_callbacks = [
                *(callbacks or []),
                DivergenceCallback(guarded_modules(model)),
                checkpoints,
            ]
            if progress:
                label = f"{config.algo}+{config.learner} {config.env} seed {config.seed}"
                all_callbacks.append(RichProgressCallback(config.steps, label, console))
            model.learn(
                total_timesteps=config.steps - model.num_timesteps,
                callback=all_callbacks,
                reset_num_timesteps=model.num_timesteps == 0,
            )
        wall_time = self.elapsed + time.perf_counter() - start
        self.env.close()
        if checkpoints.halted:  # saved at the rollout boundary where the stop was seen
            steps = int(model.num_timesteps - config.n_envs)
            summary = self.summary(wall_time, steps, None, status="interrupted")
            print(resume_hint(str(self.run_dir), steps, stop.signal_name or "signal"))
        else:
            self.save(wall_time)
            summary = self.summary(wall_time, int(model.num_timesteps), self.evaluate())
        write_summary(self.run_dir, summary)
        return summary

    def evaluate(self) -> list[float]:
        config = self.config
        env = make_sb3_vec_env(config.env, 1, config.seed + EVAL_SEED_OFFSET, config.env_kwargs)
        returns, _ = evaluate_policy(
            self.model, env, n_eval_episodes=config.eval_episodes, return_episode_rewards=True
        )
        env.close()
        return list(returns)

    def summary(
        self, wall_time: float, steps: int, returns: list[float] | None, status: str = "done"
    ) -> dict[str, Any]:
        config = self.config
        return {
            "env": config.env,
            "algo": config.algo,
            "learner": config.learner,
            "critic_learner": config.critic_learner or config.learner,
            "seed": config.seed,
            "status": status,
            "steps": steps,
            "wall_time_s": round(wall_time, 3),
            "steps_per_s": round(steps / max(wall_time, 1e-9), 1),
            "final_return_mean": None if returns is None else float(np.mean(returns)),
            "final_return_std": None if returns is None else float(np.std(returns)),
            "eval_episodes": config.eval_episodes,
            "run_dir": str(self.run_dir),
            "biocredit_version": biocredit.__version__,
        }


def train(
    config: RunConfig,
    console: Console | None = None,
    progress: bool = True,
    callbacks: list[BaseCallback] | None = None,
) -> dict[str, Any]:
    """Run ``config`` to the end; return the summary also written to ``summary.json``.

    ``callbacks`` (SB3 callbacks) run first at every step, before biocredit's own.
    """
    return SB3Run.start(config).run(console, progress, callbacks)
