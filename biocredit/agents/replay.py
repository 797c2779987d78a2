"""A replay buffer kept in module buffers, so checkpoints carry it and a resumed run is exact."""

from __future__ import annotations

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
        self.register_buffer("position", torch.zeros((), dtype=torch.long))
        self.register_buffer("size", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.size)

    def add(self, batch: Transitions) -> None:
        """Append a batch of transitions (one per env), overwriting the oldest when full."""
        n = batch.obs.shape[0]
        index = (int(self.position) + torch.arange(n)) % self.capacity
        self.obs[index] = batch.obs
        self.action[index] = batch.action
        self.reward[index] = batch.reward
        self.next_obs[index] = batch.next_obs
        self.terminated[index] = batch.terminated.float()
        self.position.fill_((int(self.position) + n) % self.capacity)
        self.size.fill_(min(int(self.size) + n, self.capacity))

    def sample(self, batch_size: int) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement."""
        index = torch.randint(0, int(self.size), (batch_size,))
        return Transitions(
            self.obs[index],
            self.action[index],
            self.reward[index],
            self.next_obs[index],
            self.terminated[index],
        )
