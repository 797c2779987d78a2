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

from dataclasses import dataclass
from typing import Any

from biocredit.agents.memory import check_delay_line_gains
from biocredit.errors import ConfigError
from biocredit.learners import ConvLayerSpec, ConvLearner, learner_class
from biocredit.learners.activations import ACTIVATIONS
from biocredit.learners.base import (
    ErrorDrivenLearner,
    ModulatorDrivenLearner,
    SignalFreeLearner,
)
from biocredit.learners.conv_network import conv_refusal
from biocredit.learners.conv_spec import POOLINGS
from biocredit.learners.registry import learners_of_kind, learns_from, list_learners
from biocredit.optimizers import OPTIMIZERS
from biocredit.schema import Config, at_least, build, choice, in_range, option, positive

MEMORY_KINDS = ("passthrough", "eqprop")
#: what a signal-free perception module gets as its modulator: nothing, or each env's TD-error sign
PERCEPTION_MODULATORS = ("none", "td_sign")
LR_HELP = "learning rate; with sgd, the rule's own rate eta"


@dataclass
class NetworkConfig(Config):
    """A module's network: hidden sizes, activation, learner and its optimizer."""

    learner: str = choice("hebbian3f", list_learners, kind="learner", help="its learner")
    learner_kwargs: dict[str, Any] = option({}, help="the learner's options")
    hidden: list[int] = at_least(1, [64, 64], help="hidden layer widths")
    activation: str = choice("tanh", ACTIVATIONS, kind="activation", help="hidden activation")
    lr: float = positive(1e-3, help=LR_HELP)
    optimizer: str = choice("sgd", OPTIMIZERS, kind="optimizer", help="torch optimizer")

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

    learner: str = choice("dfa", list_learners, kind="learner", help="its learner")
    hidden: list[int] = at_least(1, [64], help="hidden layer widths")
    features: int = at_least(1, 32, help="output width: the features handed on")
    modulator: str = choice(
        "none",
        PERCEPTION_MODULATORS,
        kind="perception modulator",
        help="a signal-free learner's modulator: none, or each env's TD-error sign",
    )
    convs: list[dict[str, int]] | None = option(
        None, help="conv layers (channels, kernel, stride, padding, pool) before the dense ones"
    )
    pooling: str = choice("max", POOLINGS, kind="perception pooling", help="the convs' pooling")

    def check(self) -> None:
        super().check()
        self.check_modulator_fits_learner()
        self.check_convs()

    def check_convs(self) -> None:
        """Each conv layer is well formed and the learner has a conv rule."""
        if self.convs is None:
            return
        for i, conv in enumerate(self.convs):
            ConvLayerSpec.parse(conv, f"modules.perception.convs[{i}]")
        if not issubclass(learner_class(self.learner), ConvLearner):
            raise conv_refusal(self.learner)

    def check_modulator_fits_learner(self) -> None:
        if self.modulator != "none" and not self.signal_free:
            raise ConfigError(
                f"modules.perception.modulator '{self.modulator}' is for signal-free learners "
                f"({learners_of_kind(SignalFreeLearner)}), but the perception learner is "
                f"'{self.learner}', which learns from {learns_from(self.learner)}. Remove the "
                "modulator or use a signal-free learner."
            )


