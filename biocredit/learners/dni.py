"""Decoupled neural interfaces: synthetic gradients (Jaderberg, Czarnecki, Osindero, Vinyals,
Graves, Silver & Kavukcuoglu 2017, ICML, "Decoupled Neural Interfaces using Synthetic
Gradients").

Each hidden layer ``l`` has a small module ``M_l``, linear here, that predicts the gradient of the
loss with respect to the layer's activity ``h_l`` from that activity (with ``conditioned``, from
the output error ``e`` too: the conditional DNI, cDNI). The layer updates from the prediction at
once, without waiting for any error to come down through the layers above (update-unlocked):

    g_l = M_l(h_l) = h_l A_l^T + c_l  [+ e C_l^T]           (l = 1 .. L-1)
    delta_l = g_l * f'(a_l),   dW_l = delta_l^T h_{l-1},  db_l = sum delta_l
    top:  delta_L = e,         dW_L = e^T h_{L-1}

The modules start at zero output (``A_l, c_l, C_l = 0``, as the paper initialises its modules'
last layer) and regress on a target one layer up, ``||g_l - t_l||^2 / 2``:

    t_{L-1} = e B_L                                  (the true error, through the top layer)
    t_l     = delta_{l+1} B_{l+1} = (g_{l+1} * f'(a_{l+1})) B_{l+1}    (bootstrapped)
    A.grad = (g_l - t_l)^T h_l,   c.grad = sum (g_l - t_l),   C.grad = (g_l - t_l)^T e

Carrying a gradient through layer ``l+1`` needs that layer's weights in the backward direction.
``feedback="symmetric"`` (the paper's, and the default: a name is a promise) uses ``B = W``: the
hidden layers' own updates never read another layer's weight, but the modules' targets are
computed with ``W_{l+1}^T``, which is weight transport (not P2). ``feedback="random"`` sends the
target through fixed random matrices ``B_{l+1}`` shaped like ``W_{l+1}`` instead (feedback
alignment for one hop, Lillicrap et al. 2016; ``init``/``scale`` as fa's): no weight transport.

The modules' parameters are parameters of the learner: their ``.grad`` is written here and the
optimizer that trains the network applies it (the same learning rate, schedule and clipping), as
pc's learned error synapses.

Conditioning (cDNI conditions on the label): a module may also read the output error ``e = dL/dy``,
which at the boundary is all there is of the output target ``y* = y - beta e`` that the forward
pass does not already carry; ``e`` arrives before any layer's credit, so the layers stay
update-unlocked.

The error handed to a module upstream is a synthetic gradient too: ``g_0 = M_0(x)``, the DNI
between two modules, its target ``delta_1 B_1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from biocredit.errors import unknown_name
from biocredit.learners.base import (
    ErrorDrivenLearner,
    ForwardCache,
    accumulate_grad,
    linear_grads,
)
from biocredit.learners.feedback import check_feedback_options, random_feedback
from biocredit.learners.options import check_flag
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec

FEEDBACK_MODES = ("symmetric", "random")


def synthetic_gradient(
    post: Tensor,
    weight: Tensor,
    bias: Tensor,
    context: Tensor | None,
    context_weight: Tensor | None,
) -> Tensor:
    """A module's prediction of ``dL/dh_l``: ``g_l = h_l A^T + c [+ e C^T]``."""
    g = torch.addmm(bias, post, weight.t())
    if context is not None and context_weight is not None:
        g.addmm_(context, context_weight.t())
    return g


def synthetic_delta(synthetic: Tensor, fprime: Tensor) -> Tensor:
    """A hidden layer's local error from its synthetic gradient: ``delta_l = g_l * f'(a_l)``."""
    return synthetic * fprime


def bootstrap_target(delta_above: Tensor, feedback: Tensor) -> Tensor:
    """A module's regression target, the error one layer up sent down through it:
    ``t_l = delta_{l+1} B_{l+1}`` (``B`` shaped like the forward weights, ``(n_{l+1}, n_l)``)."""
    return delta_above.mm(feedback)


