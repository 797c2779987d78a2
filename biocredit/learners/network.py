"""A local network: layers whose credit assignment belongs to a learner."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from biocredit.learners.base import ErrorDrivenLearner, ForwardCache, Learner, RunContext
from biocredit.learners.boundary import CreditBoundary
from biocredit.learners.registry import make_learner
from biocredit.learners.spec import NetworkSpec


class LocalNetwork(nn.Module):
    """A fully connected network trained by ``learner`` through the autograd boundary.

    With an error- or target-driven learner, use it like any ``nn.Module``:
    ``loss(net(x)).backward()`` fills every parameter's ``.grad`` with the learner's update, and
    any ``torch.optim`` optimizer applies it. Modulator-driven and signal-free learners are not
    reached by a loss: the owner records a forward pass (``learner.forward_pass(layers, x,
    record=True)``) and hands the learner its signal (:mod:`biocredit.learners.base`).

    :param spec: layer sizes, hidden activation and output size
    :param learner: a learner instance or a registered name (``"bp"``, ``"fa"``, ``"dfa"`` ...)
    :param context: the run the learner serves (``gamma``, ``n_envs``), for learners that keep
        per-env state
    :param learner_kwargs: options for the learner when it is given by name
    """

    def __init__(
        self,
        spec: NetworkSpec,
        learner: Learner | str = "bp",
        context: RunContext | None = None,
        **learner_kwargs: Any,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.layers = self.build_layers(spec)
        if isinstance(learner, str):
            learner = make_learner(learner, **learner_kwargs)
        elif learner_kwargs:
            raise TypeError("learner_kwargs are only used when the learner is given by name")
        self.check_learner(learner)
        self.learner = learner
        learner.attach(spec, context)
        with torch.no_grad():
            learner.init_weights(self.layers)

    @staticmethod
    def build_layers(spec: Any) -> nn.ModuleList:
        """The weight layers for ``spec``, input first."""
        return nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in pairwise(spec.sizes))

    def check_learner(self, learner: Learner) -> None:
        """Refuse a learner whose rule does not apply to these layers; every learner applies to
        dense layers."""

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return self.forward_pass(x, record=False)[0]
        return CreditBoundary.apply(self, x, *self.parameters_in_order())

    def forward_pass(self, x: Tensor, record: bool) -> tuple[Tensor, ForwardCache | None]:
        """The learner's inference on ``x`` (with ``record``, what its rule needs is kept)."""
        return self.learner.forward_pass(self.layers, x, record)

    def assign_credit(
        self, cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        """The learner's rule from the output error ``e = dL/dy``: the input's error signal
        (``None`` unless ``input_grad``) and the gradients in :meth:`parameters_in_order`."""
        learner = self.learner
        assert isinstance(learner, ErrorDrivenLearner)
        return learner.assign_credit(self.layers, cache, error, input_grad)

    def differentiable_credit(
        self, x: Tensor, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        """:meth:`assign_credit` as a differentiable function (learners with ``second_order``)."""
        learner = self.learner
        assert isinstance(learner, ErrorDrivenLearner)
        return learner.differentiable_credit(self.layers, x, error, input_grad)

    def parameters_in_order(self) -> list[Tensor]:
        """``[W_1, b_1, ..., W_L, b_L]``, the order in which the learner returns gradients."""
        return [p for layer in self.layers for p in (layer.weight, layer.bias)]

    def init_orthogonal(self, hidden_gain: float, output_gain: float) -> None:
        """Orthogonal weights and zero biases, the SB3/baselines scheme for policy networks, then
        the learner's own adjustment (:meth:`~biocredit.learners.base.Learner.init_weights`)."""
        for i, layer in enumerate(self.layers):
            gain = output_gain if i == len(self.layers) - 1 else hidden_gain
            nn.init.orthogonal_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.learner.init_weights(self.layers)


def trained_by(module: nn.Module) -> dict[str, dict[str, Any]]:
    """Every local network inside ``module`` by its name, with its learner's name, options
    (defaults included) and whether that configuration computes backprop's gradients."""
    return {
        name or "network": {
            "learner": net.learner.name,
            "options": net.learner.options,
            "equals_backprop": net.learner.plausibility.equals_backprop,
        }
        for name, net in module.named_modules()
        if isinstance(net, LocalNetwork)
    }
