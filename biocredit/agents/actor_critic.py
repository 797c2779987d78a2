"""Online actor-critic whose actor and critic learn from the TD error as a third factor.

Per step, for every env in parallel (batch of one per env, no replay):

    a ~ pi(.|s),  delta = r + gamma (1 - terminated) v(s') - v(s)
    actor  post = onehot(a) - pi(s)            (softmax)   or (a - mu) / sigma^2  (Gaussian)
    critic post = 1
    each network: learner update from (post, M = delta)

With hebbian3f this is the three-factor TD(lambda) actor-critic of Fremaux & Gerstner (2016) and
Sutton & Barto (2018, section 13.5): dopamine-like TD error gating Hebbian eligibility traces.
A Gaussian policy's ``log_std`` is an output-level parameter with its own trace of
``(a - mu)^2 / sigma^2 - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from biocredit.agents.networks import NetworkConfig, TrainedNetwork
from biocredit.errors import ConfigError
from biocredit.learners import NetworkSpec


@dataclass
class ActorCriticConfig:
    """Hyperparameters of :class:`OnlineActorCritic`."""

    actor: NetworkConfig = field(default_factory=NetworkConfig)
    critic: NetworkConfig = field(default_factory=NetworkConfig)
    gamma: float = 0.99
    log_std_init: float = 0.0
    log_std_lr: float = 1e-3


class OnlineActorCritic(nn.Module):
    """Actor and critic networks, each with its own learner and optimizer, learning every step."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        config: ActorCriticConfig,
        n_envs: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(observation_space, spaces.Box):
            raise ConfigError(f"Observation space {observation_space} is not a Box.")
        self.observation_space, self.action_space = observation_space, action_space
        self.config = config
        n_obs = int(np.prod(observation_space.shape))
        self.discrete = isinstance(action_space, spaces.Discrete)
        if self.discrete:
            n_out = int(action_space.n)
        elif isinstance(action_space, spaces.Box):
            n_out = int(np.prod(action_space.shape))
        else:
            raise ConfigError(f"Action space {action_space} is not Discrete or Box.")
        self.actor = TrainedNetwork(
            NetworkSpec(n_obs, tuple(config.actor.hidden), n_out, config.actor.activation),
            config.actor,
            config.gamma,
            n_envs,
        )
        self.critic = TrainedNetwork(
            NetworkSpec(n_obs, tuple(config.critic.hidden), 1, config.critic.activation),
            config.critic,
            config.gamma,
            n_envs,
        )
        self.actor_net, self.critic_net = self.actor.net, self.critic.net  # registered modules
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((n_out,), config.log_std_init))
            self.register_buffer("log_std_trace", torch.zeros(n_envs, n_out))
            self.log_std_optimizer = torch.optim.SGD([self.log_std], lr=config.log_std_lr)
            self.log_std_decay = config.gamma * getattr(self.actor.net.learner, "lam", 0.0)
            self.low = torch.as_tensor(action_space.low, dtype=torch.float32)
            self.high = torch.as_tensor(action_space.high, dtype=torch.float32)
        self._value: Tensor | None = None
        self._post: Tensor | None = None
        self._log_std_post: Tensor | None = None

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Sample actions for a batch of observations and remember what learning needs."""
        out = self.actor.forward(obs)
        self._value = self.critic.forward(obs).squeeze(1)
        if self.discrete:
            probs = torch.softmax(out, dim=1)
            action = torch.multinomial(probs, 1).squeeze(1)
            post = -probs
            post[torch.arange(len(action)), action] += 1.0
            self._post = post
            return action
        std = self.log_std.exp()
        noise = torch.randn_like(out)
        self._post = noise / std  # (a - mu) / sigma^2 with a = mu + sigma * noise
        self._log_std_post = noise * noise - 1.0
        return out + std * noise

    def env_action(self, action: Tensor) -> np.ndarray:
        """Actions as the env takes them (Gaussian samples clipped to the Box)."""
        if self.discrete:
            return action.numpy()
        return torch.maximum(torch.minimum(action, self.high), self.low).numpy()

    @torch.no_grad()
    def learn(self, reward: Tensor, terminated: Tensor, next_obs: Tensor, done: Tensor) -> Tensor:
        """One online update from the step just taken; returns the TD errors."""
        next_value = self.critic.infer(next_obs).squeeze(1)
        delta = reward + self.config.gamma * (~terminated) * next_value - self._value
        self.actor.learn(self._post, delta)
        self.critic.learn(torch.ones_like(self._value)[:, None], delta)
        if not self.discrete:
            trace = self.log_std_trace
            trace.mul_(self.log_std_decay).add_(self._log_std_post)
            self.log_std.grad = -torch.tensordot(delta, trace, dims=1)
            self.log_std_optimizer.step()
            trace.mul_((~done).float()[:, None])
        self.actor.end_episodes(done)
        self.critic.end_episodes(done)
        return delta

    @torch.no_grad()
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """SB3-style prediction: greedy (argmax / mean) when ``deterministic``."""
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32)
        single = obs.ndim == len(self.observation_space.shape)
        obs = obs.reshape(1 if single else obs.shape[0], -1)
        out = self.actor.infer(obs)
        if self.discrete:
            action = out.argmax(1) if deterministic else torch.multinomial(out.softmax(1), 1)[:, 0]
        else:
            action = out if deterministic else out + self.log_std.exp() * torch.randn_like(out)
        action_np = self.env_action(action)
        return (action_np[0] if single else action_np), None
