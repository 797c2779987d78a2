"""Equilibrium propagation (Scellier & Bengio 2017, Front. Comput. Neurosci. 11:24), with the
symmetric nudging and linear readout of Laborieux et al. 2021 (Front. Neurosci. 15:633674).

The hidden layers are one energy-based network with bounded units (hard tanh by default, or
hard sigmoid) and symmetric connections; the input ``x = s_0`` is clamped:

    E(s) = sum_{l=1..H} c_l ( ||s_l||^2 / 2 - s_l^T W_l s_{l-1} - b_l^T s_l ),   s_l in [low, high]

(inside the box the firing rate is the state, ``rho(s) = s``). The layer weights ``c_l =
gamma^(l-1)`` set the feedback gain ``gamma`` (Xie & Seung 2003, Neural Comput. 15(2)): layer
``l + 1`` acts on layer ``l`` through ``gamma W_{l+1}^T``, so the loop ``s_l -> s_{l+1} -> s_l``
has gain ``gamma ||W_{l+1}||^2``. ``gamma = 1`` is the plain layered Hopfield energy; a smaller
``gamma`` keeps the free phase a contraction while the weights grow during learning, and as
``gamma -> 0`` the free fixed point becomes the feedforward pass and the update below becomes
backprop's gradient of it (Xie & Seung's equivalence). The default ``gamma = 0.05`` gives a loop
gain of 0.1 under SB3's orthogonal init (``||W||^2 = 2``), and the loop still contracts after
learning has tripled the weights' spectral norm (``0.05 * 2 * 3^2 = 0.9``). With ``gamma = 1``
the weights grow under Adam until the loop expands, the units saturate at the bounds and PPO
stops learning; with 0.2 PPO learned CartPole-v1 on one seed of two
(``docs/notes/eqprop_ppo_history.md``).

The output ``y = W_L s_H + b_L`` is a linear readout that takes no part in the free dynamics:
in RL the value head's outputs are large, and fed back into the energy they would saturate the
hidden units. The network computes ``y`` at the end of the *free* phase, so whatever uses the
network (an SB3 policy) sees the output that equilibrium propagation trains. The free phase
runs ``free_steps`` sweeps: the fixed point on a weakly coupled network, an approximation of it
on a strongly coupled one (``coupling_gain`` scales the initial hidden-to-hidden weights).

Free phase: from the feedforward pass, settle by exact block-coordinate descent on E, odd hidden
layers then even ones (a layer's neighbours are held fixed, so its minimiser is the clamp of its
input, and E never increases):

    s_l <- (1 - dt) s_l + dt clamp(D_l, low, high)
    D_l  = W_l s_{l-1} + gamma s_{l+1} W_{l+1} + b_l

A sweep moves a change by about two layers, so by default both phases run one sweep per hidden
layer, at least 4 (``free_steps = nudge_steps = max(4, H)``): the nudge reaches the first layer
after about ``H / 2 + 1`` sweeps and the rest settle it.

Nudged phase: with only ``e = dL/dy`` from the autograd boundary, the cost is linearised,
``C = e . y``, and ``F = E + beta c_H C`` adds the force ``-beta e W_L`` to the top hidden layer
(the readout units carry ``-beta e`` back through the same synapses). The option ``beta`` is the
nudge in units of the error's root mean square, ``beta = beta_option / rms(e)``, so the nudge
stays well inside the states' range whether the loss is a batch sum or a batch mean. Settling
again from the free state gives ``s^beta``; with symmetric nudging both ``s^{+beta}`` (phase a)
and ``s^{-beta}`` (phase b), one-sided ``s^{+beta}`` against the free state (phase b).

Layer ``l``'s response to the nudge is about ``beta gamma^(H-l)`` (1e-10 at the first of 8
layers), far below float32's resolution of O(1) states, so the phases are not stored as states:
phase b is, and phase a as its difference ``w = s^a - s^b``. The drive is linear in the states,
so ``w``'s drive is ``dD_l = W_l w_{l-1} + gamma w_{l+1} W_{l+1}`` (``+ 2 (-beta e) W_L`` at
the top when symmetric, ``-beta e W_L`` one-sided; the clamped input does not move, ``w_0 =
0``), and the clamp passes it through exactly wherever neither phase is clipped:

    w_l <- (1 - dt) w_l + dt [clamp(D^b_l + dD_l) - clamp(D^b_l)]                      symmetric
    w_l <- (1 - dt) w_l + dt [clamp(D^b_l + dD_l) - clamp(D^b_l) + clamp(D^b_l) - s^b_l]  one-sided

where ``clamp(D + dD) - clamp(D)`` is ``dD`` inside the box and computed in full only at its
edges (:func:`~biocredit.learners.settling.clamp_difference`), and ``D^b_l`` is phase b's
drive. Symmetric, phase b settles like the free phase under the force ``+beta e W_L``;
one-sided, it is the free state and stays there, and the last two terms (the free phase's own
drift, zero at its fixed point) are phase a's. In exact arithmetic these are the same two
phases as settled states.

Each synapse compares the co-activity of its two units between the phases (gradient sign), scaled
by its layer's ``c_l / c_H = gamma^(l-H)``, expanded so that no two O(1) products are subtracted:

    dW_l = -(s^a_l s^a_{l-1}^T - s^b_l s^b_{l-1}^T) / span_l
         = -(w_l (s^b_{l-1} + w_{l-1})^T + s^b_l w_{l-1}^T) / span_l
    db_l = -sum_batch w_l / span_l
    span = 2 beta symmetric, beta one-sided;   span_l = span gamma^(H-l)
    dW_L = e^T s_H,  db_L = e                 the readout: delta rule at the free state

As ``beta -> 0`` this is the gradient of ``L`` through the free fixed point (implicit
differentiation), which ``tests/test_eqprop.py`` checks against autograd: in float64, and in
float32 on 2, 4 and 8 hidden layers at the default nudge and at 1e-4. Measured in float32 on
``[8, 64 x H, 3]`` networks under SB3's orthogonal init, batch 64, against the gradient through
300 free sweeps (``experiments/eqprop_settling.py``, ``docs/notes/eqprop_defaults.md``), at the
defaults: free-phase residual 1.2e-5 and cosine 0.9995 on 2 hidden layers, residual 5e-3 and
cosine 0.998 on 4, residual 5e-3 to 7e-3 and cosine 0.997 (every layer >= 0.996) on 8.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocredit.learners.base import ForwardCache, linear_grads
from biocredit.learners.options import check_flag
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.settling import LayeredEnergyLearner, relative_contrastive_grads


@register
class EquilibriumPropagation(LayeredEnergyLearner):
    """Equilibrium propagation: free and nudged settling of an energy network, contrastive
    Hebbian updates (the settling is :mod:`biocredit.learners.settling`'s, shared with chl).

    :param free_steps: sweeps (odd layers, then even layers) of the free phase; ``None`` (the
        default) is one per hidden layer, at least 4
    :param nudge_steps: sweeps of each nudged phase, started from the free state; ``None`` (the
        default) is one per hidden layer, at least 4, enough to carry the nudge to the first
        layer and settle it
    :param nudge: nudging strength ``beta``, relative to the root mean square of the output
        error unless ``relative_nudge`` is false
    :param relative_nudge: measure ``nudge`` in units of ``rms(e)``
    :param symmetric: nudge with ``+beta`` and ``-beta`` (Laborieux et al. 2021) instead of
        ``+beta`` against the free phase; removes the O(beta) bias of the estimate
    :param dt: step toward each layer's minimiser, in (0, 1]
    :param units: hidden units' range, ``"hard_tanh"`` [-1, 1] or ``"hard_sigmoid"`` [0, 1];
        the network spec's ``activation`` is not used: the units are the energy's
    :param coupling_gain: factor applied to the initial hidden-to-hidden weights ``W_2 .. W_H``
        (see :meth:`init_weights`); 1 keeps the network's own initialisation
    :param feedback_gain: ``gamma`` in (0, 1], the strength of the top-down half of every
        symmetric connection relative to the bottom-up half (energy weights ``gamma^(l-1)``);
        1 is the plain layered energy
    :param seed: unused (no random state); accepted like every learner's
    """

    name = "eqprop"
    family = "equilibrium propagation"
    paper = "Scellier & Bengio 2017, Front. Comput. Neurosci. 11:24; Laborieux et al. 2021"
    update_kernels = (relative_contrastive_grads, linear_grads)
    output_in_loop = False
    phase_steps_key = "nudge_steps"
    default_feedback_gain = 0.05

    def __init__(
        self,
        free_steps: int | None = None,
        nudge_steps: int | None = None,
        nudge: float = 0.1,
        relative_nudge: bool = True,
        symmetric: bool = True,
        dt: float = 1.0,
        units: str = "hard_tanh",
        coupling_gain: float = 1.0,
        feedback_gain: float = 0.05,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            free_steps, nudge_steps, nudge, relative_nudge, dt, units, coupling_gain,
            feedback_gain, seed,
        )  # fmt: skip
        self.symmetric = check_flag(self.name, "symmetric", symmetric)

    @property
    def nudge_steps(self) -> int | None:
        """Sweeps of each nudged phase (``None``: one per hidden layer, at least 4)."""
        return self.phase_steps

    @property
    def plausibility(self) -> Plausibility:
        # Symmetric connections carry the nudge down (not P2: the same W in both directions);
        # one network's settling is both inference and the source of every update (P1, P3, P6);
        # the hard-tanh/sigmoid units need no derivative (P4). Not UL: the nudged phase settles
        # the whole network before any synapse changes.
        return Plausibility(
            p1_global_feedback=True,
            p3_short_term_plasticity=True,
            p4_constraints=True,
            local_plasticity=True,
            p6_inference_learning=True,
            control=True,
        )

    def nudged_phases(
        self, layers: Sequence[nn.Linear], free: list[Tensor], force: Tensor
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Phase b's states ``[x, s^b_1 .. s^b_H]`` and phase a's relative to them, ``[0, w_1 ..
        w_H]`` with ``w = s^a - s^b``, after ``nudge_steps`` sweeps from the free state ``free``;
        ``force = -beta e`` nudges phase a from above the top layer (and ``+beta e`` phase b when
        symmetric; one-sided, phase b is the free state)."""
        if self.symmetric:
            return self.perturbed_phases(layers, free, -force, 2 * force, True)
        return self.perturbed_phases(layers, free, None, force, False)

    def forward_pass(
        self, layers: Sequence[nn.Linear], x: Tensor, record: bool
    ) -> tuple[Tensor, ForwardCache | None]:
        """The readout ``y = W_L s_H + b_L`` of the free fixed point (``s_H = x`` without hidden
        layers); with ``record`` the free states are kept in ``cache.inputs``."""
        states = self.free_phase(layers, x)
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
        free = cache.inputs
        force = shift  # -beta e, on the top hidden layer through the readout's synapses
        error = force / -beta  # the readout learns by the delta rule at the free state
        readout = layers[-1].weight
        grads = list(linear_grads(error, free[-1]))
        if len(free) == 1:  # no hidden layer: the readout is the whole network
            return (error.mm(readout) if input_grad else None), grads
        if not bool(force.any()):  # no error: no update
            return (torch.zeros_like(free[0]) if input_grad else None), [
                torch.zeros_like(p) for layer in layers for p in (layer.weight, layer.bias)
            ]
        beta = float(beta)
        base, difference = self.nudged_phases(layers, free, force)
        span = 2 * beta if self.symmetric else beta  # layer l's contrast is gamma^(H-l) weaker
        grad_x, hidden = self.hidden_contrasts(layers, base, difference, span, input_grad)
        return grad_x, hidden + grads

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, symmetric={self.symmetric}"
