"""Running observation normalisation for native agents (any Box observation space).

Every dimension is centred and scaled by the running mean and variance of the observations the
agent has acted on in training, as the RL Zoo's ``VecNormalize`` does for SB3 runs:

    mean, var  <- the mean and variance of all training observations so far (Chan et al. 1979,
                  parallel update, one batch of ``n_envs`` observations per step)
    x_hat      =  clip((x - mean) / sqrt(var + eps), -clip, clip)

The statistics start at mean 0, variance 1 (with a tiny count, so the first batch replaces
them) and are buffers: saved with the agent and restored exactly on resume. Only training
steps update them; inference (bootstrapping values, evaluation, ``predict``) reads them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ObservationNorm(nn.Module):
    """Centres and scales each observation dimension by running statistics.

    :param n: observation dimensions (flattened)
    :param clip: normalised values are clipped to ``[-clip, clip]``
    :param eps: added to the variance before the square root
    """

    def __init__(self, n: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip, self.eps = clip, eps
        self.count = 1e-4  # a float (tensor arithmetic on it costs more than the update itself)
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("var", torch.ones(n))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge the batch ``x`` (rows are observations) into the running mean and variance."""
        n = x.shape[0]
        batch_var, batch_mean = torch.var_mean(x, dim=0, correction=0)
        delta = batch_mean - self.mean
        total = self.count + n
        old_share, new_share = self.count / total, n / total
        self.mean.add_(delta, alpha=new_share)
        # M2 / total = var * count / total + batch_var * n / total + delta^2 * count * n / total^2
        self.var.mul_(old_share).add_(batch_var, alpha=new_share)
        self.var.addcmul_(delta, delta, value=old_share * new_share)
        self.count = total

    def get_extra_state(self) -> Tensor:
        """The count, saved with the buffers (as a float64 tensor: exact for long runs)."""
        return torch.tensor(self.count, dtype=torch.float64)

    def set_extra_state(self, state: Tensor) -> None:
        self.count = float(state)

    def forward(self, x: Tensor) -> Tensor:
        """``clip((x - mean) / sqrt(var + eps))``; the statistics are left unchanged."""
        return ((x - self.mean) * torch.rsqrt(self.var + self.eps)).clamp_(-self.clip, self.clip)

    def extra_repr(self) -> str:
        return f"n={self.mean.numel()}, clip={self.clip}, eps={self.eps}"
