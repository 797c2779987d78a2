"""Feedback alignment (Lillicrap, Cownden, Tweed & Akerman 2016, Nat. Commun. 7:13276).

The error travels back layer by layer, as in backprop, but through a fixed random matrix ``B_l``
of the same shape as ``W_l`` instead of ``W_l`` itself, so no synapse needs to know another's
weight (no weight transport). The forward weights come to align with ``B``:

    delta_L = e
    delta_l = (delta_{l+1} B_{l+1}) * f'(a_l)
    dW_l = delta_l^T h_{l-1},  db_l = sum delta_l
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import torch
from torch import Tensor, nn

from biocredit.errors import ConfigError, unknown_name
from biocredit.learners.base import ForwardCache, Learner, linear_grads
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec

FEEDBACK_INITS = ("uniform", "gaussian")


def fa_delta(delta_above: Tensor, feedback: Tensor, fprime: Tensor) -> Tensor:
    """Local error of a hidden layer: ``delta_l = (delta_{l+1} B_{l+1}) * f'(a_l)``.

    ``feedback`` has the shape of the forward weights above, ``(n_{l+1}, n_l)``.
    """
    return delta_above.mm(feedback).mul_(fprime)


def random_feedback(
    shape: tuple[int, int], fan: int, init: str, scale: float, generator: torch.Generator
) -> Tensor:
    """A fixed random matrix with entries of standard deviation ``scale / sqrt(3 fan)``.

    ``uniform`` draws from ``U(-scale/sqrt(fan), scale/sqrt(fan))``, the range of PyTorch's default
    ``nn.Linear`` weights; ``gaussian`` draws from a normal of the same variance.
    """
    bound = scale / fan**0.5
    if init == "uniform":
        return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound
    return torch.randn(shape, generator=generator) * (bound / 3**0.5)


def backward_chain(
    layers: Sequence[nn.Linear],
    cache: ForwardCache,
    error: Tensor,
    feedback: Sequence[Tensor],
    derivative: Callable[[Tensor, Tensor], Tensor],
    input_grad: bool,
) -> tuple[Tensor | None, list[Tensor]]:
    """Send ``error`` down the layers through ``feedback[l]`` (``W_l`` for BP, ``B_l`` for FA)."""
    grads: list[Tensor] = []
    delta = error
    for l in range(len(layers) - 1, -1, -1):
        grads[:0] = linear_grads(delta, cache.inputs[l])
        if l > 0:
            a, h = cache.pre_activations[l - 1], cache.inputs[l]
            delta = fa_delta(delta, feedback[l], derivative(a, h))
    grad_x = delta.mm(feedback[0]) if input_grad else None
    return grad_x, grads


@register
class FeedbackAlignment(Learner):
    """Feedback alignment: fixed random feedback ``B_l`` in place of ``W_l^T`` at every layer.

    :param init: ``"uniform"`` or ``"gaussian"`` feedback entries
    :param scale: feedback entries have the spread of default ``nn.Linear`` weights times ``scale``
    :param seed: seed for the feedback matrices; by default drawn from torch's global RNG
    """

    name = "fa"
    family = "feedback alignment"
    signal = "error"
    paper = "Lillicrap et al. 2016, Nat. Commun. 7:13276"
    plausibility = Plausibility(p2_weight_transport=True, architecture_agnostic=True, control=True)

    def __init__(self, init: str = "uniform", scale: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        check_feedback_options(init, scale)
        self.init, self.scale = init, scale

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        for l, (n_in, n_out) in enumerate(pairwise(spec.sizes)):
            matrix = random_feedback((n_out, n_in), n_in, self.init, self.scale, generator)
            self.register_buffer(f"feedback_{l}", matrix)

    def feedback(self) -> list[Tensor]:
        """``[B_1, ..., B_L]``, each shaped like the forward weights of its layer."""
        assert self.spec is not None
        return [getattr(self, f"feedback_{l}") for l in range(self.spec.n_layers)]

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        return backward_chain(
            layers, cache, error, self.feedback(), self.activation.derivative, input_grad
        )

    def extra_repr(self) -> str:
        return f"init={self.init!r}, scale={self.scale}, seed={self.seed}"


def check_feedback_options(init: str, scale: float) -> None:
    """Reject an unknown feedback ``init`` or a non-positive ``scale``."""
    if init not in FEEDBACK_INITS:
        raise unknown_name("feedback init", init, FEEDBACK_INITS)
    if not scale > 0:
        raise ConfigError(f"Feedback scale must be > 0, got {scale!r}. Try scale: 1.0.")