@dataclass
class MemoryConfig(Config):
    """Features + previous state -> state: ``passthrough`` (no memory) or ``eqprop``, an
    energy-based recurrent memory learned by equilibrium propagation
    (:mod:`biocredit.agents.memory`); the other keys configure ``eqprop``. ``copy_gain`` and
    ``change_gain`` (both 0, off, by default) start it as a delay line that holds a copy of the
    features and their one-step change (:class:`~biocredit.agents.memory.EqPropMemory`)."""

    kind: str = choice(
        "passthrough", MEMORY_KINDS, kind="memory kind", help="passthrough (none) or eqprop"
    )
    units: int = at_least(1, 32, help="state units")
    steps: int = at_least(1, 20, help="settling steps per phase")
    beta: float = positive(0.1, help="nudging strength of the nudged phase")
    dt: float = in_range(0, 1, 1.0, exclusive_min=True, help="settling step size")
    self_excitation: float = in_range(
        0,
        1,
        0.5,
        exclusive_max=True,
        help="each unit's self-coupling",
        hint="At 1 or more a unit's energy is not convex, its only stable states are the "
        "bounds, where the gradient through the settled state is 0, and equilibrium "
        "propagation has nothing to compute. Hold information across steps with "
        "recurrence instead (recurrence / (1 - self_excitation) > 1), e.g. the defaults "
        "self_excitation: 0.5, recurrence: 1.0.",
    )
    recurrence: float = option(1.0, help="gain of the state's recurrent weights")
    copy_gain: float = at_least(
        0, 0.0, finite=True, help="delay line: gain of the copy of the features (0: off)"
    )
    change_gain: float = at_least(
        0, 0.0, finite=True, help="delay line: gain of the features' one-step change (0: off)"
    )
    lr: float = positive(1e-3, help=LR_HELP)
    optimizer: str = choice("sgd", OPTIMIZERS, kind="optimizer", help="torch optimizer")

    def check(self) -> None:
        check_delay_line_gains(self.copy_gain, self.change_gain)

    @property
    def learned(self) -> bool:
        return self.kind != "passthrough"


@dataclass
class PolicyConfig(Config):
    """State -> action distribution (actor) and value (critic)."""

    actor: NetworkConfig = option(factory=NetworkConfig, help="state -> action distribution")
    critic: NetworkConfig = option(factory=NetworkConfig, help="state -> value")


@dataclass
class ModulesConfig(Config):
    """Which module fills each role; ``null`` leaves an optional role out."""

    perception: PerceptionConfig | None = option(None, help="observation -> features")
    memory: MemoryConfig | None = option(None, help="features + state -> state")
    policy: PolicyConfig = option(
        factory=PolicyConfig,
        help="actor and critic",
        hint="Every agent needs a policy (actor and critic).",
    )
    world_model: NetworkConfig | None = option(None, help="(state, action) -> (next obs, reward)")


@dataclass
class AgentConfig(Config):
    """Everything that defines a modular agent."""

    modules: ModulesConfig = option(factory=ModulesConfig, help="the modules, by role")
    gamma: float = in_range(0, 1, 0.99, help="discount")
    ortho_init: bool = option(False, help="orthogonal initial weights")
    zero_output_init: bool = option(
        False, help="the actor's and critic's output layers start at zero (after ortho_init)"
    )
    log_std_init: float = option(0.0, help="initial log std of a continuous action")
    log_std_lr: float = positive(1e-3, help="learning rate of the action log std")
    normalize_observations: bool = option(
        False, help="centre and scale observations by their running mean and variance"
    )

    def check(self) -> None:
        self.check_roles_fit_learners()
        self.check_every_learned_module_is_taught()

    def check_roles_fit_learners(self) -> None:
        """Each role's learner is reached by the signal that role receives."""
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

    def check_every_learned_module_is_taught(self) -> None:
        """An error-driven perception or a learned memory needs a module that sends errors."""
        modules, policy = self.modules, self.modules.policy
        senders = [
            policy.actor.error_driven,
            policy.critic.error_driven,
            modules.world_model is not None,
        ]
        learned = {"perception": modules.perception is not None and modules.perception.error_driven}
        learned["memory"] = modules.memory is not None and modules.memory.learned
        for role, present in learned.items():
            if present and not any(senders):
                raise ConfigError(
                    f"modules.{role} would never learn: the actor and critic use "
                    "modulator-driven learners that send no error down, and there is no "
                    "world_model. Add modules.world_model (e.g. {learner: dfa}), give the actor "
                    f"or critic an error-driven learner, or set {role}: null."
                )


def agent_config_from_dict(data: dict[str, Any]) -> AgentConfig:
    """Validate ``agent_kwargs`` into an :class:`AgentConfig`."""
    return build(AgentConfig, data, "agent_kwargs")
