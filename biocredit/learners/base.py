"""The learner base class: a credit-assignment scheme bound to one local network.

Every learner ends by producing, for each parameter, the negative of the update its own local
rule prescribes. The autograd boundary (:mod:`biocredit.learners.boundary`) hands those to torch,
which accumulates them into ``.grad``; a standard ``torch.optim`` optimizer then applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from biocredit.learners.activations import Activation, get_activation
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.spec import NetworkSpec


@dataclass
class ForwardCache:
    """What a feedforward pass leaves behind for credit assignment.

    ``inputs[l]`` is the pre-synaptic activity of weight layer ``l`` (``inputs[0]`` is the network
    input, ``inputs[l] = f(pre_activations[l - 1])``); ``pre_activations`` holds the hidden layers'
    ``a_l``; ``output`` is ``y``.
    """

    inputs: list[Tensor]
    pre_activations: list[Tensor]
    output: Tensor


def linear_grads(delta: Tensor, pre: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient-sign update of one linear layer from its local error and its input.

    ``dL/dW = delta^T x`` and ``dL/db = sum_batch delta``: the post-synaptic error times the
    pre-synaptic activity, shared by every error-driven rule; rules differ only in ``delta``.
    """
    return delta.t().mm(pre), delta.sum(0)


class Learner(nn.Module):
    """Base class for credit-assignment schemes.

    Subclasses set the class attributes and implement :meth:`assign_credit`; learners that keep
    state sized by the network (feedback matrices, traces) create it as buffers in
    :meth:`build_state`, so it is saved and restored with the model.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    signal: ClassVar[str]  # "error", "target", "modulator", "goodness" or "none"
    paper: ClassVar[str]
    plausibility: ClassVar[Plausibility]

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.seed = seed
        self.spec: NetworkSpec | None = None
        self.activation: Activation | None = None

    def attach(self, spec: NetworkSpec) -> None:
        """Bind this learner to a network of shape ``spec`` and create its state."""
        if self.spec is not None:
            raise RuntimeError(
                f"This '{self.name}' learner is already attached to a network; "
                "make one learner per network (make_learner(...) each time)."
            )
        self.spec = spec
        self.activation = get_activation(spec.activation)
        generator = torch.Generator()
        if self.seed is None:  # follow the global torch seed, which SB3 and biocredit set per run
            generator.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
        else:
            generator.manual_seed(self.seed)
        self.build_state(spec, generator)

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        """Create learner state (as buffers) for a network of shape ``spec``; none by default."""

    def init_weights(self, layers: Sequence[nn.Linear]) -> None:
        """Adjust freshly initialised weights to what the rule needs; nothing by default.

        :class:`~biocredit.learners.network.LocalNetwork` calls it after every initialisation
        (its own, and :meth:`~biocredit.learners.network.LocalNetwork.init_orthogonal`).
        """

    def forward_pass(
        self, layers: Sequence[nn.Linear], x: Tensor, record: bool
    ) -> tuple[Tensor, ForwardCache | None]:
        """Feedforward inference ``h_l = f(W_l h_{l-1} + b_l)``, linear output layer.

        With ``record`` the activities needed by :meth:`assign_credit` are kept.
        """
        assert self.activation is not None, "attach() the learner to a network first"
        f = self.activation.fn
        inputs, pre_activations = [x], []
        h = x
        for layer in layers[:-1]:
            a = torch.addmm(layer.bias, h, layer.weight.t())
            h = f(a)
            if record:
                pre_activations.append(a)
                inputs.append(h)
        out = layers[-1]
        y = torch.addmm(out.bias, h, out.weight.t())
        return y, (ForwardCache(inputs, pre_activations, y) if record else None)

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        """Turn the output error ``e = dL/dy`` into parameter gradients by the learner's rule.

        Returns the error signal for the network's input (``None`` unless ``input_grad``) and the
        gradients ``[dW_1, db_1, ..., dW_L, db_L]``.
        """
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"seed={self.seed}"
