"""One agent network (a role such as actor or critic): its spec, learner and optimizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from biocredit.errors import ConfigError, unknown_name
from biocredit.learners import LocalNetwork, NetworkSpec, learner_class
from biocredit.learners.base import ForwardCache
from biocredit.learners.hebbian3f import NeuromodulatedHebbian

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


@dataclass
class NetworkConfig:
    """A module's network: hidden sizes, activation, learner and its optimizer."""

    learner: str = "hebbian3f"
    learner_kwargs: dict[str, Any] = field(default_factory=dict)
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    lr: float = 1e-3
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        learner_class(self.learner)
        if self.optimizer not in OPTIMIZERS:
            raise unknown_name("optimizer", self.optimizer, OPTIMIZERS)
        if not self.lr > 0:
            raise ConfigError(f"Learning rate 'lr' must be > 0, got {self.lr!r}.")


class TrainedNetwork:
    """A :class:`LocalNetwork` plus optimizer, driven each step by ``post`` and a modulator.

    Modulator-driven learners (hebbian3f) keep eligibility traces of ``post`` and learn from
    ``M * trace``. Error-driven learners (bp, fa, dfa) receive the output error ``-M * post``
    through the autograd boundary: the one-step (lambda = 0) actor-critic update.
    """

    def __init__(self, spec: NetworkSpec, config: NetworkConfig, gamma: float, n_envs: int):
        kwargs = dict(config.learner_kwargs)
        if learner_class(config.learner) is NeuromodulatedHebbian:
            kwargs.setdefault("gamma", gamma)
        self.net = LocalNetwork(spec, config.learner, **kwargs)
        self.modulated = isinstance(self.net.learner, NeuromodulatedHebbian)
        if self.modulated:
            self.net.learner.reset_traces(n_envs)
        self.optimizer = OPTIMIZERS[config.optimizer](self.net.parameters(), lr=config.lr)
        self._output: Tensor | None = None
        self._cache: ForwardCache | None = None

    def forward(self, x: Tensor) -> Tensor:
        """Output for ``x``, remembering what the learner needs for this step's update."""
        if self.modulated:
            y, self._cache = self.net.learner.forward_pass(self.net.layers, x, record=True)
            return y
        with torch.enable_grad():
            self._output = self.net(x)
        return self._output.detach()

    def infer(self, x: Tensor) -> Tensor:
        """Output for ``x`` without recording anything."""
        with torch.no_grad():
            return self.net.learner.forward_pass(self.net.layers, x, record=False)[0]

    def learn(self, post: Tensor, modulator: Tensor) -> None:
        """Apply this step's update from the output term ``post`` and the modulator ``M``."""
        if self.modulated:
            learner = self.net.learner
            learner.accumulate(self.net.layers, self._cache, post)
            learner.modulate(self.net.layers, modulator)
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self._output.backward(-modulator[:, None] * post)
        self.optimizer.step()

    def end_episodes(self, done: Tensor) -> None:
        """Clear eligibility of envs whose episode ended."""
        if self.modulated and bool(done.any()):
            self.net.learner.clear_traces(done)
