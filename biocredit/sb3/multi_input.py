"""Dict observations, by SB3's ``MultiInputPolicy`` conventions, with no layer that backprop
would train behind the learner's back.

SB3's ``CombinedExtractor`` flattens each vector key of a ``Dict`` observation and runs each
image key through a ``NatureCNN``, whose layers backprop trains. :class:`BioCombinedExtractor`
flattens every key, after SB3's preprocessing (Discrete keys one-hot, MultiDiscrete and
MultiBinary as SB3 encodes them, image keys scaled to [0, 1]), and concatenates the keys in the
space's order: the same features as ``CombinedExtractor`` for vector keys, and no parameters.
Every trained layer sits after it, inside the learner's local networks, whose input layer sees
the whole observation.

The biocredit policies choose it by themselves for a ``Dict`` observation space, and refuse any
features extractor with parameters outside local networks (:func:`check_extractors`).
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from biocredit.errors import ConfigError
from biocredit.learners.network import LocalNetwork


class BioCombinedExtractor(BaseFeaturesExtractor):
    """Every key of a ``Dict`` observation flattened, the keys concatenated; no parameters."""

    def __init__(self, observation_space: spaces.Dict) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ConfigError(
                f"BioCombinedExtractor reads Dict observations, got {observation_space}. "
                "Leave features_extractor_class at its default for other spaces."
            )
        dims = {key: get_flattened_obs_dim(space) for key, space in observation_space.items()}
        super().__init__(observation_space, features_dim=sum(dims.values()))
        self.keys = list(dims)
        self.flatten = nn.Flatten()

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.flatten(observations[key]) for key in self.keys], dim=1)


def default_extractor(observation_space: spaces.Space, kwargs: dict[str, Any]) -> None:
    """Use :class:`BioCombinedExtractor` for a ``Dict`` space unless an extractor is given."""
    if isinstance(observation_space, spaces.Dict):
        kwargs.setdefault("features_extractor_class", BioCombinedExtractor)


def check_extractors(policy: nn.Module) -> None:
    """Refuse a features extractor with parameters outside local networks: backprop would train
    them, outside any learner, from the error the policy's networks hand back to their input."""
    for name, module in policy.named_modules():
        if not isinstance(module, BaseFeaturesExtractor):
            continue
        local = {id(p) for net in module.modules() if isinstance(net, LocalNetwork)
                 for p in net.parameters()}  # fmt: skip
        if any(id(p) not in local for p in module.parameters()):
            raise ConfigError(
                f"features_extractor_class={type(module).__name__} has trainable layers "
                f"('{name}'), which backprop would train behind the learner's back. biocredit "
                "policies need an extractor whose layers, if any, are local networks trained by "
                "a learner: leave features_extractor_class at its default (FlattenExtractor; "
                "BioCombinedExtractor for Dict observations, which flattens every key as SB3's "
                "CombinedExtractor does its vector keys)."
            )
