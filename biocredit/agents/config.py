"""Agent configuration: which module fills each role, with which learner.

    modules:
      perception: {learner: dfa, hidden: [64], features: 32}   # or null: passthrough
      # image observations (channels, height, width): conv layers before the dense ones
      # perception: {learner: dfa, convs: [{channels: 16, kernel: 8, stride: 4}], hidden: []}
      memory: {kind: eqprop, units: 32}                         # or passthrough / null
      policy:
        actor:  {learner: hebbian3f, hidden: [64, 64], lr: 1.0e-3}
        critic: {learner: hebbian3f, hidden: [64, 64], lr: 3.0e-4}
      world_model: {learner: dfa, hidden: [64]}                 # or null: none

Signal fit: the actor and critic take any learner reached by the TD error (modulator-driven
ones learn from it on eligibility traces, error-driven ones from the one-step output error). The
world model learns from its prediction error, so it needs an error-driven learner. Perception
takes an error-driven learner, which then needs some error-driven module downstream (an
error-driven actor or critic, or a world model) to send it an error, or a signal-free one
(``softhebb``, ``hebbian``, ``ff``, ``pff``), which learns from the observations alone: no
error from downstream reaches it (with ``modulator: td_sign``, each env's TD-error sign scales
its update). Every mismatch is a :class:`ConfigError` that names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch

from biocredit.agents.memory import check_delay_line_gains
from biocredit.errors import ConfigError, check_keys, unknown_name
from biocredit.learners import ConvLayerSpec, ConvLearner, learner_class
from biocredit.learners.base import (
    ErrorDrivenLearner,
    ModulatorDrivenLearner,
    SignalFreeLearner,
)
from biocredit.learners.conv_network import conv_refusal
from biocredit.learners.conv_spec import POOLINGS
from biocredit.learners.registry import learners_of_kind, learns_from

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
}
MEMORY_KINDS = ("passthrough", "eqprop")
#: what a signal-free perception module gets as its modulator: nothing, or each env's TD-error sign
PERCEPTION_MODULATORS = ("none", "td_sign")


@dataclass
class NetworkConfig:
    """A module's network: hidden sizes, activation, learner and its optimizer."""

    learner: str = "hebbian3f"
    learner_kwargs: dict[str, Any] = field(default_factory=dict)
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    lr: float = 1e-3
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        learner_class(self.learner)
        if self.optimizer not in OPTIMIZERS:
            raise unknown_name("optimizer", self.optimizer, OPTIMIZERS)
        if not self.lr > 0:
            raise ConfigError(f"Learning rate 'lr' must be > 0, got {self.lr!r}.")

    @property
    def error_driven(self) -> bool:
        """Whether the learner is reached by an output error (error- or target-driven)."""
        return issubclass(learner_class(self.learner), ErrorDrivenLearner)

    @property
    def signal_free(self) -> bool:
        """Whether the learner learns from its inputs alone."""
        return issubclass(learner_class(self.learner), SignalFreeLearner)


@dataclass
class PerceptionConfig(NetworkConfig):
    """Observation -> features; ``features`` is the output width; ``modulator`` (``none`` or
    ``td_sign``) is what a signal-free learner gets as its modulator. ``convs`` (conv layers:
    ``channels``, ``kernel``, ``stride``, ``padding``, ``pool``) put a local conv network
    before the ``hidden`` dense layers, for observations of shape (channels, height, width);
    ``pooling`` (``max`` or ``avg``) is their pooling."""

    learner: str = "dfa"
    hidden: list[int] = field(default_factory=lambda: [64])
    features: int = 32
    modulator: str = "none"
    convs: list[dict[str, int]] | None = None
    pooling: str = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.convs is not None:
            if not isinstance(self.convs, list):
                raise ConfigError(
                    "modules.perception.convs must be a list of conv layers such as "
                    f"[{{channels: 16, kernel: 8, stride: 4}}], got {self.convs!r}."
                )
            for i, conv in enumerate(self.convs):
                ConvLayerSpec.parse(conv, f"modules.perception.convs[{i}]")
            if not issubclass(learner_class(self.learner), ConvLearner):
                raise conv_refusal(self.learner)
        if self.pooling not in POOLINGS:
            raise unknown_name("perception pooling", self.pooling, POOLINGS)
        if self.modulator not in PERCEPTION_MODULATORS:
            raise unknown_name("perception modulator", self.modulator, PERCEPTION_MODULATORS)
        if self.modulator != "none" and not self.signal_free:
            raise ConfigError(
                f"modules.perception.modulator '{self.modulator}' is for signal-free learners "
                f"({learners_of_kind(SignalFreeLearner)}), but the perception learner is "
                f"'{self.learner}', which learns from {learns_from(self.learner)}. Remove the "
                "modulator or use a signal-free learner."
            )


