"""Local representation alignment, error-driven form (LRA-E; Ororbia & Mali 2019, AAAI 33:4651,
"Biologically Motivated Algorithms for Propagating Local Target Representations"; the
recursive form for deep networks, rec-LRA, is Ororbia, Mali, Kifer & Giles 2023, AAAI,
"Backpropagation-Free Deep Learning with Recursive Local Representation Alignment").

Every layer has error units ``e_l``: the mismatch between its activity and a target for it. The
output's are the boundary's, ``e_L = y - y* = beta e`` (``y* = y - beta e``). Each population of
error units drives the layer below through its error synapses ``E_l``, shaped like the forward
weights ``W_l`` (``n_l x n_{l-1}``), and that layer's target moves its pre-activation against
the message:

    d_{l-1} = e_l E_l                              (row vectors: the message to layer l-1)
    z*_{l-1} = f(a_{l-1} - step d_{l-1})           (its target; ``step`` is the paper's beta)
    e_{l-1} = h_{l-1} - z*_{l-1}                   (its error units)

Every synapse changes by its own error units and its input; no derivative of the activation is
computed anywhere (the target passes through the unit's own activation instead), the paper's
``f'``-free update:

    W_l.grad = e_l^T h_{l-1} / beta,   b_l.grad = sum_batch e_l / beta

divided by the boundary's ``beta`` to be gradient-sized (the output layer's is backprop's
``e^T h_{L-1}``). These are the paper's equations as the authors' reference code computes them
(its README says the code follows the paper's pseudo-code): targets in pre-activation space
through ``f``, ``e = h - z*``, ``dW = e^T h_{l-1}`` with no ``f'``.

Error synapses: fixed random (``feedback="fixed"``, the default) or learned (``"learned"``) by
the rule of the authors' code, where each error synapse receives its forward twin's update times
``gamma`` (``Delta E_l = gamma (Delta W_l)^T`` in the paper's layout, in which ``E_l`` maps layer
``l``'s errors down). Here ``E_l`` is shaped like ``W_l`` and carries the message ``e_l E_l``
that ``e_l W_l`` would carry in backprop, so (``gamma``: ``feedback_rate``)

    E_l.grad = gamma e_l^T h_{l-1} / beta

through the same optimizer as the forward weights (as in the authors' code), so ``E_l - W_l``
stays at its initial value under plain SGD with ``gamma = 1`` (Kolen-Pollack learning without
decay).

Scale: the paper uses ``beta = 0.1`` with parameters drawn with variance 0.05 (the authors'
TensorFlow code draws ``E`` from a standard normal) on 256-unit layers: a message of ``beta
sigma_E sqrt(n)``, 0.36 to 1.6 times the error units' size, between hidden layers. Here
``E_l``'s entries spread ``scale / sqrt(n_l)`` (uniform: standard deviation ``1 / sqrt(3 n_l)``,
so the message has ``1 / sqrt(3)`` of the error's size per unit whatever the width), and
``step`` is the gain: at its default 1, 0.58, inside the paper's range. A gain well below 1
shrinks the targets of successive layers geometrically, which in float32 leaves the first
layers' errors (differences of O(1) activities) at the level of rounding.

The network's input is a linear layer with the target ``x - step d_0``; an upstream module gets
the error ``step d_0 / beta``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from biocredit.errors import unknown_name
from biocredit.learners.base import ForwardCache, TargetDrivenLearner
from biocredit.learners.feedback import check_feedback_options, random_feedback
from biocredit.learners.options import check_number
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec

FEEDBACK_MODES = ("fixed", "learned")


def error_message(error: Tensor, feedback: Tensor) -> Tensor:
    """``d_{l-1} = e_l E_l``: the error units of layer ``l`` through their error synapses
    (``E_l`` shaped like ``W_l``, ``(n_l, n_{l-1})``)."""
    return error.mm(feedback)


def layer_target(
    pre_activation: Tensor, message: Tensor, step: float, fn: Callable[[Tensor], Tensor]
) -> Tensor:
    """A layer's target ``z* = f(a - step d)``: its pre-activation moved against the message."""
    return fn(torch.add(pre_activation, message, alpha=-step))


def error_units(post: Tensor, target: Tensor) -> Tensor:
    """A layer's error units ``e = h - z*``: its activity's mismatch with its target."""
    return post - target


