"""Feedback alignment (Lillicrap, Cownden, Tweed & Akerman 2016, Nat. Commun. 7:13276).

The error travels back layer by layer, as in backprop, but through a fixed random matrix ``B_l``
of the same shape as ``W_l`` instead of ``W_l`` itself, so no synapse needs to know another's
weight (no weight transport). The forward weights come to align with ``B``:

    delta_L = e
    delta_l = (delta_{l+1} B_{l+1}) * f'(a_l)
    dW_l = delta_l^T h_{l-1},  db_l = sum delta_l
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocredit.learners.activations import Activation
from biocredit.learners.base import ForwardCache, linear_grads
from biocredit.learners.conv import ConvCache, ConvLearner, conv_backward_chain
from biocredit.learners.conv_spec import ConvSpec
from biocredit.learners.feedback import RandomFeedbackLearner
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec


def fa_delta(
    delta_above: Tensor, feedback: Tensor, activation: Activation, a: Tensor, h: Tensor
) -> Tensor:
    """Local error of a hidden layer: ``delta_l = (delta_{l+1} B_{l+1}) * f'(a_l)``.

    ``feedback`` has the shape of the forward weights above, ``(n_{l+1}, n_l)``; ``a`` and ``h``
    are the layer's pre-activation and activity.
    """
    return activation.gate(delta_above.mm(feedback), a, h)


def backward_chain(
    layers: Sequence[nn.Linear],
    cache: ForwardCache,
    error: Tensor,
    feedback: Sequence[Tensor],
    activation: Activation,
    input_grad: bool,
) -> tuple[Tensor | None, list[Tensor]]:
    """Send ``error`` down the layers through ``feedback[l]`` (``W_l`` for BP, ``B_l`` for FA)."""
    grads: list[Tensor] = []
    delta = error
    for l in range(len(layers) - 1, -1, -1):
        grads[:0] = linear_grads(delta, cache.inputs[l])
        if l > 0:
            a, h = cache.pre_activations[l - 1], cache.inputs[l]
            delta = fa_delta(delta, feedback[l], activation, a, h)
    grad_x = delta.mm(feedback[0]) if input_grad else None
    return grad_x, grads


@register
class FeedbackAlignment(RandomFeedbackLearner, ConvLearner):
    """Feedback alignment: fixed random feedback ``B_l`` in place of ``W_l^T`` at every layer.

    ``B_l`` entries have the spread of default ``nn.Linear`` (``nn.Conv2d``) weights times
    ``scale``; see :class:`RandomFeedbackLearner` for ``init``, ``scale`` and ``seed``. On a
    conv layer ``B_l`` is a fixed random kernel of the layer's shape and the error crosses the
    layer by the transposed convolution with ``B_l`` in place of ``W_l``
    (:func:`~biocredit.learners.conv.conv_backward_chain`).
    """

    name = "fa"
    family = "feedback alignment"
    paper = "Lillicrap et al. 2016, Nat. Commun. 7:13276"

    @property
    def plausibility(self) -> Plausibility:
        # The error still travels layer by layer (not P1, not UL), through synapses of its own.
        return Plausibility(
            p2_weight_transport=True,
            local_plasticity=True,
            architecture_agnostic=True,
            control=True,
        )

    def build_state(self, spec: NetworkSpec | ConvSpec, generator: torch.Generator) -> None:
        for l, shape in enumerate(spec.weight_shapes):  # B_l shaped like W_l, fan-in spread
            self.add_feedback(l, shape, math.prod(shape[1:]), generator)

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        return backward_chain(layers, cache, error, self.feedback(), self.activation, input_grad)

    def assign_conv_credit(
        self,
        layers: Sequence[nn.Module],
        spec: ConvSpec,
        cache: ConvCache,
        error: Tensor,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        feedback = self.feedback()
        return conv_backward_chain(
            layers, spec, cache, error, feedback, self.activation, input_grad
        )
