"""Train an SB3 algorithm whose policy learns by a biocredit learner, into a run folder."""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from rich.console import Console
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from biocredit.envs import check_env_id, make_sb3_vec_env
from biocredit.envs.normalize import (
    frozen,
    load_statistics,
    normalize_options,
    save_statistics,
    statistics_tensors,
    wrap_normalize,
)
from biocredit.envs.state import capture_env, restore_env
from biocredit.errors import ConfigError, check_keys, unknown_name
from biocredit.learners import LocalNetwork, learner_class
from biocredit.optimizers import optimizer_class
from biocredit.sb3 import (
    BioActorCriticPolicy,
    BioCnnDQNPolicy,
    BioCnnPolicy,
    BioCnnSACPolicy,
    BioCnnTD3Policy,
    BioDQNPolicy,
    BioSACPolicy,
    BioTD3Policy,
)
from biocredit.sb3.actor_critic import EXTRACTORS
from biocredit.sb3.common import torch_activation
from biocredit.sb3.conv_features import BioCnnExtractor, image_kind
from biocredit.training.alignment import AlignmentCallback, attach_monitors
from biocredit.training.callbacks import (
    DivergenceCallback,
    RichProgressCallback,
    RolloutCheckpoint,
    algorithm_optimizers,
)
from biocredit.training.config import RunConfig
from biocredit.training.hyperparams import schedule
from biocredit.training.interrupt import catch_signals
from biocredit.training.run import EVAL_SEED_OFFSET, TrainingRun

ALGO_CLASSES: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "sac": SAC,
    "td3": TD3,
    "dqn": DQN,
}
POLICY_CLASSES: dict[str, type[BasePolicy]] = {
    "ppo": BioActorCriticPolicy,
    "a2c": BioActorCriticPolicy,
    "sac": BioSACPolicy,
    "td3": BioTD3Policy,
    "dqn": BioDQNPolicy,
}
IMAGE_POLICY_CLASSES: dict[str, type[BasePolicy]] = {
    "ppo": BioCnnPolicy,
    "a2c": BioCnnPolicy,
    "sac": BioCnnSACPolicy,
    "td3": BioCnnTD3Policy,
    "dqn": BioCnnDQNPolicy,
}
try:  # the optional backprop-through-time baseline: pip install "biocredit[baselines]"
    from sb3_contrib import RecurrentPPO
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

    ALGO_CLASSES["recurrent-ppo"] = RecurrentPPO
    POLICY_CLASSES["recurrent-ppo"] = RecurrentActorCriticPolicy
except ImportError:  # pragma: no cover - depends on the install
    pass
# SB3's own policies trained by backprop (through time): baselines, no biocredit learner.
BACKPROP_BASELINES = ("recurrent-ppo",)
ON_POLICY = ("ppo", "a2c", "recurrent-ppo")  # the others keep a replay buffer (exact resume)
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
# The RL Zoo's exploration-noise keys, turned into SB3's ``action_noise`` (TD3, SAC).
NOISE_KEYS = ("noise_type", "noise_std")
NOISE_CLASSES = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}
# Which action spaces each algorithm drives, and what to use instead.
ACTION_SPACES = {
    "dqn": (spaces.Discrete, "a discrete action space", "sac, td3 or ppo"),
    "sac": (spaces.Box, "a continuous (Box) action space", "dqn, ppo or a2c"),
    "td3": (spaces.Box, "a continuous (Box) action space", "dqn, ppo or a2c"),
}
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
# Arguments of the policy set from the config's learner keys or fixed by biocredit.
RESERVED_POLICY_KEYS = {
    "self",
    "observation_space",
    "action_space",
    "lr_schedule",
    "learner",
    "learner_kwargs",
    "critic_learner",
    "critic_learner_kwargs",
    "features_extractor_class",
    "features_extractor_kwargs",
    "normalize_images",
    "args",
    "kwargs",
}
# Reserved above, open per algorithm: the actor-critic ones take a features extractor by name
# (a signal-free ``BioFeaturesExtractor``) and its options; every algorithm with a conv policy
# (IMAGE_POLICY_CLASSES) takes the options of its ``BioCnnExtractor``.
EXTRACTOR_KEYS = {"features_extractor_class", "features_extractor_kwargs"}
EXTRACTOR_ALGOS = ("ppo", "a2c")
OPEN_POLICY_KEYS = {
    algo: EXTRACTOR_KEYS if algo in EXTRACTOR_ALGOS else {"features_extractor_kwargs"}
    for algo in IMAGE_POLICY_CLASSES
}


