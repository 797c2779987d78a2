"""The autograd boundary at a local network's output.

The whole network is one node in torch's graph. Forward runs the learner's inference and keeps
what its rule needs; backward receives only ``e = dL/dy`` at the output and returns what the
learner's rule makes of it. Nothing inside the network is differentiated by autograd: each
hidden layer receives only what the learner's rule sends it (which rules send their messages
through the forward weights is in ``docs/plausibility.md``). Target-driven learners are served
by the same node: they turn ``e`` into the output target ``y - beta e`` themselves.

The forward pass's record stays with the node as long as torch's graph does, so
``backward(retain_graph=True)`` followed by another backward, or one ``torch.autograd.grad`` per
parameter, assigns credit again from the same record. Second-order use (``create_graph=True``,
as in Hessian-vector products: sb3-contrib's TRPO, gradient penalties) needs the update to be a
differentiable function of the loss. Only a learner whose update is backprop's gradient can give
that (:attr:`~biocredit.learners.base.ErrorDrivenLearner.second_order`); for every other learner
the update is the output of a local rule, not a derivative, and differentiating through it raises
:class:`SecondOrderError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from biocredit.errors import BiocreditError
from biocredit.learners.alignment import forward_gradient
from biocredit.learners.base import ErrorDrivenLearner, ForwardCache
from biocredit.learners.registry import learner_class, learners_of_kind, learns_from, list_learners

if TYPE_CHECKING:
    from biocredit.learners.network import LocalNetwork


class SecondOrderError(BiocreditError):
    """A second derivative was asked of a learner whose update is not a derivative."""


class CreditBoundary(torch.autograd.Function):
    """``y = network(x)`` whose backward is the network's learner assigning credit from ``e``
    (``network.assign_credit``: the learner's rule for the network's kind of layers)."""

    @staticmethod
    def forward(ctx: FunctionCtx, network: LocalNetwork, x: Tensor, *params: Tensor) -> Tensor:
        y, cache = network.forward_pass(x, record=True)
        ctx.network, ctx.cache = network, cache  # type: ignore[attr-defined]
        # A new tensor on y's storage: the output becomes the node's own (its grad_fn), and a
        # node whose record held that same tensor would be a reference cycle, freed only by the
        # garbage collector (every forward's activations kept until then, then reallocated).
        return y.detach()

    @staticmethod
    def backward(ctx: Any, error: Tensor) -> tuple[Tensor | None, ...]:
        network = ctx.network
        learner = network.learner
        if not isinstance(learner, ErrorDrivenLearner):
            raise BiocreditError(
                f"'{learner.name}' learns from {learns_from(learner.name)}, not from a loss: "
                "hand it its signal instead of calling backward() (see "
                "biocredit.learners.base), or use a learner that a loss reaches: "
                f"{learners_of_kind(ErrorDrivenLearner)}."
            )
        input_grad = ctx.needs_input_grad[1]
        error = error.contiguous()
        if torch.is_grad_enabled():  # backward(create_graph=True): the result is differentiated
            return (None, *_second_order_credit(network, ctx.cache, error, input_grad))
        grad_x, param_grads = network.assign_credit(ctx.cache, error, input_grad)
        monitor = learner.alignment
        if monitor is not None and monitor.due():
            x = ctx.cache.inputs[0]
            monitor.record(param_grads, forward_gradient(network, x, error))
        return (None, grad_x, *param_grads)


def _second_order_credit(
    network: LocalNetwork, cache: ForwardCache, error: Tensor, input_grad: bool
) -> tuple[Tensor | None, ...]:
    """The credit of ``backward(create_graph=True)``: differentiable where the learner can give
    it, else its first-order update behind a node that refuses to be differentiated."""
    learner = network.learner
    assert isinstance(learner, ErrorDrivenLearner)
    x = cache.inputs[0]
    if learner.second_order:
        grad_x, grads = network.differentiable_credit(x, error, input_grad)
        return (grad_x, *grads)
    with torch.no_grad():
        grad_x, grads = network.assign_credit(cache, error, input_grad)
    updates = [t for t in (grad_x, *grads) if t is not None]
    # the update's sources as the refusal's inputs: differentiating it toward any of them,
    # the parameters included, reaches the refusal
    sources = [error, x, *network.parameters_in_order()]
    refused = iter(RefuseSecondOrder.apply(learner.name, len(updates), *updates, *sources))
    return tuple(None if t is None else next(refused) for t in (grad_x, *grads))


class RefuseSecondOrder(torch.autograd.Function):
    """The first ``count`` tensors unchanged, a node whose backward raises
    :class:`SecondOrderError` behind them."""

    @staticmethod
    def forward(ctx: FunctionCtx, name: str, count: int, *tensors: Tensor) -> tuple[Tensor, ...]:
        ctx.name = name  # type: ignore[attr-defined]
        return tuple(update.clone() for update in tensors[:count])

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        second_order = [
            name for name in list_learners(ErrorDrivenLearner) if learner_class(name).second_order
        ]
        raise SecondOrderError(
            f"A second derivative through a network trained by '{ctx.name}' was asked for "
            "(backward or autograd.grad with create_graph=True, then differentiated again, as in "
            f"the Hessian-vector products of sb3-contrib's TRPO): the '{ctx.name}' update is the "
            "output of its local rule, not a differentiable function of the loss, so it has no "
            f"second derivative. Use a first-order algorithm (PPO, A2C ...) with '{ctx.name}', "
            f"or a learner that gives second-order gradients: {', '.join(second_order)}."
        )
