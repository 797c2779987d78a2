"""Direct feedback alignment (Nokland 2016, NeurIPS, "Direct Feedback Alignment Provides
Learning in Deep Neural Networks").

The output error is broadcast to every hidden layer through its own fixed random matrix
``D_l`` (shape ``n_out x n_l``); no error travels through another layer:

    delta_L = e
    delta_l = (e D_l) * f'(a_l)
    dW_l = delta_l^T h_{l-1},  db_l = sum delta_l

The error signal handed to an upstream module (the network's input) is ``e D_0``, a direct
projection as well.

On a conv layer (Launay, Poli & Krzakala 2019, "Principled training of NNs with direct feedback
alignment"; Launay et al. 2020, NeurIPS, "Direct feedback alignment scales to modern deep
learning tasks and architectures") ``D_l`` projects ``e`` onto the layer's whole output map, one
value per unit (``n_out x C H W``, before any pooling), and the weight update is the
correlation of that local error with the layer's input:

    delta_l = (e D_l) * f'(a_l)           reshaped to the (C, H, W) map
    dW_l = conv2d_weight(h_{l-1}, delta_l),  db_l = sum_{batch, positions} delta_l

A conv network reading observations keeps no ``D_0`` (``ConvSpec.input_error``).

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
from biocredit.learners.activations import Activation
from biocredit.learners.base import ForwardCache, linear_grads
from biocredit.learners.conv import ConvCache, ConvLearner, layer_grads
from biocredit.learners.conv_spec import ConvSpec
from biocredit.learners.feedback import RandomFeedbackLearner
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec

#: ``output``: D_l spread scale/sqrt(n_out); ``layer``: scale/sqrt(n_l), the forward weights' spread
FEEDBACK_FANS = ("output", "layer")


def dfa_delta(
    error: Tensor, feedback: Tensor, activation: Activation, a: Tensor, h: Tensor
) -> Tensor:
    """Local error of hidden layer ``l``: ``delta_l = (e D_l) * f'(a_l)`` (``D_l``: n_out x n_l),
    shaped like its pre-activation ``a`` (a conv layer's map)."""
    return activation.gate(error.mm(feedback).view_as(a), a, h)


@register
class DirectFeedbackAlignment(RandomFeedbackLearner, ConvLearner):
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

    def build_state(self, spec: NetworkSpec | ConvSpec, generator: torch.Generator) -> None:
        n_out = spec.out_features
        for l, width in enumerate(spec.sizes[:-1]):  # D_0 feeds the input, D_l hidden layer l
            if l == 0 and not spec.input_error:
                width = 0  # no error goes to the input: an empty D_0 keeps the indices
            fan = max(width, 1) if self.fan == "layer" else n_out
            self.add_feedback(l, (n_out, width), fan, generator)

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        feedback = self.feedback()
        grads = list(linear_grads(error, cache.inputs[-1]))
        for l in range(len(layers) - 1, 0, -1):
            a, h = cache.pre_activations[l - 1], cache.inputs[l]
            delta = dfa_delta(error, feedback[l], self.activation, a, h)
            grads[:0] = linear_grads(delta, cache.inputs[l - 1])
        grad_x = error.mm(feedback[0]) if input_grad else None
        return grad_x, grads

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
        grads = list(linear_grads(error, cache.inputs[-1]))
        for l in range(len(layers) - 1, 0, -1):  # hidden layer l - 1 is weight layer l's input
            a, h = cache.pre_activations[l - 1], cache.activities[l - 1]
            delta = dfa_delta(error, feedback[l], self.activation, a, h)
            grads[:0] = layer_grads(layers[l - 1], delta, cache.inputs[l - 1])
        grad_x = error.mm(feedback[0]).view_as(cache.inputs[0]) if input_grad else None
        return grad_x, grads

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fan={self.fan!r}"
