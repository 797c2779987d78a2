"""On-policy actor-critic policy (PPO, A2C) whose networks are trained by a biocredit learner.

The policy network maps the observation all the way to the action-distribution parameters
(logits or Gaussian mean) and the value network all the way to the value: SB3's ``action_net``
and ``value_net`` heads are the output layers of these local networks, so no layer is trained by
backprop behind the learner's back. A state-independent Gaussian ``log_std`` stays a free
parameter at the output; its gradient is the local quantity ``dL/dlog_std``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import Tensor, nn

from biocredit.errors import ConfigError
from biocredit.learners.network import LocalNetwork
from biocredit.learners.registry import DEFAULT_LEARNER
from biocredit.sb3.common import (
    LearnerChoice,
    action_param_dim,
    activation_name,
    build_network,
    hidden_sizes,
)
from biocredit.sb3.conv_features import BioCnnExtractor, conv_extractor_defaults
from biocredit.sb3.features import BioFeaturesExtractor
from biocredit.sb3.multi_input import check_extractors, default_extractor

#: the extractors a run config may name (``policy_kwargs.features_extractor_class``)
EXTRACTORS: dict[str, type[nn.Module]] = {
    "FlattenExtractor": FlattenExtractor,
    "BioFeaturesExtractor": BioFeaturesExtractor,
    "BioCnnExtractor": BioCnnExtractor,
}


class BioActorCriticNetworks(nn.Module):
    """SB3's ``mlp_extractor`` slot, holding the full policy and value networks.

    Its "latents" are already the final outputs: ``latent_pi`` are the distribution parameters
    and ``latent_vf`` the value, so the policy sets ``action_net`` and ``value_net`` to identity.
    """

    def __init__(self, policy_net: LocalNetwork, value_net: LocalNetwork) -> None:
        super().__init__()
        self.policy_net = policy_net
        self.value_net = value_net
        self.latent_dim_pi = policy_net.spec.out_features
        self.latent_dim_vf = value_net.spec.out_features

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.policy_net(features), self.value_net(features)

    def forward_actor(self, features: Tensor) -> Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: Tensor) -> Tensor:
        return self.value_net(features)


class BioActorCriticPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` whose policy and value networks learn by ``learner``.

    Use as ``PPO(BioActorCriticPolicy, env, policy_kwargs=dict(learner="dfa", net_arch=[64, 64]))``.

    :param learner: learner name for both networks (``bp``, ``fa``, ``dfa`` ...; default
        ``dfa``, as the CLI's)
    :param learner_kwargs: options for that learner
    :param critic_learner: a different learner for the value network (default: ``learner``)
    :param critic_learner_kwargs: options for the critic's learner (default: ``learner_kwargs``
        when the critic has the same learner, else that learner's defaults)

    The other arguments are SB3's; ``net_arch`` is a list (both networks) or
    ``dict(pi=[...], vf=[...])``; ``activation_fn`` must have a known derivative (tanh, relu ...).
    ``features_extractor_class`` is SB3's ``FlattenExtractor`` (the networks read the
    observation), :class:`~biocredit.sb3.features.BioFeaturesExtractor`, whose layers learn by
    a signal-free learner with their own optimizer while the policy and value networks learn from
    its features by ``learner``, or :class:`~biocredit.sb3.conv_features.BioCnnExtractor` for
    images (:class:`BioCnnPolicy`), whose conv network learns, by ``learner`` unless its own
    ``learner`` is given, from the errors the policy and value networks send into its
    features. Dict observations get
    :class:`~biocredit.sb3.multi_input.BioCombinedExtractor` (every key flattened and
    concatenated, SB3's ``MultiInputPolicy`` convention without its CNNs). gSDE and features
    extractors with parameters outside local networks are refused: backprop would train them.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        learner: str = DEFAULT_LEARNER,
        learner_kwargs: dict[str, Any] | None = None,
        critic_learner: str | None = None,
        critic_learner_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("use_sde"):
            raise ConfigError(
                "use_sde=True is not supported by BioActorCriticPolicy: gSDE draws its noise from "
                "hidden features outside the learner. Set use_sde=False."
            )
        self.choice = LearnerChoice(learner, learner_kwargs, critic_learner, critic_learner_kwargs)
        default_extractor(observation_space, kwargs)
        conv_extractor_defaults(kwargs, learner, learner_kwargs)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
        check_extractors(self)

    def _build_mlp_extractor(self) -> None:
        activation = activation_name(self.activation_fn)
        self.mlp_extractor = BioActorCriticNetworks(
            policy_net=build_network(
                self.features_dim,
                hidden_sizes(self.net_arch, "pi"),
                action_param_dim(self.action_space),
                activation,
                self.choice.learner,
                self.choice.learner_kwargs,
            ),
            value_net=build_network(
                self.features_dim,
                hidden_sizes(self.net_arch, "vf"),
                1,
                activation,
                self.choice.critic_learner,
                self.choice.critic_learner_kwargs,
            ),
        )

    def _build(self, lr_schedule: Schedule) -> None:
        # SB3 builds linear heads on top of the extractor and initialises everything; the heads
        # are replaced by identity (the networks already end in them), the output layers get
        # SB3's head gains, and the optimizer is rebuilt over the remaining parameters.
        super()._build(lr_schedule)
        self.action_net = nn.Identity()
        self.value_net = nn.Identity()
        if self.ortho_init:
            self.mlp_extractor.policy_net.init_orthogonal(np.sqrt(2), 0.01)
            self.mlp_extractor.value_net.init_orthogonal(np.sqrt(2), 1.0)
        extractors = [m for m in self.modules() if isinstance(m, BioFeaturesExtractor)]
        own = {id(p) for extractor in extractors for p in extractor.parameters()}
        self.optimizer = self.optimizer_class(
            [p for p in self.parameters() if id(p) not in own],
            lr=lr_schedule(1),
            **self.optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.choice.as_kwargs())
        return data

    def extra_repr(self) -> str:
        return self.choice.describe()


class BioCnnPolicy(BioActorCriticPolicy):
    """SB3's ``CnnPolicy`` for PPO and A2C with every layer trained by a learner:
    :class:`~biocredit.sb3.conv_features.BioCnnExtractor` (NatureCNN's layers) shared by the
    policy and value networks, which are single output layers on its 512 features unless
    ``net_arch`` says otherwise (SB3's ``CnnPolicy`` default).

    ``PPO(BioCnnPolicy, env, policy_kwargs=dict(learner="dfa"))``; the conv network learns by
    the policy's ``learner`` unless ``features_extractor_kwargs`` names another.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("features_extractor_class", BioCnnExtractor)
        if not args:  # net_arch is SB3's first optional argument
            kwargs.setdefault("net_arch", [])
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
