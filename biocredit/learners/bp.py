"""Backpropagation (Rumelhart, Hinton & Williams 1986), the reference learner.

The same chain rule as feedback alignment with the forward weights as feedback:

    delta_L = e,  delta_l = (delta_{l+1} W_{l+1}) * f'(a_l),  dW_l = delta_l^T h_{l-1}

It runs through the same autograd boundary as every other learner, so comparisons measure the
credit-assignment rule and nothing else. Its update is the gradient ``J^T e``, a differentiable
function of the parameters and of ``e``, so it also gives second-order gradients
(``create_graph=True``: Hessian-vector products, sb3-contrib's TRPO): there the same ``J^T e``
comes from autograd through the forward pass, recomputed with its graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocredit.learners.base import ForwardCache
from biocredit.learners.conv import ConvCache, ConvLearner, conv_backward_chain
from biocredit.learners.conv_spec import ConvSpec
from biocredit.learners.fa import backward_chain
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register


@register
class Backprop(ConvLearner):
    """Exact gradients: the error returns through the transpose of the forward weights."""

    name = "bp"
    family = "reference backprop"
    paper = "Rumelhart, Hinton & Williams 1986, Nature 323:533"
    second_order = True

    @property
    def plausibility(self) -> Plausibility:
        return Plausibility(architecture_agnostic=True, control=True, equals_backprop=True)

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        weights = [layer.weight for layer in layers]
        return backward_chain(layers, cache, error, weights, self.activation, input_grad)

    def assign_conv_credit(
        self,
        layers: Sequence[nn.Module],
        spec: ConvSpec,
        cache: ConvCache,
        error: Tensor,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        """On a conv layer the error crosses by the transposed convolution with ``W_l``."""
        assert self.activation is not None
        weights = [layer.weight for layer in layers]
        return conv_backward_chain(layers, spec, cache, error, weights, self.activation, input_grad)

    def differentiable_credit(
        self, layers: Sequence[nn.Linear], x: Tensor, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        params = [p for layer in layers for p in (layer.weight, layer.bias)]
        inputs = [x, *params] if input_grad else params
        y, _ = self.forward_pass(layers, x, record=False)
        grads = list(torch.autograd.grad(y, inputs, grad_outputs=error, create_graph=True))
        return (grads.pop(0) if input_grad else None), grads
