"""Off-policy policies (DQN, SAC, TD3) whose networks are trained by a biocredit learner.

Every network runs from its input to its output through one :class:`LocalNetwork`: the DQN
Q-network (observation -> Q per action), the SAC actor (observation -> mean and log-std), the
TD3 actor (observation -> action, then tanh) and each critic (observation and action -> Q).
Target networks are copies made by SB3 with ``load_state_dict``, so they carry the same learner
state (feedback matrices). Fixed feedback stays equal under Polyak updates; pc's ``mirror``
feedback keeps learning in the online network only, which is harmless: targets run forward
passes, never credit assignment.

The actor of SAC and TD3 learns from ``dQ/da``, the error the critic hands back to its action
input. By default (``critic_action_grad="learner"``) that error comes from the critic's learner
and its own input rule: exact for ``bp``, through the random feedback ``B_1`` for ``fa`` (useful
as the weights align with it), and a fixed random projection ``e D_0`` for ``dfa`` (the same
direction for every state, which is why SAC+dfa does not learn InvertedPendulum).

``critic_action_grad="perturbation"`` estimates ``dQ/da`` instead by perturbing the action and
reading the critic's change, with forward passes only (node perturbation: Williams 1992,
Fiete & Seung 2006; here its deterministic central-difference form per action dimension):

    dQ/da_i ~= (Q(s, a + delta e_i) - Q(s, a - delta e_i)) / (2 delta)

No weight of the critic is transported or differentiated, whatever its learner; the actor's
error is state-dependent and exact up to O(delta^2) for a smooth critic.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, SACPolicy
from stable_baselines3.sac.policies import Actor as SACActor
from stable_baselines3.td3.policies import Actor as TD3Actor
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from biocredit.errors import ConfigError, unknown_name
from biocredit.learners.options import check_number
from biocredit.learners.registry import DEFAULT_LEARNER
from biocredit.sb3.common import LearnerChoice, activation_name, build_network
from biocredit.sb3.conv_features import BioCnnExtractor, conv_extractor_defaults
from biocredit.sb3.multi_input import check_extractors, default_extractor

ACTION_GRADS = ("learner", "perturbation")


def perturbation_action_grad(
    q_fn: Any, features: torch.Tensor, actions: torch.Tensor, delta: float
) -> torch.Tensor:
    """Central-difference estimate of ``dQ/da`` for a batch, from ``2 * action_dim`` extra
    forward passes of ``q_fn(features, actions) -> Q`` (node perturbation)."""
    batch, dim = actions.shape
    steps = delta * torch.eye(dim, dtype=actions.dtype, device=actions.device)
    shifted = torch.cat([actions[:, None, :] + steps, actions[:, None, :] - steps], dim=1)
    repeated = features[:, None, :].expand(batch, 2 * dim, features.shape[1])
    q = q_fn(repeated.reshape(batch * 2 * dim, -1), shifted.reshape(batch * 2 * dim, dim))
    q = q.reshape(batch, 2 * dim)
    return (q[:, :dim] - q[:, dim:]) / (2 * delta)


class _PerturbedQ(torch.autograd.Function):
    """``Q(s, a)`` whose gradient to ``a`` is :func:`perturbation_action_grad`; nothing flows
    into the critic's weights (the actor's loss does not train the critic)."""

    @staticmethod
    def forward(ctx: Any, actions: torch.Tensor, features: torch.Tensor, q_fn: Any, delta: float):
        ctx.save_for_backward(actions, features)
        ctx.q_fn, ctx.delta = q_fn, delta
        return q_fn(features, actions)

    @staticmethod
    def backward(ctx: Any, grad_q: torch.Tensor):
        actions, features = ctx.saved_tensors
        with torch.no_grad():
            grad_a = perturbed_rows(ctx.q_fn, features, actions, ctx.delta, grad_q[:, 0] != 0)
        return grad_q * grad_a, None, None, None


def perturbed_rows(
    q_fn: Any, features: torch.Tensor, actions: torch.Tensor, delta: float, rows: torch.Tensor
) -> torch.Tensor:
    """:func:`perturbation_action_grad` for the ``rows`` (a boolean mask) whose ``Q`` reaches
    the loss, zero elsewhere: under SAC's ``min(Q_1, Q_2)`` each sample's error comes from one
    critic only, so the other critic's perturbations would be multiplied by zero."""
    if bool(rows.all()):
        return perturbation_action_grad(q_fn, features, actions, delta)
    grad_a = torch.zeros_like(actions)
    if bool(rows.any()):
        grad_a[rows] = perturbation_action_grad(q_fn, features[rows], actions[rows], delta)
    return grad_a


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
        self,
        observation_space: spaces.Space,
        *args: Any,
        learner: str = DEFAULT_LEARNER,
        learner_kwargs: dict | None = None,
        **kwargs: Any,
    ) -> None:
        self.choice = LearnerChoice(learner, learner_kwargs)
        default_extractor(observation_space, kwargs)
        conv_extractor_defaults(kwargs, learner, learner_kwargs)
        super().__init__(observation_space, *args, **kwargs)
        check_extractors(self)

    def make_q_net(self) -> BioQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return BioQNetwork(
            **net_args, learner=self.choice.learner, learner_kwargs=self.choice.learner_kwargs
        ).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(learner=self.choice.learner, learner_kwargs=self.choice.learner_kwargs)
        return data

    def extra_repr(self) -> str:
        return self.choice.describe(critic=False)


