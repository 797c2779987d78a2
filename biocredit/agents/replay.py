"""A replay buffer kept in module buffers, so checkpoints carry it and a resumed run is exact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class Transitions:
    """A batch of transitions ``(o, a, r, o', terminated)``; ``a`` is the action's code (one-hot
    for discrete actions, the action itself for continuous ones)."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor


@dataclass
class NStepReturns:
    """What a Q target needs from ``m <= n`` steps of one env: ``R = sum_{j<m} gamma^j r_{t+j}``,
    the observation after them, whether they ended in termination, and ``gamma^m``."""

    reward: Tensor
    next_obs: Tensor
    terminated: Tensor
    discount: Tensor


class ReplayBuffer(nn.Module):
    """A ring buffer of the last ``capacity`` transitions.

    Everything, write position and fill level included, is a buffer of the module, so it is in
    the owner's ``state_dict``: saved with the checkpoint, restored on resume. Sampling draws from
    torch's global RNG, which the run saves as well.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.register_buffer("obs", torch.zeros(capacity, obs_dim))
        self.register_buffer("action", torch.zeros(capacity, action_dim))
        self.register_buffer("reward", torch.zeros(capacity))
        self.register_buffer("next_obs", torch.zeros(capacity, obs_dim))
        self.register_buffer("terminated", torch.zeros(capacity))
        self.register_buffer("ended", torch.zeros(capacity, dtype=torch.bool))  # or truncated
        self.register_buffer("position", torch.zeros((), dtype=torch.long))
        self.register_buffer("size", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.size)

    def add(self, batch: Transitions, ended: Tensor) -> None:
        """Append a batch of transitions (one per env, in the same env order every time; ``ended``:
        the episode ended there, by termination or truncation), overwriting the oldest."""
        n = batch.obs.shape[0]
        index = (int(self.position) + torch.arange(n)) % self.capacity
        self.obs[index] = batch.obs
        self.action[index] = batch.action
        self.reward[index] = batch.reward
        self.next_obs[index] = batch.next_obs
        self.terminated[index] = batch.terminated.float()
        self.ended[index] = ended.bool()
        self.position.fill_((int(self.position) + n) % self.capacity)
        self.size.fill_(min(int(self.size) + n, self.capacity))

    def sample_index(self, batch_size: int) -> Tensor:
        """``batch_size`` slots drawn uniformly with replacement."""
        return torch.randint(0, int(self.size), (batch_size,))

    def transitions(self, index: Tensor) -> Transitions:
        """The transitions stored at ``index``."""
        return Transitions(
            self.obs[index],
            self.action[index],
            self.reward[index],
            self.next_obs[index],
            self.terminated[index],
        )

    def n_step_returns(self, index: Tensor, n: int, gamma: float, n_envs: int) -> NStepReturns:
        """The ``n``-step returns from the transitions at ``index`` (Sutton 1988; Hessel et al.
        2018's Rainbow): each follows its own env, whose next transition is ``n_envs`` slots on,
        for ``m`` steps, ``m`` the smallest of ``n``, the steps to its episode's end (included)
        and the steps stored after it."""
        return self.returns_at_horizons(index, (n,), gamma, n_envs)[0]

    def returns_at_horizons(
        self, index: Tensor, horizons: Sequence[int], gamma: float, n_envs: int
    ) -> list[NStepReturns]:
        """:meth:`n_step_returns` for every ``n`` in ``horizons`` (in that order), from one walk
        along the stored transitions: the shorter returns are the longer one's partial sums."""
        stored_after = (int(self.position) - 1 - index) % self.capacity
        reward = torch.zeros(len(index))
        discount = torch.ones(len(index))
        following = torch.ones(len(index), dtype=torch.bool)
        next_obs, terminated = self.next_obs[index], self.terminated[index]
        by_horizon = {}
        for step in range(max(horizons)):
            slot = (index + step * n_envs) % self.capacity
            taken = following & (step * n_envs <= stored_after)
            reward = reward + torch.where(taken, discount * self.reward[slot], 0.0)
            next_obs = torch.where(taken[:, None], self.next_obs[slot], next_obs)
            terminated = torch.where(taken, self.terminated[slot], terminated)
            discount = torch.where(taken, discount * gamma, discount)
            following = taken & ~self.ended[slot]
            by_horizon[step + 1] = NStepReturns(reward, next_obs, terminated, discount)
        return [by_horizon[n] for n in horizons]
