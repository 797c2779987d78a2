"""Direct feedback alignment (Nokland 2016, NeurIPS, "Direct Feedback Alignment Provides
Learning in Deep Neural Networks").

The output error is broadcast to every hidden layer through its own fixed random matrix
``D_l`` (shape ``n_out x n_l``); no error travels through another layer:

    delta_L = e
    delta_l = (e D_l) * f'(a_l)
    dW_l = delta_l^T h_{l-1},  db_l = sum delta_l

The error signal handed to an upstream module (the network's input) is ``e D_0``, a direct
projection as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocredit.learners.base import ErrorDrivenLearner, ForwardCache, linear_grads
from biocredit.learners.feedback import RandomFeedbackLearner
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec


def dfa_delta(error: Tensor, feedback: Tensor, fprime: Tensor) -> Tensor:
    """Local error of hidden layer ``l``: ``delta_l = (e D_l) * f'(a_l)`` (``D_l``: n_out x n_l)."""
    return error.mm(feedback).mul_(fprime)


@register
class DirectFeedbackAlignment(RandomFeedbackLearner, ErrorDrivenLearner):
    """Direct feedback alignment: the output error reaches each hidden layer in one hop.

    ``D_l`` entries spread ``scale / sqrt(n_out)``, so ``e D_l`` has the size of ``e``; see
    :class:`RandomFeedbackLearner` for ``init``, ``scale`` and ``seed``.
    """

    name = "dfa"
    family = "direct feedback alignment"
    paper = "Nokland 2016, NeurIPS"

    @property
    def plausibility(self) -> Plausibility:
        # Not P1: the output error is broadcast by a feedback pathway of its own (a direct one).
        return Plausibility(
            p2_weight_transport=True,
            local_plasticity=True,
            update_unlocked=True,
            architecture_agnostic=True,
            control=True,
        )

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        n_out = spec.out_features
        for l, width in enumerate(spec.sizes[:-1]):  # D_0 feeds the input, D_l hidden layer l
            self.add_feedback(l, (n_out, width), n_out, generator)

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        derivative = self.activation.derivative
        feedback = self.feedback()
        grads = list(linear_grads(error, cache.inputs[-1]))
        for l in range(len(layers) - 1, 0, -1):
            a, h = cache.pre_activations[l - 1], cache.inputs[l]
            delta = dfa_delta(error, feedback[l], derivative(a, h))
            grads[:0] = linear_grads(delta, cache.inputs[l - 1])
        grad_x = error.mm(feedback[0]) if input_grad else None
        return grad_x, grads
