"""Configuration of the active-inference agent (``agent: active-inference``).

    modules:
      world_model: {learner: pc, hidden: [64, 64], lr: 1.0e-3, optimizer: adam}  # (s, a) -> (ds, r)
      value:       {learner: pc, hidden: [64, 64], lr: 1.0e-3, optimizer: adam}  # instrumental Q
      epistemic:   {learner: pc, hidden: [64, 64], lr: 1.0e-3, optimizer: adam}  # epistemic Q
    epistemic_weight: 1.0          # w at the start ...
    epistemic_weight_final: 0.0    # ... decaying linearly to this
    epistemic_decay_steps: 20000   # over this many env steps
    surprise_scale: 1.0            # intrinsic reward: scale * (surprise - mean(log var) / 2)
    precision_decay: 0.99          # running error variance (1 / precision) per output
    candidates: 32                 # sampled actions per step (continuous action spaces)
    buffer_size: 50000             # replay buffer (transitions), saved with the run
    batch_size: 64
    learning_starts: 1000          # env steps before the first update
    train_freq: 1                  # env steps (over all envs) between updates
    gradient_steps: 1              # updates each time
    target_update_interval: 500    # updates between target-network copies
    n_steps: 1                     # Q learns from n-step returns (1: one-step); a list such as
                                   # [3, 5]: from the mean of those n-step targets
    target_tau: 1.0                # fraction of the way each copy moves (1: hard copy)
    max_grad_norm: 10.0            # each network's update rescaled to at most this norm
    error_clip: 1.0                # Huber threshold: TD errors clipped to +-error_clip
    reward_scale: 1.0              # c: rewards scaled before learning
    normalize_observations: true   # bounded observation dimensions scaled to [-1, 1]

Each module's ``learner_kwargs`` default to ``{formulation: fixed_prediction, feedback: mirror}``
(backprop's chain rule through error synapses that mirror the forward weights: no weight
transport, but not iterative predictive coding). Every module
receives errors only, so each must use an error- or target-driven learner.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from biocredit.agents.config import NetworkConfig, build_section
from biocredit.errors import ConfigError
from biocredit.learners.base import ErrorDrivenLearner
from biocredit.learners.registry import learners_of_kind, learns_from


def _is(value: Any, kind: str) -> bool:
    """Whether ``value`` is of the YAML scalar type ``kind`` (an int counts as a float)."""
    if isinstance(value, bool) or kind == "bool":
        return kind == "bool" and isinstance(value, bool)
    return isinstance(value, int) or (kind == "float" and isinstance(value, float))


def pc_network() -> NetworkConfig:
    """A pc network with fixed-prediction inference whose error synapses mirror the forward
    weights from their response to noise: backprop's chain rule through mirrored weights,
    without weight transport (hidden-gradient cosine 0.997 to bp, issue 19). The agent's
    benchmarks were measured with this setting, before pc's default became iterative inference;
    the Kolen-Pollack-style ``learned`` rule collapsed under Adam."""
    return NetworkConfig(
        learner="pc",
        learner_kwargs={"formulation": "fixed_prediction", "feedback": "mirror"},
        hidden=[64, 64],
        lr=1e-3,
        optimizer="adam",
    )


@dataclass
class ActiveInferenceModules:
    """The three networks: generative world model, instrumental and epistemic values (every
    value head is built from ``value``)."""

    world_model: NetworkConfig = field(default_factory=pc_network)
    value: NetworkConfig = field(default_factory=pc_network)
    epistemic: NetworkConfig = field(default_factory=pc_network)


@dataclass
class ActiveInferenceConfig:
    """Everything that defines an active-inference agent; see the module docstring."""

    modules: ActiveInferenceModules = field(default_factory=ActiveInferenceModules)
    gamma: float = 0.99
    epistemic_gamma: float = 0.99
    epistemic_weight: float = 1.0
    epistemic_weight_final: float = 0.0
    epistemic_decay_steps: int = 20_000
    surprise_scale: float = 1.0
    precision_decay: float = 0.99
    reward_scale: float = 1.0
    error_clip: float = 1.0
    normalize_observations: bool = True
    candidates: int = 32
    buffer_size: int = 50_000
    batch_size: int = 64
    learning_starts: int = 1000
    train_freq: int = 1
    gradient_steps: int = 1
    target_update_interval: int = 500
    n_steps: int | list[int] = 1
    target_tau: float = 1.0
    max_grad_norm: float = 10.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type in ("int", "float", "bool") and not _is(value, item.type):
                raise ConfigError(
                    f"'agent_kwargs.{item.name}' must be {item.type}, got "
                    f"{type(value).__name__} {value!r}."
                )
        for key in ("gamma", "epistemic_gamma", "precision_decay"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"'{key}' must be in [0, 1], got {value!r}.")
        for key in (
            "epistemic_weight",
            "epistemic_weight_final",
            "surprise_scale",
        ):
            if getattr(self, key) < 0:
                raise ConfigError(f"'{key}' must be >= 0, got {getattr(self, key)!r}.")
        if not 0.0 < self.target_tau <= 1.0:
            raise ConfigError(
                f"'target_tau' must be in (0, 1], got {self.target_tau!r}: 1 copies the networks "
                "every target_update_interval updates, e.g. 0.005 averages them in (Polyak)."
            )
        for key in ("reward_scale", "error_clip", "max_grad_norm"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"'{key}' must be > 0, got {getattr(self, key)!r}.")
        for key in (
            "candidates",
            "buffer_size",
            "batch_size",
            "train_freq",
            "gradient_steps",
            "target_update_interval",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"'{key}' must be >= 1, got {getattr(self, key)!r}.")
        self._check_n_steps()
        for key in ("epistemic_decay_steps", "learning_starts"):
            if getattr(self, key) < 0:
                raise ConfigError(f"'{key}' must be >= 0, got {getattr(self, key)!r}.")
        modules = self.modules
        for role in ("world_model", "value", "epistemic"):
            config = getattr(modules, role)
            if config is None:
                raise ConfigError(
                    f"modules.{role} is null, but the active-inference agent needs all three "
                    "modules (world_model, value, epistemic). Give it a network, e.g. "
                    "{learner: pc, hidden: [64, 64]}."
                )
            if not config.error_driven:
                raise ConfigError(
                    f"modules.{role} uses learner '{config.learner}', which learns from "
                    f"{learns_from(config.learner)}, but every module of the "
                    "active-inference agent learns from prediction or TD errors. Use an "
                    f"error- or target-driven learner: {learners_of_kind(ErrorDrivenLearner)}."
                )

    @property
    def horizons(self) -> tuple[int, ...]:
        """The ``n`` of each n-step target that Q's target averages."""
        return (self.n_steps,) if isinstance(self.n_steps, int) else tuple(self.n_steps)

    def _check_n_steps(self) -> None:
        value = self.n_steps
        items = value if isinstance(value, list) else [value]
        if not items or not all(_is(n, "int") and n >= 1 for n in items):
            raise ConfigError(
                f"'n_steps' must be an int >= 1 or a non-empty list of them (Q's target the "
                f"mean of those n-step targets, e.g. [3, 5]), got {value!r}."
            )


NESTED: dict[tuple[type, str], type] = {
    (ActiveInferenceConfig, "modules"): ActiveInferenceModules,
    (ActiveInferenceModules, "world_model"): NetworkConfig,
    (ActiveInferenceModules, "value"): NetworkConfig,
    (ActiveInferenceModules, "epistemic"): NetworkConfig,
}


def active_inference_config_from_dict(data: dict[str, Any]) -> ActiveInferenceConfig:
    """Validate ``agent_kwargs`` into an :class:`ActiveInferenceConfig`."""
    return build_section(ActiveInferenceConfig, data, "agent_kwargs", NESTED)