@dataclass
class MemoryConfig:
    """Features + previous state -> state: ``passthrough`` (no memory) or ``eqprop``, an
    energy-based recurrent memory learned by equilibrium propagation
    (:mod:`biocredit.agents.memory`); the other keys configure ``eqprop``. ``copy_gain`` and
    ``change_gain`` (both 0, off, by default) start it as a delay line that holds a copy of the
    features and their one-step change (:class:`~biocredit.agents.memory.EqPropMemory`)."""

    kind: str = "passthrough"
    units: int = 32
    steps: int = 20
    beta: float = 0.1
    dt: float = 1.0
    self_excitation: float = 0.5
    recurrence: float = 1.0
    copy_gain: float = 0.0
    change_gain: float = 0.0
    lr: float = 1e-3
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        if self.kind not in MEMORY_KINDS:
            raise unknown_name("memory kind", self.kind, MEMORY_KINDS)
        for key in ("units", "steps"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"modules.memory.{key} must be an integer >= 1, got {value!r}.")
        if not self.beta > 0:
            raise ConfigError(f"modules.memory.beta must be > 0, got {self.beta!r}.")
        if not 0 < self.dt <= 1:
            raise ConfigError(f"modules.memory.dt must be in (0, 1], got {self.dt!r}.")
        if not self.lr > 0:
            raise ConfigError(f"modules.memory.lr must be > 0, got {self.lr!r}.")
        if not 0 <= self.self_excitation < 1:
            raise ConfigError(
                f"modules.memory.self_excitation must be in [0, 1), got {self.self_excitation!r}: "
                "at 1 or more a unit's energy is not convex, its only stable states are the "
                "bounds, where the gradient through the settled state is 0, and equilibrium "
                "propagation has nothing to compute. Hold information across steps with "
                "recurrence instead (recurrence / (1 - self_excitation) > 1), e.g. the defaults "
                "self_excitation: 0.5, recurrence: 1.0."
            )
        for key in ("copy_gain", "change_gain"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(
                    f"modules.memory.{key} must be a number >= 0 (0: off), got {value!r}."
                )
            if value == float("inf"):
                raise ConfigError(f"modules.memory.{key} must be finite, got {value!r}.")
        check_delay_line_gains(self.copy_gain, self.change_gain)
        if self.optimizer not in OPTIMIZERS:
            raise unknown_name("optimizer", self.optimizer, OPTIMIZERS)

    @property
    def learned(self) -> bool:
        return self.kind != "passthrough"


@dataclass
class PolicyConfig:
    """State -> action distribution (actor) and value (critic)."""

    actor: NetworkConfig = field(default_factory=NetworkConfig)
    critic: NetworkConfig = field(default_factory=NetworkConfig)


@dataclass
class ModulesConfig:
    perception: PerceptionConfig | None = None
    memory: MemoryConfig | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    world_model: NetworkConfig | None = None


@dataclass
class AgentConfig:
    """Everything that defines a modular agent."""

    modules: ModulesConfig = field(default_factory=ModulesConfig)
    gamma: float = 0.99
    ortho_init: bool = False
    # the actor's and critic's output layers start at zero (after ortho_init, if both)
    zero_output_init: bool = False
    log_std_init: float = 0.0
    log_std_lr: float = 1e-3
    # centre and scale observations by their running mean and variance (ObservationNorm)
    normalize_observations: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"'gamma' must be in [0, 1], got {self.gamma!r}.")
        modules = self.modules
        perception, world_model = modules.perception, modules.world_model
        if perception is not None and not (perception.error_driven or perception.signal_free):
            raise ConfigError(
                f"modules.perception uses learner '{perception.learner}', which learns from "
                f"{learns_from(perception.learner)}, but the perception role "
                "only receives errors or learns from its inputs alone. Use an error- or "
                f"target-driven learner ({learners_of_kind(ErrorDrivenLearner)}) or a "
                f"signal-free one ({learners_of_kind(SignalFreeLearner)})."
            )
        if world_model is not None and not world_model.error_driven:
            raise ConfigError(
                f"modules.world_model uses learner '{world_model.learner}', which learns from "
                f"{learns_from(world_model.learner)}, but the world_model role "
                "only receives errors. Use an error- or target-driven learner: "
                f"{learners_of_kind(ErrorDrivenLearner)}."
            )
        policy = modules.policy
        for role, config in (("actor", policy.actor), ("critic", policy.critic)):
            if config.signal_free:
                raise ConfigError(
                    f"modules.policy.{role} uses learner '{config.learner}', which learns from "
                    "its inputs alone, but the policy learns from the TD error. Use it for "
                    f"perception (modules.perception.learner: {config.learner}) and give the "
                    "policy a learner the TD error reaches: "
                    f"{learners_of_kind(ErrorDrivenLearner)} or "
                    f"{learners_of_kind(ModulatorDrivenLearner)}."
                )
        senders = [
            policy.actor.error_driven,
            policy.critic.error_driven,
            world_model is not None,
        ]
        learned = {"perception": perception is not None and perception.error_driven}
        learned["memory"] = modules.memory is not None and modules.memory.learned
        for role, present in learned.items():
            if present and not any(senders):
                raise ConfigError(
                    f"modules.{role} would never learn: the actor and critic use "
                    "modulator-driven learners that send no error down, and there is no "
                    "world_model. Add modules.world_model (e.g. {learner: dfa}), give the actor "
                    f"or critic an error-driven learner, or set {role}: null."
                )


