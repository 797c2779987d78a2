"""The autograd boundary at a local network's output.

The whole network is one node in torch's graph. Forward runs the learner's inference and keeps
what its rule needs; backward receives only ``e = dL/dy`` at the output and returns what the
learner's rule makes of it. Nothing inside the network is differentiated by autograd: each
hidden layer receives only what the learner's rule sends it (which rules send their messages
through the forward weights is in ``docs/plausibility.md``). Target-driven learners are served
by the same node: they turn ``e`` into the output target ``y - beta e`` themselves.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from biocredit.errors import BiocreditError
from biocredit.learners.alignment import forward_gradient
from biocredit.learners.base import ErrorDrivenLearner, Learner
from biocredit.learners.registry import learners_of_kind, learns_from


class CreditBoundary(torch.autograd.Function):
    """``y = network(x)`` whose backward is ``learner.assign_credit(e)``."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        learner: Learner,
        layers: nn.ModuleList,
        x: Tensor,
        *params: Tensor,
    ) -> Tensor:
        y, cache = learner.forward_pass(layers, x, record=True)
        ctx.learner, ctx.layers, ctx.cache = learner, layers, cache  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(ctx: Any, error: Tensor) -> tuple[Tensor | None, ...]:
        learner = ctx.learner
        if not isinstance(learner, ErrorDrivenLearner):
            raise BiocreditError(
                f"'{learner.name}' learns from {learns_from(learner.name)}, not from a loss: "
                "hand it its signal instead of calling backward() (see "
                "biocredit.learners.base), or use a learner that a loss reaches: "
                f"{learners_of_kind(ErrorDrivenLearner)}."
            )
        input_grad = ctx.needs_input_grad[2]
        error = error.contiguous()
        grad_x, param_grads = learner.assign_credit(ctx.layers, ctx.cache, error, input_grad)
        monitor = learner.alignment
        if monitor is not None and monitor.due():
            x = ctx.cache.inputs[0]
            monitor.record(param_grads, forward_gradient(learner, ctx.layers, x, error))
        del ctx.cache
        return (None, None, grad_x, *param_grads)
