"""Direct feedback alignment (Nokland 2016, NeurIPS, "Direct Feedback Alignment Provides
Learning in Deep Neural Networks").

The output error is broadcast to every hidden layer through its own fixed random matrix
``D_l`` (shape ``n_out x n_l``); no error travels through another layer:

    delta_L = e
    delta_l = (e D_l) * f'(a_l)
    dW_l = delta_l^T h_{l-1},  db_l = sum delta_l

The error signal handed to an upstream module (the network's input) is ``e D_0``, a direct
projection as well.

Feedback scale (``fan``): by default ``D_l`` entries spread ``scale / sqrt(n_out)``, so ``e D_l``
is as large as ``e``. With ``fan="layer"`` they spread ``scale / sqrt(n_l)``, like the forward
weights of a layer reading layer ``l`` (PyTorch's ``nn.Linear`` default, the spread fa gives its
``B``): the last hidden layer then gets fa's feedback scale, ``sqrt(n_out / n_l)`` times the
default (1/8 for a value network of width 64). ``docs/notes/dfa_collapse.md`` has the
measurements behind the option.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocredit.errors import unknown_name
from biocredit.learners.base import ErrorDrivenLearner, ForwardCache, linear_grads
from biocredit.learners.feedback import RandomFeedbackLearner
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec

#: ``output``: D_l spread scale/sqrt(n_out); ``layer``: scale/sqrt(n_l), the forward weights' spread
FEEDBACK_FANS = ("output", "layer")


def dfa_delta(error: Tensor, feedback: Tensor, fprime: Tensor) -> Tensor:
    """Local error of hidden layer ``l``: ``delta_l = (e D_l) * f'(a_l)`` (``D_l``: n_out x n_l)."""
    return error.mm(feedback).mul_(fprime)


@register
class DirectFeedbackAlignment(RandomFeedbackLearner, ErrorDrivenLearner):
    """Direct feedback alignment: the output error reaches each hidden layer in one hop.

    ``D_l`` entries spread ``scale / sqrt(n_out)``, so ``e D_l`` has the size of ``e``
    (``fan="output"``), or ``scale / sqrt(n_l)``, the spread of forward weights reading layer
    ``l`` (``fan="layer"``); see :class:`RandomFeedbackLearner` for ``init``, ``scale`` and
    ``seed``.
    """

    name = "dfa"
    family = "direct feedback alignment"
    paper = "Nokland 2016, NeurIPS"

    def __init__(
        self,
        init: str = "uniform",
        scale: float = 1.0,
        fan: str = "output",
        seed: int | None = None,
    ) -> None:
        super().__init__(init, scale, seed)
        if fan not in FEEDBACK_FANS:
            raise unknown_name("dfa feedback fan", fan, FEEDBACK_FANS)
        self.fan = fan

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
            fan = width if self.fan == "layer" else n_out
            self.add_feedback(l, (n_out, width), fan, generator)

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

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fan={self.fan!r}"