@register
class SyntheticGradients(ErrorDrivenLearner):
    """Decoupled neural interfaces: every hidden layer learns from a synthetic gradient.

    :param feedback: ``"symmetric"`` (the modules' targets go down through ``W^T``, as in the
        paper) or ``"random"`` (through fixed random matrices: no weight transport)
    :param conditioned: the modules also read the output error ``e`` (cDNI)
    :param init: ``"uniform"`` or ``"gaussian"`` random feedback entries
    :param scale: their spread, relative to default ``nn.Linear`` weights
    :param seed: seed for the random feedback; by default drawn from torch's global RNG
    """

    name = "dni"
    family = "decoupled neural interfaces / synthetic gradients"
    paper = "Jaderberg et al. 2017, ICML"
    update_kernels = (linear_grads,)
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "random": {"feedback": "random"},
        "conditioned": {"conditioned": True},
    }

    def __init__(
        self,
        feedback: str = "symmetric",
        conditioned: bool = False,
        init: str = "uniform",
        scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        if feedback not in FEEDBACK_MODES:
            raise unknown_name("dni feedback", feedback, FEEDBACK_MODES)
        check_flag(self.name, "conditioned", conditioned)
        check_feedback_options(self.name, init, scale)
        self.feedback_mode, self.conditioned = feedback, conditioned
        self.init, self.scale = init, scale
        self._sg_modules: list[tuple[Tensor, Tensor, Tensor | None]] = []

    @property
    def plausibility(self) -> Plausibility:
        # Each hidden layer updates from its own module's prediction, before any error comes down
        # (UL). The modules' targets travel a backward pathway one hop at a time (not P1):
        # through W^T (not P2, not LP) or through fixed random synapses (P2, LP).
        random = self.feedback_mode == "random"
        return Plausibility(
            p2_weight_transport=random,
            local_plasticity=random,
            update_unlocked=True,
            architecture_agnostic=True,
            control=True,
        )

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        """A zero module ``(A_l, c_l[, C_l])`` for the input and every hidden layer, and with
        random feedback a fixed ``B_l`` shaped like every ``W_l``."""
        for l, width in enumerate(spec.sizes[:-1]):
            self.register_parameter(f"sg_weight_{l}", nn.Parameter(torch.zeros(width, width)))
            self.register_parameter(f"sg_bias_{l}", nn.Parameter(torch.zeros(width)))
            context = None
            if self.conditioned:
                shape = (width, spec.out_features)
                self.register_parameter(f"sg_context_{l}", nn.Parameter(torch.zeros(shape)))
                context = getattr(self, f"sg_context_{l}")
            weight, bias = getattr(self, f"sg_weight_{l}"), getattr(self, f"sg_bias_{l}")
            self._sg_modules.append((weight, bias, context))
        if self.feedback_mode == "random":
            for l, (n_in, n_out) in enumerate(pairwise(spec.sizes)):
                matrix = random_feedback((n_out, n_in), n_in, self.init, self.scale, generator)
                self.register_feedback(f"feedback_{l}", matrix)

    def feedback_matrices(self, layers: Sequence[nn.Linear]) -> list[Tensor]:
        """``B_l`` for every layer: the forward weights when symmetric, else the fixed ones."""
        if self.feedback_mode == "symmetric":
            return [layer.weight for layer in layers]
        return self.own_feedback()

    def synthetic_gradient(self, l: int, post: Tensor, error: Tensor) -> Tensor:
        """``g_l`` of module ``l`` (``0``: the input's) from ``h_l`` [and ``e``]."""
        weight, bias, context_weight = self._sg_modules[l]
        return synthetic_gradient(
            post, weight, bias, error if self.conditioned else None, context_weight
        )

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        derivative = self.activation.derivative
        modules = range(0 if input_grad else 1, len(self._sg_modules))
        synthetic = {l: self.synthetic_gradient(l, cache.inputs[l], error) for l in modules}
        # deltas[k]: the error at the output of layers[k]; a hidden one from its module alone
        deltas = [
            synthetic_delta(synthetic[l], derivative(a, cache.inputs[l]))
            for l, a in enumerate(cache.pre_activations, start=1)
        ]
        deltas.append(error)
        grads = [g for k, delta in enumerate(deltas) for g in linear_grads(delta, cache.inputs[k])]
        feedback = self.feedback_matrices(layers)
        for l in modules:  # each module regresses on the error one layer up, sent down to it
            weight, bias, context_weight = self._sg_modules[l]
            residual = synthetic[l] - bootstrap_target(deltas[l], feedback[l])
            grad_w, grad_b = linear_grads(residual, cache.inputs[l])
            accumulate_grad(weight, grad_w)
            accumulate_grad(bias, grad_b)
            if context_weight is not None:
                accumulate_grad(context_weight, residual.t().mm(error))
        return (synthetic[0] if input_grad else None), grads

    def extra_repr(self) -> str:
        return (
            f"feedback={self.feedback_mode!r}, conditioned={self.conditioned}, init={self.init!r}, "
            f"scale={self.scale}, seed={self.seed}"
        )