class BioContinuousCritic(ContinuousCritic):
    """SAC/TD3 critics, each one local network: (observation, action) -> Q.

    With ``action_grad="perturbation"``, a Q-value computed from actions that require a
    gradient (the actor's loss) hands back the perturbation estimate of ``dQ/da``; the critic's
    own loss (replay actions) goes through its learner as always.
    """

    def __init__(
        self,
        *args: Any,
        learner: str,
        learner_kwargs: dict,
        action_grad: str = "learner",
        action_delta: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.action_grad, self.action_delta = action_grad, action_delta
        n_in = kwargs["features_dim"] + get_action_dim(self.action_space)
        activation = activation_name(kwargs.get("activation_fn", nn.ReLU))
        for idx in range(self.n_critics):
            q_net = build_network(
                n_in, tuple(kwargs["net_arch"]), 1, activation, learner, learner_kwargs
            )
            self.add_module(f"qf{idx}", q_net)  # replaces SB3's backprop MLP
            self.q_networks[idx] = q_net

    def _q(self, q_net: nn.Module, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if self._perturbed(actions):
            return self._perturbed_q(q_net, features, actions)
        return q_net(torch.cat([features, actions], dim=1))

    def _perturbed(self, actions: torch.Tensor) -> bool:
        return self.action_grad == "perturbation" and actions.requires_grad

    def _perturbed_q(
        self, q_net: nn.Module, features: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        def q_fn(feat: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return q_net(torch.cat([feat, act], dim=1))

        return _PerturbedQ.apply(actions, features.detach(), q_fn, self.action_delta)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.set_grad_enabled(not self.share_features_extractor):
            features = self.extract_features(obs, self.features_extractor)
        if self._perturbed(actions):
            return tuple(self._perturbed_q(q, features, actions) for q in self.q_networks)
        inputs = torch.cat([features, actions], dim=1)  # once for every critic, as in SB3
        return tuple(q_net(inputs) for q_net in self.q_networks)

    def q1_forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.extract_features(obs, self.features_extractor)
        return self._q(self.q_networks[0], features, actions)


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
        observation_space: spaces.Space,
        *args: Any,
        learner: str = DEFAULT_LEARNER,
        learner_kwargs: dict | None = None,
        critic_learner: str | None = None,
        critic_learner_kwargs: dict | None = None,
        critic_action_grad: str = "learner",
        critic_action_delta: float = 0.05,
        **kwargs: Any,
    ) -> None:
        _no_sde(kwargs)
        if critic_action_grad not in ACTION_GRADS:
            raise unknown_name("critic_action_grad", critic_action_grad, ACTION_GRADS)
        critic_action_delta = check_number(
            "policy_kwargs",
            "critic_action_delta",
            critic_action_delta,
            why="the size of the action perturbations that estimate dQ/da",
            hint=0.05,
        )
        self.choice = LearnerChoice(learner, learner_kwargs, critic_learner, critic_learner_kwargs)
        self.critic_action_grad, self.critic_action_delta = critic_action_grad, critic_action_delta
        default_extractor(observation_space, kwargs)
        conv_extractor_defaults(kwargs, learner, learner_kwargs)
        super().__init__(observation_space, *args, **kwargs)
        check_extractors(self)

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
            action_grad=self.critic_action_grad,
            action_delta=self.critic_action_delta,
        ).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(
            self.choice.as_kwargs(),
            critic_action_grad=self.critic_action_grad,
            critic_action_delta=self.critic_action_delta,
        )
        return data

    def extra_repr(self) -> str:
        grad = f"critic_action_grad={self.critic_action_grad!r}"
        return f"{self.choice.describe()}, {grad}"


class BioSACPolicy(_BioActorCriticMixin, SACPolicy):
    """``SAC(BioSACPolicy, env, policy_kwargs=dict(learner="fa", critic_learner="bp"))``."""

    actor_class = BioSACActor


class BioTD3Policy(_BioActorCriticMixin, TD3Policy):
    """``TD3(BioTD3Policy, env, policy_kwargs=dict(learner="dfa"))``."""

    actor_class = BioTD3Actor


class BioCnnDQNPolicy(BioDQNPolicy):
    """SB3's DQN ``CnnPolicy`` with every layer trained by the learner:
    :class:`~biocredit.sb3.conv_features.BioCnnExtractor` (NatureCNN's layers unless
    ``features_extractor_kwargs`` says otherwise) and the Q output layer on its features (SB3's
    ``net_arch=[]`` for NatureCNN); the target network has its own copy."""

    def __init__(self, observation_space: spaces.Space, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", BioCnnExtractor)
        if len(args) < 3:  # net_arch is DQNPolicy's third argument after the action space
            kwargs.setdefault("net_arch", [])
        super().__init__(observation_space, *args, **kwargs)


class BioCnnSACPolicy(BioSACPolicy):
    """SB3's SAC ``CnnPolicy``: actor and critics each read the images through their own
    :class:`~biocredit.sb3.conv_features.BioCnnExtractor`."""

    def __init__(self, observation_space: spaces.Space, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", BioCnnExtractor)
        super().__init__(observation_space, *args, **kwargs)


class BioCnnTD3Policy(BioTD3Policy):
    """SB3's TD3 ``CnnPolicy``: actor and critics each read the images through their own
    :class:`~biocredit.sb3.conv_features.BioCnnExtractor`."""

    def __init__(self, observation_space: spaces.Space, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", BioCnnExtractor)
        super().__init__(observation_space, *args, **kwargs)