def algo_kwargs(config: RunConfig, action_dim: int = 1) -> dict[str, Any]:
    """``config.algo_kwargs`` checked against the algorithm's signature, schedules resolved,
    the Zoo's ``noise_type``/``noise_std`` made into ``action_noise`` of ``action_dim``."""
    signature = inspect.signature(ALGO_CLASSES[config.algo].__init__).parameters
    valid = [name for name in signature if name not in RESERVED_ALGO_KEYS]
    if "action_noise" in valid:
        valid += NOISE_KEYS
    check_keys(config.algo_kwargs, valid, f"algo_kwargs (for {config.algo})")
    kwargs = {
        key: schedule(value, key) if key in SCHEDULE_KEYS else value
        for key, value in config.algo_kwargs.items()
        if key not in NOISE_KEYS
    }
    noise_type = config.algo_kwargs.get("noise_type")
    if noise_type is not None:
        if noise_type not in NOISE_CLASSES:
            raise unknown_name("noise_type", noise_type, NOISE_CLASSES)
        std = config.algo_kwargs.get("noise_std", 0.1)
        if not isinstance(std, (int, float)) or std <= 0:
            raise ConfigError(f"'noise_std' must be a number > 0, got {std!r}.")
        kwargs["action_noise"] = NOISE_CLASSES[noise_type](
            mean=np.zeros(action_dim), sigma=float(std) * np.ones(action_dim)
        )
    return kwargs


def algo_gamma(config: RunConfig) -> float:
    """The algorithm's discount: ``algo_kwargs.gamma`` or its default."""
    default = inspect.signature(ALGO_CLASSES[config.algo].__init__).parameters["gamma"].default
    return float(config.algo_kwargs.get("gamma", default))


def check_action_space(config: RunConfig, action_space: spaces.Space) -> None:
    """A clear error when the algorithm cannot drive ``action_space`` (DQN on a Box, SAC on
    a Discrete ...)."""
    if config.algo not in ACTION_SPACES:
        return
    kind, needs, instead = ACTION_SPACES[config.algo]
    if not isinstance(action_space, kind):
        raise ConfigError(
            f"--algo {config.algo} needs {needs}, but '{config.env}' has {action_space}. "
            f"Use --algo {instead} for this env, or pick an env with {needs}."
        )


def policy_kwargs(config: RunConfig) -> dict[str, Any]:
    """Keyword arguments for the algorithm's biocredit policy from the config.

    ``activation_fn`` and ``optimizer_class`` are given by name (``tanh``, ``relu`` ...;
    ``adam``, ``sgd`` ...) and passed on as their torch classes.
    """
    if config.algo not in ALGO_CLASSES:
        raise ConfigError(
            f"algo '{config.algo}' needs the sb3-contrib package, which is not installed. "
            'Install it with: pip install "biocredit[baselines]".'
        )
    policy_class = POLICY_CLASSES[config.algo]
    valid = set()
    for cls in policy_class.__mro__:
        if "__init__" in vars(cls):
            valid |= set(inspect.signature(cls.__init__).parameters)
    open_keys = OPEN_POLICY_KEYS.get(config.algo, set())
    valid = sorted((valid - RESERVED_POLICY_KEYS) | open_keys)
    check_keys(config.policy_kwargs, valid, f"policy_kwargs (for {config.algo})")
    learner_class(config.learner)
    if config.algo in BACKPROP_BASELINES:
        if config.learner != "bp" or config.learner_kwargs or config.critic_learner:
            options = " with options" if config.learner_kwargs else ""
            critic = f", critic_learner '{config.critic_learner}'" if config.critic_learner else ""
            raise ConfigError(
                f"algo '{config.algo}' is a backprop-through-time baseline whose recurrent policy "
                f"is trained by bp only; got learner '{config.learner}'{options}{critic}. "
                "Use --learner bp without learner or critic options."
            )
        return _named_classes(dict(config.policy_kwargs))
    kwargs = dict(
        config.policy_kwargs, learner=config.learner, learner_kwargs=config.learner_kwargs
    )
    if config.critic_learner is not None or config.critic_learner_kwargs is not None:
        if config.algo == "dqn":
            raise ConfigError("dqn has no critic: remove critic_learner / critic_learner_kwargs.")
        learner_class(config.critic_learner or config.learner)
        kwargs.update(
            critic_learner=config.critic_learner, critic_learner_kwargs=config.critic_learner_kwargs
        )
    return _named_classes(kwargs)


