"""Contrastive Hebbian learning (Movellan 1991, "Contrastive Hebbian learning in the continuous
Hopfield model", Connectionist Models Summer School; Xie & Seung 2003, Neural Comput.
15(2):441, "Equivalence of backpropagation and contrastive Hebbian learning in a layered
network").

The whole network, output units included, is one layered energy network with symmetric
connections (:mod:`biocredit.learners.settling`, the settling eqprop uses): hidden units bounded
(hard tanh by default), output units linear, the input ``x = s_0`` clamped, ``L = H + 1`` layers

    E(s) = sum_{l=1..L} gamma^(l-1) ( ||s_l||^2 / 2 - s_l^T W_l s_{l-1} - b_l^T s_l ),  s_L = y

whose top-down halves are ``gamma`` times the bottom-up ones (Xie & Seung's feedback gain).

Free phase: from the feedforward pass, block sweeps (odd layers, then even ones) over every
layer: a hidden layer jumps to ``clamp(W_l s_{l-1} + gamma s_{l+1} W_{l+1} + b_l)``, the
output to ``W_L s_H + b_L``, which in turn feeds back into the top hidden layer as ``gamma y
W_L``. The network's output is ``y`` at the end of the free phase (the output units' minimiser
given the last ``s_H``): what an SB3 policy sees is what CHL trains.

Clamped phase: the output units are held at the target ``y* = y - beta e`` (the target-driven
seam; ``beta = nudge / rms(e)`` by default) and the hidden layers settle again from the free
state, the top one now under ``gamma y* W_L``. Beside it the free phase runs on for the same
sweeps with the output held where it settled, at ``y`` (at a free fixed point the output is
there anyway, so this is the free phase, continued): whatever the free sweeps left unsettled
then cancels from the contrast instead of being divided by ``beta gamma^(L-l)`` (on four hidden
layers in float32 it otherwise swamped the first layer's update). Unlike equilibrium
propagation, whose readout is only weakly nudged from outside the energy, the output is clamped,
and the contrast is clamped against free. Every synapse compares the co-activity of its two
units between the phases, Movellan's update with Xie & Seung's gain per layer (gradient sign,
``c`` clamped, ``f`` free, continued):

    dW_l = -(s^c_l s^c_{l-1}^T - s^f_l s^f_{l-1}^T) / (beta gamma^(L-l))
    db_l = -sum_batch (s^c_l - s^f_l) / (beta gamma^(L-l))                    l = 1 .. L

For the output layer (``s^c_L - s^f_L = -beta e``) this is ``e^T s^c_H - y^T (s^c_H - s^f_H) /
beta``. With ``nudge=1, relative_nudge=False`` a squared error ``||y - t||^2 / 2`` clamps the
output to the target itself, Movellan's setting.

Xie & Seung's equivalence: layer ``l`` moves by ``s^c_l - s^f_l = -beta gamma^(L-l) delta_l +
O(gamma^(L-l+1))``, with ``delta_l`` backprop's deltas through the free fixed point, which tends
to the feedforward pass as ``gamma -> 0``; so the update tends to backprop's gradient of the
feedforward network as ``gamma -> 0``. At a finite gain and a small ``beta`` it is the gradient
of the loss through the free phase, the recurrent network the output comes from (float32, the
defaults, ``[8, 64 x H, 1]``: cosine 1.0000 on every layer for H = 2, 4, 8, against autograd
through the same free sweeps). That network differs from the feedforward one by its top-down
halves, among them the output's own feedback ``gamma y W_L`` into the top hidden layer, which
grows with the outputs. RL outputs (values) reach tens, so the default gain is 0.01: at eqprop's
0.05 a value of 50 moves the top layer's drive by about 2.5, past its units' range. Cosine to
backprop of the feedforward pass on ``[4, 64, 64, 1]``, batch 256, orthogonal init, outputs
around 50: 0.67-0.88 at gain 0.05, 0.97-0.99 at 0.01 (around 10: 0.96-0.98 and 0.994-0.998).

The clamped phase's layer-``l`` contrast is ``beta gamma^(L-l)`` (1e-5 on the first of two
hidden layers at the defaults), below float32's resolution of the states, so it is kept as its
difference from the continued free phase and the contrast is expanded so that no two O(1)
products are subtracted (:func:`~biocredit.learners.settling.relative_contrastive_grads`; the
settling module's ``perturbed_phases``, the continued free phase as phase b).

The error for an upstream module is the input's contrast, ``-(s^c_1 - s^f_1) W_1 / (beta
gamma^H)`` (``e W_L`` without hidden layers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocredit.learners.base import ForwardCache
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.settling import LayeredEnergyLearner, relative_contrastive_grads


@register
class ContrastiveHebbian(LayeredEnergyLearner):
    """Contrastive Hebbian learning: a free and an output-clamped phase of one symmetric
    layered network, Hebbian difference updates scaled by ``gamma^(l-L)`` per layer.

    :param free_steps: sweeps of the free phase (hidden and output layers); ``None`` (the
        default) is one per layer, at least 4
    :param clamped_steps: sweeps of the clamped phase, from the free state; ``None`` (the
        default) is one per hidden layer, at least 4
    :param nudge: how far the clamped output ``y* = y - beta e`` lies from the free one:
        ``beta``, relative to ``rms(e)`` unless ``relative_nudge`` is false
    :param relative_nudge: measure ``nudge`` in units of ``rms(e)``
    :param dt: step toward each layer's minimiser, in (0, 1]
    :param units: hidden units' range, ``"hard_tanh"`` [-1, 1] or ``"hard_sigmoid"`` [0, 1];
        the network spec's ``activation`` is not used: the units are the energy's
    :param coupling_gain: factor applied to the initial hidden-to-hidden weights
    :param feedback_gain: ``gamma`` in (0, 1], the top-down half of every symmetric synapse
        relative to the bottom-up half
    :param seed: unused (no random state); accepted like every learner's
    """

    name = "chl"
    family = "contrastive Hebbian learning"
    paper = "Movellan 1991; Xie & Seung 2003, Neural Comput. 15:441"
    update_kernels = (relative_contrastive_grads,)
    output_in_loop = True
    phase_steps_key = "clamped_steps"
    default_feedback_gain = 0.01

    def __init__(
        self,
        free_steps: int | None = None,
        clamped_steps: int | None = None,
        nudge: float = 0.1,
        relative_nudge: bool = True,
        dt: float = 1.0,
        units: str = "hard_tanh",
        coupling_gain: float = 1.0,
        feedback_gain: float = 0.01,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            free_steps, clamped_steps, nudge, relative_nudge, dt, units, coupling_gain,
            feedback_gain, seed,
        )  # fmt: skip

    @property
    def plausibility(self) -> Plausibility:
        # As eqprop: the same symmetric synapses carry the clamp down (not P2); one network's
        # settling is inference and the source of every update (P1, P3, P6); each synapse
        # compares its own two units between the phases (LP); bounded units, no derivative
        # (P4). Not UL: the clamped phase settles the whole network before any synapse changes.
        return Plausibility(
            p1_global_feedback=True,
            p3_short_term_plasticity=True,
            p4_constraints=True,
            local_plasticity=True,
            p6_inference_learning=True,
            control=True,
        )

    def forward_pass(
        self, layers: Sequence[nn.Linear], x: Tensor, record: bool
    ) -> tuple[Tensor, ForwardCache | None]:
        """The output units ``y = W_L s_H + b_L`` at the end of the free phase; with ``record``
        the free hidden states ``[x, s_1 .. s_H]`` are kept in ``cache.inputs``."""
        states = self.free_phase(layers, x)[:-1]
        out = layers[-1]
        y = torch.addmm(out.bias, states[-1], out.weight.t())
        return y, (ForwardCache(states, [], y) if record else None)

    def learn_from_target(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        shift: Tensor,
        beta: Tensor,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        free, y = cache.inputs, cache.output
        if not bool(shift.any()):  # no error: the phases agree, no update
            return (torch.zeros_like(free[0]) if input_grad else None), [
                torch.zeros_like(p) for layer in layers for p in (layer.weight, layer.bias)
            ]
        beta, gain, readout = float(beta), self.feedback_gain, layers[-1].weight
        if len(free) == 1:  # no hidden layer: the clamped output against the free one
            grads = list(
                relative_contrastive_grads(y, free[0], shift, torch.zeros_like(free[0]), beta)
            )
            return (shift.mm(readout).div_(-beta) if input_grad else None), grads
        base, difference = self.perturbed_phases(layers, free, gain * y, gain * shift, True)
        grads = list(relative_contrastive_grads(y, base[-1], shift, difference[-1], beta))
        grad_x, hidden = self.hidden_contrasts(layers, base, difference, beta * gain, input_grad)
        return grad_x, hidden + grads
