"""Pieces shared by every biocredit SB3 policy."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from torch import nn

from biocredit.errors import ConfigError, unknown_name
from biocredit.learners.activations import TORCH_ACTIVATION_NAMES, get_activation
from biocredit.learners.base import ErrorDrivenLearner, SignalFreeLearner
from biocredit.learners.network import LocalNetwork
from biocredit.learners.registry import (
    DEFAULT_LEARNER,
    learner_class,
    learners_of_kind,
    learns_from,
    make_learner,
)
from biocredit.learners.spec import NetworkSpec


def activation_name(activation_fn: type[nn.Module] | str) -> str:
    """Map SB3's ``activation_fn`` (a torch class) or a name to a biocredit activation name."""
    if isinstance(activation_fn, str):
        return get_activation(activation_fn).name
    if activation_fn not in TORCH_ACTIVATION_NAMES:
        valid = ", ".join(cls.__name__ for cls in TORCH_ACTIVATION_NAMES)
        raise ConfigError(
            f"activation_fn={activation_fn!r} has no local derivative in biocredit. "
            f"Use one of: {valid} (or their names, e.g. 'tanh')."
        )
    return TORCH_ACTIVATION_NAMES[activation_fn]


def torch_activation(name: str) -> type[nn.Module]:
    """The torch class for an activation name, for SB3 code that instantiates it."""
    by_name = {value: cls for cls, value in TORCH_ACTIVATION_NAMES.items()}
    if name not in by_name:
        raise unknown_name("activation", name, by_name)
    return by_name[name]


def action_param_dim(action_space: spaces.Space) -> int:
    """Number of network outputs that parameterise the action distribution."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary):
        return int(np.prod(action_space.shape))
    if isinstance(action_space, spaces.Box):
        return int(np.prod(action_space.shape))
    raise ConfigError(
        f"Action space {action_space} is not supported. "
        "Expected Discrete, MultiDiscrete, MultiBinary or Box."
    )


def hidden_sizes(net_arch: Any, role: str) -> tuple[int, ...]:
    """Hidden sizes for ``role`` (``"pi"``, ``"vf"``, ``"qf"``) from SB3's ``net_arch``.

    A list applies to every network, a dict gives one list per role, as in SB3 2.x.
    """
    if net_arch is None:
        return (64, 64)
    if isinstance(net_arch, dict):
        if role not in net_arch:
            raise ConfigError(
                f"net_arch={net_arch!r} has no '{role}' entry. "
                f"Give a list for all networks or a dict with the key '{role}'."
            )
        net_arch = net_arch[role]
    if not isinstance(net_arch, (list, tuple)):
        raise ConfigError(f"net_arch must be a list of layer sizes or a dict, got {net_arch!r}.")
    return tuple(net_arch)


def build_network(
    in_features: int,
    hidden: tuple[int, ...],
    out_features: int,
    activation: str,
    learner: str,
    learner_kwargs: dict[str, Any] | None,
) -> LocalNetwork:
    """A :class:`LocalNetwork` trained end to end, output layer included, by ``learner``.

    SB3's losses reach a network only as ``dL/dy`` at its output, so the learner must be error-
    or target-driven.
    """
    cls = learner_class(learner)
    if not issubclass(cls, ErrorDrivenLearner):
        instead = (
            f"; '{learner}' can train the features extractor instead "
            f"(features_extractor_class=BioFeaturesExtractor, "
            f"features_extractor_kwargs={{'learner': '{learner}'}}, PPO and A2C)"
            if issubclass(cls, SignalFreeLearner)
            else f"; {learner} runs in native agents (--agent neuromodulated-ac)"
        )
        raise ConfigError(
            f"Learner '{learner}' learns from {learns_from(learner)}, but an SB3 algorithm "
            "trains its networks through losses, which reach them as an output error. Use an "
            f"error- or target-driven learner: {learners_of_kind(ErrorDrivenLearner)}{instead}."
        )
    spec = NetworkSpec(in_features, hidden, out_features, activation)
    return LocalNetwork(spec, learner, **(learner_kwargs or {}))


class LearnerChoice:
    """Which learner trains the actor (or Q-network) and which trains the critics.

    The critics' options default to the actor's when both have the same learner, and to the
    learner's defaults when the critic has another (one learner's options do not fit another).
    """

    def __init__(
        self,
        learner: str = DEFAULT_LEARNER,
        learner_kwargs: dict[str, Any] | None = None,
        critic_learner: str | None = None,
        critic_learner_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.learner = learner
        self.learner_kwargs = dict(learner_kwargs or {})
        self.critic_learner = critic_learner or learner
        if critic_learner_kwargs is None:
            same = self.critic_learner == learner
            critic_learner_kwargs = self.learner_kwargs if same else {}
        self.critic_learner_kwargs = dict(critic_learner_kwargs)

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "learner": self.learner,
            "learner_kwargs": self.learner_kwargs,
            "critic_learner": self.critic_learner,
            "critic_learner_kwargs": self.critic_learner_kwargs,
        }

    def describe(self, critic: bool = True) -> str:
        """``learner=dfa(scale=1.0, ...), critic_learner=...``; a configuration that computes
        backprop's gradients says so."""
        roles = [("learner", self.learner, self.learner_kwargs)]
        if critic:
            roles.append(("critic_learner", self.critic_learner, self.critic_learner_kwargs))
        return ", ".join(
            f"{role}={make_learner(name, **options).describe()}" for role, name, options in roles
        )
