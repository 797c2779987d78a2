"""A Stable-Baselines3 features extractor whose layers learn by a signal-free learner.

``features = network(observation)``, a :class:`LocalNetwork` trained by ``softhebb``,
``hebbian``, ``ff`` or ``pff`` from the observations alone, with its own optimizer (which also
trains the learner's own synapses: pff's top-down and generative ones); the policy and value
networks above it learn by their own (error-driven) learner from the features, detached: no loss,
and no head's error, reaches the extractor, and its update is the rule's and nothing else.

It learns on the batches the algorithm trains on: every forward pass in training mode with
gradients enabled (PPO: each minibatch of each epoch; A2C: each rollout) records the pass, hands
it to the learner and steps the extractor's optimizer, then returns the features computed before
that step. Rollout collection and prediction (evaluation mode, no gradients) change nothing. The
policy's optimizer, its learning-rate schedule and gradient clipping leave the extractor alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from biocredit.errors import ConfigError
from biocredit.learners.base import SignalFreeLearner
from biocredit.learners.network import LocalNetwork
from biocredit.learners.options import check_number
from biocredit.learners.registry import learner_class, learners_of_kind, learns_from
from biocredit.learners.spec import NetworkSpec
from biocredit.optimizers import optimizer_class


class BioFeaturesExtractor(BaseFeaturesExtractor):
    """Observation -> ``features_dim`` features by a local network that learns from its inputs.

    ``PPO(BioActorCriticPolicy, env, policy_kwargs=dict(learner="dfa",
    features_extractor_class=BioFeaturesExtractor,
    features_extractor_kwargs=dict(learner="softhebb", hidden=[64], features_dim=32)))``

    :param learner: a signal-free learner (``softhebb``, ``hebbian``, ``ff``, ``pff``)
    :param learner_kwargs: its options
    :param hidden: hidden layer widths (``[]``: one layer)
    :param features_dim: number of features handed to the policy and value networks
    :param activation: hidden units' activation
    :param lr: the extractor optimizer's learning rate (the rule's rate ``eta`` with ``sgd``)
    :param optimizer: a name in :data:`biocredit.optimizers.OPTIMIZERS` (``sgd``, ``adam``,
        ``adamw``, ``rmsprop``)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        learner: str = "softhebb",
        learner_kwargs: dict[str, Any] | None = None,
        hidden: Sequence[int] = (64,),
        features_dim: int = 32,
        activation: str = "tanh",
        lr: float = 1e-3,
        optimizer: str = "sgd",
    ) -> None:
        if not issubclass(learner_class(learner), SignalFreeLearner):
            raise ConfigError(
                f"features_extractor_kwargs.learner '{learner}' learns from "
                f"{learns_from(learner)}, but the extractor learns from the "
                f"observations alone. Use a signal-free learner: "
                f"{learners_of_kind(SignalFreeLearner)}; an error-driven learner trains the "
                "policy and value networks from the observation directly (net_arch)."
            )
        optimizer_type = optimizer_class(optimizer, "features extractor optimizer")
        lr = check_number("features_extractor_kwargs", "lr", lr, hint=1e-3)
        super().__init__(observation_space, features_dim)
        n_in = get_flattened_obs_dim(observation_space)
        spec = NetworkSpec(n_in, tuple(hidden), features_dim, activation)
        self.flatten = nn.Flatten()
        self.network = LocalNetwork(spec, learner, **(learner_kwargs or {}))
        self.optimizer = optimizer_type(self.network.parameters(), lr=lr)

    def forward(self, observations: Tensor) -> Tensor:
        x = self.flatten(observations)
        learner, layers = self.network.learner, self.network.layers
        learning = self.training and torch.is_grad_enabled()
        with torch.no_grad():
            if not learning:
                return learner.forward_pass(layers, x, record=False)[0]
            features, cache = learner.forward_pass(layers, x, record=True)
            assert isinstance(learner, SignalFreeLearner) and cache is not None
            learner.learn(layers, cache)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return features
