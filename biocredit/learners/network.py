"""A local network: layers whose credit assignment belongs to a learner."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from biocredit.learners.base import Learner, RunContext
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
        self.layers = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in pairwise(spec.sizes))
        if isinstance(learner, str):
            learner = make_learner(learner, **learner_kwargs)
        elif learner_kwargs:
            raise TypeError("learner_kwargs are only used when the learner is given by name")
        self.learner = learner
        learner.attach(spec, context)
        with torch.no_grad():
            learner.init_weights(self.layers)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return self.learner.forward_pass(self.layers, x, record=False)[0]
        return CreditBoundary.apply(self.learner, self.layers, x, *self.parameters_in_order())

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
