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

from dataclasses import dataclass
from typing import Any

from biocredit.agents.config import NetworkConfig
from biocredit.errors import ConfigError
from biocredit.learners.base import ErrorDrivenLearner
from biocredit.learners.registry import learners_of_kind, learns_from
from biocredit.schema import Config, at_least, build, in_range, option, positive

NEEDS_ALL = (
    "The active-inference agent needs all three modules (world_model, value, epistemic). "
    "Give it a network, e.g. {learner: pc, hidden: [64, 64]}."
)


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
class ActiveInferenceModules(Config):
    """The three networks: generative world model, instrumental and epistemic values (every
    value head is built from ``value``)."""

    world_model: NetworkConfig = option(
        factory=pc_network, help="generative model: (s, a) -> (ds, r)", hint=NEEDS_ALL
    )
    value: NetworkConfig = option(factory=pc_network, help="instrumental Q", hint=NEEDS_ALL)
    epistemic: NetworkConfig = option(factory=pc_network, help="epistemic Q", hint=NEEDS_ALL)

    def check(self) -> None:
        self.check_modules_learn_from_errors()

    def check_modules_learn_from_errors(self) -> None:
        for role in ("world_model", "value", "epistemic"):
            config = getattr(self, role)
            if not config.error_driven:
                raise ConfigError(
                    f"modules.{role} uses learner '{config.learner}', which learns from "
                    f"{learns_from(config.learner)}, but every module of the "
                    "active-inference agent learns from prediction or TD errors. Use an "
                    f"error- or target-driven learner: {learners_of_kind(ErrorDrivenLearner)}."
                )


@dataclass
class ActiveInferenceConfig(Config):
    """Everything that defines an active-inference agent; see the module docstring."""

    modules: ActiveInferenceModules = option(
        factory=ActiveInferenceModules, help="the three networks"
    )
    gamma: float = in_range(0, 1, 0.99, help="discount of the instrumental value")
    epistemic_gamma: float = in_range(0, 1, 0.99, help="discount of the epistemic value")
    epistemic_weight: float = at_least(0, 1.0, help="w at the start")
    epistemic_weight_final: float = at_least(0, 0.0, help="w after epistemic_decay_steps")
    epistemic_decay_steps: int = at_least(0, 20_000, help="env steps over which w decays")
    surprise_scale: float = at_least(
        0, 1.0, help="intrinsic reward: scale * (surprise - mean(log var) / 2)"
    )
    precision_decay: float = in_range(
        0, 1, 0.99, help="decay of the running error variance (1 / precision) per output"
    )
    reward_scale: float = positive(1.0, help="c: rewards scaled before learning")
    error_clip: float = positive(1.0, help="Huber threshold: TD errors clipped to +-error_clip")
    normalize_observations: bool = option(
        True, help="bounded observation dimensions scaled to [-1, 1]"
    )
    candidates: int = at_least(1, 32, help="sampled actions per step (continuous actions)")
    buffer_size: int = at_least(1, 50_000, help="replay buffer (transitions), saved with the run")
    batch_size: int = at_least(1, 64, help="transitions per update")
    learning_starts: int = at_least(0, 1000, help="env steps before the first update")
    train_freq: int = at_least(1, 1, help="env steps (over all envs) between updates")
    gradient_steps: int = at_least(1, 1, help="updates each time")
    target_update_interval: int = at_least(1, 500, help="updates between target-network copies")
    n_steps: int | list[int] = at_least(
        1,
        1,
        nonempty=True,
        help="Q learns from n-step returns; a list: from the mean of those n-step targets",
        hint="Give an int >= 1 or a non-empty list of them (Q's target the mean of those "
        "n-step targets, e.g. [3, 5]).",
    )
    target_tau: float = in_range(
        0,
        1,
        1.0,
        exclusive_min=True,
        help="fraction of the way each target copy moves (1: hard copy)",
        hint="target_tau: 1 copies the networks every target_update_interval updates, e.g. "
        "0.005 averages them in (Polyak).",
    )
    max_grad_norm: float = positive(10.0, help="each network's update rescaled to at most this")

    @property
    def horizons(self) -> tuple[int, ...]:
        """The ``n`` of each n-step target that Q's target averages."""
        return (self.n_steps,) if isinstance(self.n_steps, int) else tuple(self.n_steps)


def active_inference_config_from_dict(data: dict[str, Any]) -> ActiveInferenceConfig:
    """Validate ``agent_kwargs`` into an :class:`ActiveInferenceConfig`."""
    return build(ActiveInferenceConfig, data, "agent_kwargs")
