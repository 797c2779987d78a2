"""The autograd boundary at a local network's output.

The whole network is one node in torch's graph. Forward runs the learner's inference and keeps
what its rule needs; backward receives only ``e = dL/dy`` at the output and returns what the
learner's rule makes of it. Nothing inside the network is differentiated by autograd, so no
hidden layer sees ``W^T`` unless the learner itself is ``bp``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from biocredit.learners.base import Learner


class CreditBoundary(torch.autograd.Function):
    """``y = network(x)`` whose backward is ``learner.assign_credit(e)``."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, learner: Learner, layers: nn.ModuleList, x: Tensor, *params: Tensor
    ) -> Tensor:
        y, cache = learner.forward_pass(layers, x, record=True)
        ctx.learner, ctx.layers, ctx.cache = learner, layers, cache  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(ctx: Any, error: Tensor) -> tuple[Tensor | None, ...]:
        input_grad = ctx.needs_input_grad[2]
        grad_x, param_grads = ctx.learner.assign_credit(
            ctx.layers, ctx.cache, error.contiguous(), input_grad
        )
        del ctx.cache
        return (None, None, grad_x, *param_grads)