def build_section(
    cls: type, data: Any, where: str, nested: dict[tuple[type, str], type] | None = None
) -> Any:
    """Instantiate the dataclass ``cls`` from a mapping, checking keys and the nested sections
    that ``nested`` maps ``(class, key)`` to (the modular agent's by default)."""
    nested = NESTED if nested is None else nested
    if not isinstance(data, dict):
        raise ConfigError(f"'{where}' must be a mapping, got {type(data).__name__} {data!r}.")
    check_keys(data, [f.name for f in fields(cls)], where)
    kwargs = {}
    for key, value in data.items():
        section = nested.get((cls, key))
        kwargs[key] = (
            value
            if section is None or value is None
            else build_section(section, value, f"{where}.{key}", nested)
        )
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"Bad value in {where}: {exc}.") from None


NESTED: dict[tuple[type, str], type] = {
    (AgentConfig, "modules"): ModulesConfig,
    (ModulesConfig, "perception"): PerceptionConfig,
    (ModulesConfig, "memory"): MemoryConfig,
    (ModulesConfig, "policy"): PolicyConfig,
    (ModulesConfig, "world_model"): NetworkConfig,
    (PolicyConfig, "actor"): NetworkConfig,
    (PolicyConfig, "critic"): NetworkConfig,
}


def agent_config_from_dict(data: dict[str, Any]) -> AgentConfig:
    """Validate ``agent_kwargs`` into an :class:`AgentConfig`."""
    if "modules" in data and not isinstance(data["modules"], dict):
        raise ConfigError("agent_kwargs.modules must be a mapping of roles to modules.")
    modules = data.get("modules") or {}
    if "policy" in modules and modules["policy"] is None:
        raise ConfigError(
            "modules.policy is missing: every agent needs a policy (actor and critic)."
        )
    return build_section(AgentConfig, data, "agent_kwargs")
