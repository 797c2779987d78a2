"""One module network inside an agent: a local network, its learner and its optimizer."""

from __future__ import annotations

import torch
from torch import Tensor

from biocredit.agents.config import OPTIMIZERS, NetworkConfig
from biocredit.learners import LocalNetwork, NetworkSpec, learner_class
from biocredit.learners.base import ForwardCache
from biocredit.learners.hebbian3f import NeuromodulatedHebbian


class TrainedNetwork:
    """A :class:`LocalNetwork` plus optimizer, as one module of an agent sees it.

    Modulator-driven learners (hebbian3f) keep eligibility traces of the output's post-synaptic
    term and learn from ``M * trace`` (:meth:`modulate`). Error-driven learners (bp, fa, dfa)
    keep the autograd node of their last forward pass; the agent sends it an output error
    (:meth:`output_error`) and the learner assigns credit, passing an error on to its input.
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
        """Output for ``x``; remembers what this step's update needs."""
        if self.modulated:
            y, self._cache = self.net.learner.forward_pass(self.net.layers, x.detach(), True)
            return y
        with torch.enable_grad():
            self._output = self.net(x)
        return self._output.detach()

    @property
    def last_output(self) -> Tensor:
        """The last output of an error-driven network, still attached to its autograd node (an
        error sent into it reaches the learner, and through its input, upstream modules)."""
        assert self._output is not None, "forward() an error-driven network first"
        return self._output

    def infer(self, x: Tensor) -> Tensor:
        """Output for ``x`` without recording anything."""
        with torch.no_grad():
            return self.net.learner.forward_pass(self.net.layers, x, record=False)[0]

    def modulate(self, post: Tensor, modulator: Tensor) -> None:
        """Three-factor update: add ``post x pre`` to the traces, write ``-M e`` to ``.grad``."""
        learner = self.net.learner
        learner.accumulate(self.net.layers, self._cache, post)
        learner.modulate(self.net.layers, modulator)

    def output_error(self, post: Tensor, modulator: Tensor) -> tuple[Tensor, Tensor]:
        """The last output and the error ``dL/dy = -M * post`` for the autograd boundary."""
        return self.last_output, -modulator[:, None] * post

    def end_episodes(self, done: Tensor) -> None:
        """Clear eligibility of envs whose episode ended."""
        if self.modulated and bool(done.any()):
            self.net.learner.clear_traces(done)
