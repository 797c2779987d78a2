"""A local convolutional network: conv layers (stride, padding, optional pooling), flatten,
dense layers, trained by a learner through the same autograd boundary as a dense network.

    net = ConvNetwork(ConvSpec((4, 84, 84), NATURE_CONVS, (), 512), "dfa")
    loss(net(images)).backward()     # every .grad holds dfa's update; any optimizer applies it

Only error-driven learners whose rule extends to convolutions train it (subclasses of
:class:`~biocredit.learners.conv.ConvLearner`: bp, fa, dfa); any other learner is refused with
its reason (its ``conv_refusal``) and the list of those that do.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from biocredit.errors import ConfigError
from biocredit.learners.base import ErrorDrivenLearner, ForwardCache, Learner, RunContext
from biocredit.learners.conv import ConvCache, ConvLearner, conv_forward
from biocredit.learners.conv_spec import ConvSpec
from biocredit.learners.network import LocalNetwork
from biocredit.learners.registry import learner_class, learners_of_kind


def conv_refusal(name: str) -> ConfigError:
    """The error for learner ``name`` if it cannot train conv layers: why, and which can."""
    return ConfigError(
        f"Learner '{name}' cannot train a convolutional network: "
        f"{learner_class(name).conv_refusal}. Learners whose rule extends to conv layers: "
        f"{learners_of_kind(ConvLearner)}. Use one of them for the conv layers (convs), or "
        "drop the conv layers to use a dense network."
    )


class ConvNetwork(LocalNetwork):
    """A :class:`LocalNetwork` whose first layers are convolutions (shape: :class:`ConvSpec`).

    Inputs are ``(N, C, H, W)`` maps, or ``(N, C * H * W)`` rows, which are read as maps of
    ``spec.in_shape``. Unless ``spec.input_error``, the network is a first module: its input
    (an observation) gets no error, and an input that asks for one is refused.
    """

    spec: ConvSpec

    def __init__(
        self,
        spec: ConvSpec,
        learner: Learner | str = "bp",
        context: RunContext | None = None,
        **learner_kwargs: Any,
    ) -> None:
        super().__init__(spec, learner, context, **learner_kwargs)  # type: ignore[arg-type]

    @staticmethod
    def build_layers(spec: ConvSpec) -> nn.ModuleList:
        layers: list[nn.Module] = []
        channels = spec.in_shape[0]
        for conv in spec.convs:
            layers.append(
                nn.Conv2d(channels, conv.channels, conv.kernel, conv.stride, conv.padding)
            )
            channels = conv.channels
        widths = (spec.flat_features, *spec.hidden, spec.out_features)
        layers.extend(nn.Linear(n_in, n_out) for n_in, n_out in pairwise(widths))
        return nn.ModuleList(layers)

    def check_learner(self, learner: Learner) -> None:
        if not isinstance(learner, ConvLearner):
            raise conv_refusal(learner.name)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.spec.in_shape)
        if x.requires_grad and torch.is_grad_enabled() and not self.spec.input_error:
            raise ConfigError(
                "This conv network's input asks for an error (it requires grad), but the network "
                "is a first module that sends none to its input. Detach the input, or build "
                "the network with ConvSpec(..., input_error=True)."
            )
        return super().forward(x)

    def forward_pass(self, x: Tensor, record: bool) -> tuple[Tensor, ConvCache | None]:
        assert self.learner.activation is not None
        x = x.reshape(x.shape[0], *self.spec.in_shape)
        return conv_forward(self.layers, self.spec, self.learner.activation, x, record)

    def assign_credit(
        self, cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert isinstance(self.learner, ConvLearner) and isinstance(cache, ConvCache)
        return self.learner.assign_conv_credit(self.layers, self.spec, cache, error, input_grad)

    def differentiable_credit(
        self, x: Tensor, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        """A learner with ``second_order`` computes backprop's gradient, so autograd through the
        forward pass gives its update as a differentiable function."""
        assert isinstance(self.learner, ErrorDrivenLearner) and self.learner.second_order
        params = self.parameters_in_order()
        inputs = [x, *params] if input_grad else params
        y, _ = self.forward_pass(x, record=False)
        grads = list(torch.autograd.grad(y, inputs, grad_outputs=error, create_graph=True))
        return (grads.pop(0) if input_grad else None), grads
