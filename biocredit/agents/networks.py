"""One module network inside an agent: a local network, its learner and its optimizer."""

from __future__ import annotations

import torch
from torch import Tensor

from biocredit.agents.config import NetworkConfig
from biocredit.learners import ConvNetwork, ConvSpec, LocalNetwork, NetworkSpec
from biocredit.learners.base import (
    ErrorDrivenLearner,
    ForwardCache,
    ModulatorDrivenLearner,
    RunContext,
    SignalFreeLearner,
)
from biocredit.optimizers import OPTIMIZERS


class TrainedNetwork:
    """A :class:`LocalNetwork` plus optimizer, as one module of an agent sees it.

    A modulator-driven learner keeps eligibility traces of the output's post-synaptic term and
    learns from ``M * trace`` (:meth:`modulate`). An error- or target-driven learner keeps the
    autograd node of its last forward pass; the agent sends it an output error
    (:meth:`output_error`) and the learner assigns credit, passing an error on to its input. A
    signal-free learner learns from the input of its last forward pass alone
    (:meth:`learn_from_inputs`); its output is detached, so no error sent into it reaches it or
    anything upstream.
    """

    def __init__(
        self, spec: NetworkSpec | ConvSpec, config: NetworkConfig, gamma: float, n_envs: int
    ):
        context = RunContext(gamma=gamma, n_envs=n_envs)
        network = ConvNetwork if isinstance(spec, ConvSpec) else LocalNetwork
        self.net = network(spec, config.learner, context, **config.learner_kwargs)
        learner = self.net.learner
        self.error_driven = isinstance(learner, ErrorDrivenLearner)
        self.modulated = isinstance(learner, ModulatorDrivenLearner)
        self.signal_free = isinstance(learner, SignalFreeLearner)
        # foreach: one fused update over the layers' small tensors, instead of one per tensor
        optimizer_class = OPTIMIZERS[config.optimizer]
        self.optimizer = optimizer_class(self.net.parameters(), lr=config.lr, foreach=True)
        self._output: Tensor | None = None
        self._cache: ForwardCache | None = None

    def forward(self, x: Tensor) -> Tensor:
        """Output for ``x``; remembers what this step's update needs."""
        if not self.error_driven:
            y, self._cache = self.net.forward_pass(x.detach(), record=True)
            self._output = y.detach()
            return self._output
        with torch.enable_grad():
            self._output = self.net(x)
        return self._output.detach()

    @property
    def last_output(self) -> Tensor:
        """The last output; an error-driven network's is still attached to its autograd node (an
        error sent into it reaches the learner, and through its input, upstream modules)."""
        assert self._output is not None, "forward() the network first"
        return self._output

    def infer(self, x: Tensor) -> Tensor:
        """Output for ``x`` without recording anything."""
        with torch.no_grad():
            return self.net.forward_pass(x, record=False)[0]

    def modulate(self, post: Tensor, modulator: Tensor) -> None:
        """Three-factor update: add ``post x pre`` to the traces, write ``-M e`` to ``.grad``."""
        learner = self.net.learner
        assert isinstance(learner, ModulatorDrivenLearner) and self._cache is not None
        learner.accumulate(self.net.layers, self._cache, post)
        learner.modulate(self.net.layers, modulator)
        monitor = learner.alignment
        if monitor is not None and monitor.due():
            layers, cache = self.net.layers, self._cache
            monitor.record(
                learner.step_update(layers, cache, post, modulator),
                learner.step_update(layers, cache, post, modulator, transport=True),
            )

    def learn_from_inputs(self, modulator: Tensor | None = None) -> None:
        """Signal-free update from the last forward pass's input, into ``.grad`` (``modulator``:
        one optional factor per env)."""
        learner = self.net.learner
        assert isinstance(learner, SignalFreeLearner) and self._cache is not None
        learner.learn(self.net.layers, self._cache, modulator)

    def output_error(self, post: Tensor, modulator: Tensor) -> tuple[Tensor, Tensor]:
        """The last output and the error ``dL/dy = -M * post`` for the autograd boundary."""
        return self.last_output, -modulator[:, None] * post

    def end_episodes(self, done: Tensor) -> None:
        """Clear eligibility of envs whose episode ended."""
        if self.modulated:
            self.net.learner.end_episodes(done)