def _named_classes(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``activation_fn``, ``optimizer_class`` and ``features_extractor_class`` given by name,
    replaced by their class."""
    if isinstance(kwargs.get("activation_fn"), str):
        kwargs["activation_fn"] = torch_activation(kwargs["activation_fn"])
    if "optimizer_class" in kwargs:
        kwargs["optimizer_class"] = optimizer_class(kwargs["optimizer_class"], "optimizer_class")
    if "features_extractor_class" in kwargs:
        name = kwargs["features_extractor_class"]
        if not isinstance(name, str) or name not in EXTRACTORS:
            raise unknown_name("features_extractor_class", str(name), EXTRACTORS)
        kwargs["features_extractor_class"] = EXTRACTORS[name]
    return kwargs


def policy_choice(
    config: RunConfig, observation_space: spaces.Space
) -> tuple[type[BasePolicy], dict[str, Any]]:
    """The policy class for ``config`` on ``observation_space`` and its keyword arguments.

    Images pick the conv policy, as SB3 users pick ``CnnPolicy``: when the observations are an
    image by SB3's rules (:func:`~biocredit.sb3.conv_features.image_kind`) and no
    ``features_extractor_class`` is named, :class:`~biocredit.sb3.BioCnnPolicy` for PPO and
    A2C, ``BioCnnDQNPolicy``, ``BioCnnSACPolicy`` and ``BioCnnTD3Policy`` for the others
    (``BioCnnExtractor`` reads ``features_extractor_kwargs``); images
    already scaled to [0, 1] (MinAtar's maps) with ``normalize_images=False``.
    """
    kwargs = policy_kwargs(config)
    kind = image_kind(observation_space)
    if config.algo not in IMAGE_POLICY_CLASSES:
        return POLICY_CLASSES[config.algo], kwargs
    if "features_extractor_class" in kwargs or kind is None:
        check_extractor_kwargs(kwargs, kwargs.get("features_extractor_class", FlattenExtractor))
        return POLICY_CLASSES[config.algo], kwargs
    check_extractor_kwargs(kwargs, BioCnnExtractor)
    if kind == "normalized":
        kwargs["normalize_images"] = False
    return IMAGE_POLICY_CLASSES[config.algo], kwargs


def check_extractor_kwargs(kwargs: dict[str, Any], extractor: type[nn.Module]) -> None:
    """``features_extractor_kwargs`` must be arguments of the extractor the policy builds."""
    given = kwargs.get("features_extractor_kwargs") or {}
    parameters = inspect.signature(extractor.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [name for name in parameters if name not in ("self", "observation_space")]
    check_keys(
        given,
        valid,
        f"policy_kwargs.features_extractor_kwargs (for {extractor.__name__}; "
        "--set policy_kwargs.features_extractor_kwargs=null drops those of the env's "
        "hyperparameter entry)",
    )


def build_model(config: RunConfig, env: VecEnv) -> BaseAlgorithm:
    """The SB3 algorithm of ``config`` with its biocredit policy, seeded."""
    check_action_space(config, env.action_space)
    action_dim = int(np.prod(env.action_space.shape or (1,)))
    policy_class, kwargs = policy_choice(config, env.observation_space)
    try:
        return ALGO_CLASSES[config.algo](
            policy_class,
            env,
            seed=config.seed,
            device="cpu",
            policy_kwargs=kwargs,
            **algo_kwargs(config, action_dim),
        )
    except (ValueError, AssertionError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{config.algo} rejected its arguments: {exc}") from None


def guarded_modules(model: BaseAlgorithm) -> dict[str, nn.Module]:
    """Every local network of the policy by its name, and its free parameters (a Gaussian's
    ``log_std``) as one more module, for the divergence guard."""
    networks = {
        name: module
        for name, module in model.policy.named_modules()
        if isinstance(module, LocalNetwork)
    }
    free = {
        name: param
        for name, param in model.policy.named_parameters()
        if not any(name.startswith(prefix + ".") for prefix in networks)
    }
    modules: dict[str, nn.Module] = dict(networks)
    if free:
        modules["free parameters"] = nn.ParameterDict(
            {name.replace(".", "_"): param for name, param in free.items()}
        )
    return modules


def validate(config: RunConfig) -> None:
    """Check every name and option of ``config`` before anything is written to disk."""
    check_env_id(config.env)
    algo_kwargs(config)
    policy_kwargs(config)
    normalize_options(config.normalize)


class SB3Run(TrainingRun):
    """One SB3 run: fresh (:meth:`start`) or from a checkpoint (:meth:`resume`).

    Checkpoints are taken at rollout boundaries (after an update, before the next rollout),
    where the policy, optimizer, RNGs, env states and the algorithm's counters and last
    observation define the rest of the run completely.
    """

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.envs = self.make_envs(config)
        if isinstance(self.envs.observation_space, spaces.Dict):
            raise ConfigError(
                f"'{config.env}' has Dict observations, which biocredit's SB3 policies read from "
                "Python (PPO(BioActorCriticPolicy, env): every key flattened, as SB3's "
                "MultiInputPolicy does) but `biocredit train` cannot yet checkpoint and resume. "
                "Train it from Python, or flatten the observation with "
                "gymnasium.wrappers.FlattenObservation in the env's registration."
            )
        self.normalize = normalize_options(config.normalize)
        self.env: VecEnv = self.envs
        if self.normalize is not None:
            self.env = wrap_normalize(self.envs, self.normalize, algo_gamma(config))
        self.algo = build_model(config, self.env)
        self.halted = False  # stopped by a signal one env step into a rollout

    validate = staticmethod(validate)
    progress_detail: Callable[[], str] | None = None  # more text for the progress bar

    def make_envs(self, config: RunConfig) -> VecEnv:
        """The training envs, before any ``VecNormalize``."""
        return make_sb3_vec_env(config.env, config.n_envs, config.seed, config.env_kwargs)

    def model(self) -> nn.Module:
        return self.algo.policy

    def predictor(self) -> BaseAlgorithm:
        return self.algo

    def steps_done(self) -> int:
        return int(self.algo.num_timesteps - (self.config.n_envs if self.halted else 0))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return algorithm_optimizers(self.algo)

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
            "envs": [capture_env(env) for env in self.envs.envs],
        }
        if self.config.algo not in ON_POLICY:
            replay_tensors, state["replay"] = replay_state(algo)
            tensors.update(replay_tensors)
        if self.normalize is not None:
            statistics = statistics_tensors(self.env)
            tensors.update({f"normalize.{key}": value for key, value in statistics.items()})
            if algo._last_original_obs is not None:  # off-policy: raw obs for the replay buffer
                tensors["last_original_obs"] = torch.as_tensor(algo._last_original_obs).clone()
        if self.config.algo in BACKPROP_BASELINES:  # the LSTM states the next rollout starts from
            lstm = algo._last_lstm_states
            for role, (hidden, cell) in (("pi", lstm.pi), ("vf", lstm.vf)):
                tensors[f"lstm_{role}_hidden"], tensors[f"lstm_{role}_cell"] = hidden, cell
        return tensors, state

    def load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        algo = self.algo
        if "replay" in state:
            load_replay_state(algo, tensors, state["replay"])
        for env, env_state in zip(self.envs.envs, state["envs"], strict=True):
            restore_env(env, env_state)
        if self.normalize is not None:
            prefix = "normalize."
            load_statistics(
                self.env, {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
            if "last_original_obs" in tensors:
                algo._last_original_obs = tensors["last_original_obs"].numpy().copy()
        # fresh, aligned copies: matmul kernels may sum in another order on unaligned memory
        algo._last_obs = tensors["last_obs"].numpy().copy()
        algo._last_episode_starts = tensors["last_episode_starts"].numpy().copy()
        if self.config.algo in BACKPROP_BASELINES:
            algo._last_lstm_states = type(algo._last_lstm_states)(
                *(
                    (tensors[f"lstm_{role}_hidden"].clone(), tensors[f"lstm_{role}_cell"].clone())
                    for role in ("pi", "vf")
                )
            )
        algo.num_timesteps = state["num_timesteps"]
        algo._n_updates = state["n_updates"]
        algo._episode_num = state["episode_num"]
        algo.ep_info_buffer = deque(state["ep_info_buffer"], maxlen=100)
        algo.ep_success_buffer = deque(state["ep_success_buffer"], maxlen=100)

    def write_checkpoint(self, directory: Path, elapsed: float) -> None:
        super().write_checkpoint(directory, elapsed)
        if self.normalize is not None:  # also apart from the resume state, for evaluation
            save_statistics(self.env, directory)

    def eval_env(self, seed: int) -> VecEnv:
        """One fresh copy of the training env, seeded ``seed``, with the training
        normalisation statistics frozen."""
        env = make_sb3_vec_env(self.config.env, 1, seed, self.config.env_kwargs)
        if self.normalize is None:
            return env
        return frozen(env, self.normalize, statistics_tensors(self.env))

    def evaluate(self) -> list[float]:
        config = self.config
        env = self.eval_env(config.seed + EVAL_SEED_OFFSET)
        returns, _ = evaluate_policy(
            self.predictor(),
            env,
            n_eval_episodes=config.eval_episodes,
            return_episode_rewards=True,
        )
        env.close()
        return list(returns)

    def summary_fields(self) -> dict[str, Any]:
        config = self.config
        return {
            "algo": config.algo,
            "learner": config.learner,
            "critic_learner": config.critic_learner or config.learner,
        }

    def scale_learning_rates(self, factor: float) -> None:
        # SB3 sets its optimizers' rates from lr_schedule before every update; an optimizer SB3
        # does not drive (a BioFeaturesExtractor's) keeps the rate scaled here
        self.algo.lr_schedule = ScaledSchedule(self.algo.lr_schedule, factor)
        for optimizer in self.optimizers().values():
            for group in optimizer.param_groups:
                group["lr"] *= factor

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
        with catch_signals() as stop:  # before progress.csv exists: a stop seen then is caught
            algo.set_logger(configure(str(self.run_dir), ["csv", "tensorboard"]))
            start = time.perf_counter()
            checkpoints = RolloutCheckpoint(
                config.checkpoint_freq,
                lambda: self.save(self.elapsed + time.perf_counter() - start),
                stop,
            )
            modules = guarded_modules(algo)
            guard = DivergenceCallback(modules)
            all_callbacks = [*(callbacks or []), guard, checkpoints]
            if monitors := attach_monitors(modules, config.alignment_every):
                all_callbacks.append(AlignmentCallback(monitors))
            if progress:
                label = f"{config.algo}+{config.learner} {config.env} seed {config.seed}"
                display = RichProgressCallback(config.steps, label, console, self.progress_detail)
                all_callbacks.append(display)
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


REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def replay_state(algo: BaseAlgorithm) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An off-policy algorithm's replay buffer (its filled part), counters, action-space RNG and
    entropy coefficient, for exact resume."""
    buffer = algo.replay_buffer
    filled = buffer.buffer_size if buffer.full else buffer.pos
    tensors = {
        f"replay.{name}": torch.as_tensor(getattr(buffer, name)[:filled]).clone()
        for name in REPLAY_ARRAYS
        if getattr(buffer, name, None) is not None
    }
    if isinstance(getattr(algo, "log_ent_coef", None), torch.Tensor):
        tensors["log_ent_coef"] = algo.log_ent_coef.detach().clone()
    state = {
        "pos": buffer.pos,
        "full": buffer.full,
        "n_calls": getattr(algo, "_n_calls", 0),  # DQN's target-update clock
        "exploration_rate": getattr(algo, "exploration_rate", None),  # DQN's current epsilon
        # random warm-up and epsilon-greedy actions come from the action space's own RNG
        "action_space_rng": algo.action_space.np_random.bit_generator.state,
    }
    return tensors, state


def load_replay_state(
    algo: BaseAlgorithm, tensors: dict[str, torch.Tensor], state: dict[str, Any]
) -> None:
    buffer = algo.replay_buffer
    for name in REPLAY_ARRAYS:
        if f"replay.{name}" in tensors:
            saved = tensors[f"replay.{name}"].numpy()
            getattr(buffer, name)[: len(saved)] = saved
    buffer.pos, buffer.full = state["pos"], state["full"]
    if hasattr(algo, "_n_calls"):
        algo._n_calls = state["n_calls"]
    if state["exploration_rate"] is not None:
        algo.exploration_rate = state["exploration_rate"]
    algo.action_space.np_random.bit_generator.state = state["action_space_rng"]
    if "log_ent_coef" in tensors:
        with torch.no_grad():
            algo.log_ent_coef.copy_(tensors["log_ent_coef"])


class ScaledSchedule:
    """``factor * schedule(progress_remaining)``."""

    def __init__(self, schedule: Any, factor: float) -> None:
        self.schedule, self.factor = schedule, factor

    def __call__(self, progress_remaining: float) -> float:
        return self.factor * self.schedule(progress_remaining)


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
