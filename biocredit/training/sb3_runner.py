"""Train an SB3 algorithm whose policy learns by a biocredit learner, into a run folder."""

from __future__ import annotations

import inspect
import time
from collections import deque
from typing import Any

import torch
from rich.console import Console
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from biocredit.envs import check_env_id, make_sb3_vec_env
from biocredit.envs.state import capture_env, restore_env
from biocredit.errors import ConfigError, check_keys
from biocredit.learners import learner_class
from biocredit.sb3 import BioActorCriticPolicy
from biocredit.training.callbacks import (
    DivergenceCallback,
    RichProgressCallback,
    RolloutCheckpoint,
)
from biocredit.training.config import RunConfig
from biocredit.training.hyperparams import schedule
from biocredit.training.interrupt import catch_signals
from biocredit.training.run import TrainingRun

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


def algo_kwargs(config: RunConfig) -> dict[str, Any]:
    """``config.algo_kwargs`` checked against the algorithm's signature, schedules resolved."""
    signature = inspect.signature(ALGO_CLASSES[config.algo].__init__).parameters
    valid = [name for name in signature if name not in RESERVED_ALGO_KEYS]
    check_keys(config.algo_kwargs, valid, f"algo_kwargs (for {config.algo})")
    return {
        key: schedule(value, key) if key in SCHEDULE_KEYS else value
        for key, value in config.algo_kwargs.items()
    }


def policy_kwargs(config: RunConfig) -> dict[str, Any]:
    """Keyword arguments for :class:`BioActorCriticPolicy` from the config."""
    check_keys(config.policy_kwargs, POLICY_KEYS, "policy_kwargs")
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


class SB3Run(TrainingRun):
    """One SB3 run: fresh (:meth:`start`) or from a checkpoint (:meth:`resume`).

    Checkpoints are taken at rollout boundaries (after an update, before the next rollout),
    where the policy, optimizer, RNGs, env states and the algorithm's counters and last
    observation define the rest of the run completely.
    """

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.env = make_sb3_vec_env(config.env, config.n_envs, config.seed, config.env_kwargs)
        self.algo = build_model(config, self.env)
        self.halted = False  # stopped by a signal one env step into a rollout

    validate = staticmethod(validate)

    def model(self) -> nn.Module:
        return self.algo.policy

    def predictor(self) -> BaseAlgorithm:
        return self.algo

    def steps_done(self) -> int:
        return int(self.algo.num_timesteps - (self.config.n_envs if self.halted else 0))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"policy": self.algo.policy.optimizer}

    def identity(self) -> dict[str, Any]:
        config = self.config
        return {
            "env": config.env,
            "algo": config.algo,
            "learner": config.learner,
            "critic_learner": config.critic_learner or config.learner,
        }

    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        algo = self.algo
        tensors = {
            "last_obs": torch.as_tensor(algo._last_obs).clone(),
            "last_episode_starts": torch.as_tensor(algo._last_episode_starts).clone(),
        }
        state = {
            "num_timesteps": algo.num_timesteps,
            "n_updates": algo._n_updates,
            "episode_num": algo._episode_num,
            "ep_info_buffer": list(algo.ep_info_buffer),
            "ep_success_buffer": list(algo.ep_success_buffer),
            "envs": [capture_env(env) for env in self.env.envs],
        }
        return tensors, state

    def load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        algo = self.algo
        for env, env_state in zip(self.env.envs, state["envs"], strict=True):
            restore_env(env, env_state)
        # fresh, aligned copies: matmul kernels may sum in another order on unaligned memory
        algo._last_obs = tensors["last_obs"].numpy().copy()
        algo._last_episode_starts = tensors["last_episode_starts"].numpy().copy()
        algo.num_timesteps = state["num_timesteps"]
        algo._n_updates = state["n_updates"]
        algo._episode_num = state["episode_num"]
        algo.ep_info_buffer = deque(state["ep_info_buffer"], maxlen=100)
        algo.ep_success_buffer = deque(state["ep_success_buffer"], maxlen=100)

    def summary_fields(self) -> dict[str, Any]:
        config = self.config
        return {
            "algo": config.algo,
            "learner": config.learner,
            "critic_learner": config.critic_learner or config.learner,
        }

    def run(
        self,
        console: Console | None = None,
        progress: bool = True,
        callbacks: list[BaseCallback] | None = None,
    ) -> dict[str, Any]:
        """Train to ``config.steps``; return the summary also written to ``summary.json``.

        ``callbacks`` (SB3 callbacks) run first at every step, before biocredit's own.
        """
        config, algo = self.config, self.algo
        algo.set_logger(configure(str(self.run_dir), ["csv", "tensorboard"]))
        start = time.perf_counter()
        with catch_signals() as stop:
            checkpoints = RolloutCheckpoint(
                config.checkpoint_freq,
                lambda: self.save(self.elapsed + time.perf_counter() - start),
                stop,
            )
            guard = DivergenceCallback(guarded_modules(algo))
            all_callbacks = [*(callbacks or []), guard, checkpoints]
            if progress:
                label = f"{config.algo}+{config.learner} {config.env} seed {config.seed}"
                all_callbacks.append(RichProgressCallback(config.steps, label, console))
            algo.learn(
                total_timesteps=config.steps - algo.num_timesteps,
                callback=all_callbacks,
                reset_num_timesteps=algo.num_timesteps == 0,
            )
        wall_time = self.elapsed + time.perf_counter() - start
        self.env.close()
        self.halted = checkpoints.halted  # then saved at the boundary where the stop was seen
        if not self.halted:
            self.save(wall_time)
        return self.finish(wall_time, stop.signal_name if self.halted else None)


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