def lra_weight_grads(error: Tensor, pre: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient-sign update of one layer from its own error units and its input, no ``f'``:
    ``W.grad = e_l^T h_{l-1} / beta``, ``b.grad = sum_batch e_l / beta``."""
    scaled = error / beta
    return scaled.t().mm(pre), scaled.sum(0)


@register
class LocalRepresentationAlignment(TargetDrivenLearner):
    """Local representation alignment (LRA-E): per-layer targets from error units through error
    synapses, local ``f'``-free updates.

    :param step: how far each hidden layer's target moves its pre-activation against the
        message, ``z* = f(a - step d)`` (the paper's beta; see the module docstring for scale)
    :param feedback: ``"fixed"`` random error synapses or ``"learned"`` ones
        (``E.grad = gamma W.grad``)
    :param feedback_rate: ``gamma``, the learned error synapses' rate relative to the forward
        weights'
    :param nudge: how far the output target lies from the output, against the loss
    :param relative_nudge: measure ``nudge`` in units of ``rms(e)`` (``beta = nudge / rms(e)``)
    :param init: ``"uniform"`` or ``"gaussian"`` error synapses
    :param scale: their spread, ``scale / sqrt(n_l)`` for ``E_l``
    :param seed: seed for the error synapses; by default drawn from torch's global RNG
    """

    name = "lra"
    family = "local representation alignment"
    paper = "Ororbia & Mali 2019, AAAI 33:4651; Ororbia et al. 2023, AAAI (rec-LRA)"
    update_kernels = (lra_weight_grads,)
    variants: ClassVar[dict[str, dict[str, Any]]] = {"learned": {"feedback": "learned"}}

    def __init__(
        self,
        step: float = 1.0,
        feedback: str = "fixed",
        feedback_rate: float = 1.0,
        nudge: float = 0.1,
        relative_nudge: bool = True,
        init: str = "uniform",
        scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(nudge, relative_nudge, seed)
        self.step = check_number(self.name, "step", step, hint=1.0)
        if feedback not in FEEDBACK_MODES:
            raise unknown_name("lra feedback", feedback, FEEDBACK_MODES)
        self.feedback_rate = check_number(self.name, "feedback_rate", feedback_rate, hint=1.0)
        check_feedback_options(self.name, init, scale)
        self.feedback_mode = feedback
        self.init, self.scale = init, scale

    @property
    def plausibility(self) -> Plausibility:
        # The error units' messages travel down one layer at a time through synapses of their
        # own (P2; a layered pathway: not P1, not UL); each synapse changes by its own error
        # units and input (LP); no f' anywhere (P4).
        return Plausibility(
            p2_weight_transport=True,
            p4_constraints=True,
            local_plasticity=True,
            architecture_agnostic=True,
            control=True,
        )

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        for l, (n_in, n_out) in enumerate(pairwise(spec.sizes)):  # E_l shaped like W_l
            matrix = random_feedback((n_out, n_in), n_out, self.init, self.scale, generator)
            self.register_feedback(f"feedback_{l}", matrix, self.feedback_mode == "learned")

    def learn_from_target(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        shift: Tensor,
        beta: Tensor,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        fn = self.activation.fn
        error = shift.neg()  # e_L = y - y*
        feedback = self.own_feedback()
        grads: list[Tensor] = []
        for l in range(len(layers) - 1, -1, -1):
            grad_w, grad_b = lra_weight_grads(error, cache.inputs[l], beta)
            grads[:0] = grad_w, grad_b
            if self.feedback_mode == "learned":
                synapses, grad = feedback[l], grad_w * self.feedback_rate
                synapses.grad = grad if synapses.grad is None else synapses.grad.add_(grad)
            if l > 0:
                message = error_message(error, feedback[l].detach())
                target = layer_target(cache.pre_activations[l - 1], message, self.step, fn)
                error = error_units(cache.inputs[l], target)
        grad_x = None
        if input_grad:  # the input's target x - step d_0: e_0 = step d_0
            grad_x = error_message(error, feedback[0].detach()).mul_(self.step) / beta
        return grad_x, grads

    def extra_repr(self) -> str:
        return (
            f"step={self.step}, feedback={self.feedback_mode!r}, "
            f"feedback_rate={self.feedback_rate}, nudge={self.nudge}, init={self.init!r}, "
            f"scale={self.scale}, seed={self.seed}"
        )
