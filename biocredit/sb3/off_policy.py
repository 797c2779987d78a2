"""Off-policy policies (DQN, SAC, TD3) whose networks are trained by a biocredit learner.

Every network runs from its input to its output through one :class:`LocalNetwork`: the DQN
Q-network (observation -> Q per action), the SAC actor (observation -> mean and log-std), the
TD3 actor (observation -> action, then tanh) and each critic (observation and action -> Q).
Target networks are copies made by SB3 with ``load_state_dict``, so they carry the same learner
state (feedback matrices); the feedback is fixed, so Polyak updates keep it equal.

The actor of SAC and TD3 learns from ``dQ/da``, the error the critic hands back to its action
input. That error comes from the critic's learner and its own input rule: exact for ``bp``,
through the random feedback ``B_1`` for ``fa`` (useful as the weights align with it), and a
fixed random projection ``e D_0`` for ``dfa`` (the same direction for every state).
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, SACPolicy
from stable_baselines3.sac.policies import Actor as SACActor
from stable_baselines3.td3.policies import Actor as TD3Actor
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from biocredit.errors import ConfigError
from biocredit.sb3.common import LearnerChoice, activation_name, build_network


def _no_sde(kwargs: dict[str, Any]) -> None:
    if kwargs.get("use_sde"):
        raise ConfigError(
            "use_sde=True is not supported by biocredit policies: gSDE draws its noise from "
            "hidden features outside the learner. Set use_sde=False."
        )


class BioQNetwork(QNetwork):
    """DQN's Q-network as one local network: observation -> Q-value of every action."""

    def __init__(self, *args: Any, learner: str, learner_kwargs: dict, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.q_net = build_network(
            self.features_dim,
            tuple(self.net_arch),
            int(self.action_space.n),
            activation_name(self.activation_fn),
            learner,
            learner_kwargs,
        )


class BioDQNPolicy(DQNPolicy):
    """``DQN(BioDQNPolicy, env, policy_kwargs=dict(learner="dfa"))``."""

    def __init__(
        self, *args: Any, learner: str = "bp", learner_kwargs: dict | None = None, **kwargs: Any
    ) -> None:
        self.choice = LearnerChoice(learner, learner_kwargs)
        super().__init__(*args, **kwargs)

    def make_q_net(self) -> BioQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return BioQNetwork(
            **net_args, learner=self.choice.learner, learner_kwargs=self.choice.learner_kwargs
        ).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(learner=self.choice.learner, learner_kwargs=self.choice.learner_kwargs)
        return data


class BioContinuousCritic(ContinuousCritic):
    """SAC/TD3 critics, each one local network: (observation, action) -> Q."""

    def __init__(self, *args: Any, learner: str, learner_kwargs: dict, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        n_in = kwargs["features_dim"] + get_action_dim(self.action_space)
        activation = activation_name(kwargs.get("activation_fn", nn.ReLU))
        for idx in range(self.n_critics):
            q_net = build_network(
                n_in, tuple(kwargs["net_arch"]), 1, activation, learner, learner_kwargs
            )
            self.add_module(f"qf{idx}", q_net)  # replaces SB3's backprop MLP
            self.q_networks[idx] = q_net


class BioSACActor(SACActor):
    """SAC actor as one local network: observation -> (mean, log-std) of the squashed
    Gaussian; log-std is clamped to SB3's range as in SB3."""

    def __init__(self, *args: Any, learner: str, learner_kwargs: dict, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.latent_pi, self.mu, self.log_std
        self.action_dim = get_action_dim(self.action_space)
        self.network = build_network(
            self.features_dim,
            tuple(self.net_arch),
            2 * self.action_dim,
            activation_name(self.activation_fn),
            learner,
            learner_kwargs,
        )

    def get_action_dist_params(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor, dict]:
        out = self.network(self.extract_features(obs, self.features_extractor))
        mean, log_std = out.split(self.action_dim, dim=1)
        return mean, torch.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX), {}


class BioTD3Actor(TD3Actor):
    """TD3 actor as one local network followed by tanh: observation -> action."""

    def __init__(self, *args: Any, learner: str, learner_kwargs: dict, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        network = build_network(
            self.features_dim,
            tuple(self.net_arch),
            get_action_dim(self.action_space),
            activation_name(self.activation_fn),
            learner,
            learner_kwargs,
        )
        self.mu = nn.Sequential(network, nn.Tanh())


class _BioActorCriticMixin:
    """Learner options, make_actor and make_critic for SAC and TD3 policies."""

    actor_class: type

    def __init__(
        self,
        *args: Any,
        learner: str = "bp",
        learner_kwargs: dict | None = None,
        critic_learner: str | None = None,
        critic_learner_kwargs: dict | None = None,
        **kwargs: Any,
    ) -> None:
        _no_sde(kwargs)
        self.choice = LearnerChoice(learner, learner_kwargs, critic_learner, critic_learner_kwargs)
        super().__init__(*args, **kwargs)

    def make_actor(self, features_extractor: Any = None) -> Any:
        kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return self.actor_class(
            **kwargs, learner=self.choice.learner, learner_kwargs=self.choice.learner_kwargs
        ).to(self.device)

    def make_critic(self, features_extractor: Any = None) -> BioContinuousCritic:
        kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return BioContinuousCritic(
            **kwargs,
            learner=self.choice.critic_learner,
            learner_kwargs=self.choice.critic_learner_kwargs,
        ).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(self.choice.as_kwargs())
        return data


class BioSACPolicy(_BioActorCriticMixin, SACPolicy):
    """``SAC(BioSACPolicy, env, policy_kwargs=dict(learner="fa", critic_learner="bp"))``."""

    actor_class = BioSACActor


class BioTD3Policy(_BioActorCriticMixin, TD3Policy):
    """``TD3(BioTD3Policy, env, policy_kwargs=dict(learner="dfa"))``."""

    actor_class = BioTD3Actor
