"""Layered energy networks settled by exact block-coordinate descent: the kernels, the settling
and the two-phase contrast that equilibrium propagation (``eqprop``) and contrastive Hebbian
learning (``chl``) share. One settling code path; the learners differ in what perturbs the
network and in which phases they compare.

The input ``x = s_0`` is clamped; the layers ``s_1 .. s_N`` have bounded units (hard tanh or
hard sigmoid; inside the box the firing rate is the state) and symmetric connections:

    E(s) = sum_{l=1..N} c_l ( ||s_l||^2 / 2 - s_l^T W_l s_{l-1} - b_l^T s_l ),   c_l = gamma^(l-1)

The layer weights ``c_l`` set the feedback gain ``gamma`` (Xie & Seung 2003, Neural Comput.
15(2):441): layer ``l + 1`` acts on layer ``l`` through ``gamma W_{l+1}^T``. eqprop's layers are
its hidden layers (its output is a linear readout outside the energy); chl's are its hidden
layers and its output units, which are linear (unbounded) and take part in the free phase.

Settling: from the feedforward pass, sweeps of odd layers then even ones; a layer's neighbours
are held fixed, so its minimiser is the clamp of its input, and E never increases:

    s_l <- (1 - dt) s_l + dt clamp(D_l, low, high)
    D_l  = W_l s_{l-1} + gamma s_{l+1} W_{l+1} + b_l

(an output unit takes ``D_l`` unclamped). A sweep moves a change by about two layers, so by
default a phase runs one sweep per settling layer, at least 4.

Perturbed phases: a force ``F`` on the top hidden layer, through the output's synapses ``W_L``
(eqprop's nudge ``-beta e``; chl's clamped output ``gamma y*``), moves it and then every layer
below by about ``gamma^(H-l)`` times as much, far below float32's resolution of O(1) states on
deep networks. So a phase ``a`` is kept as its difference ``w = s^a - s^b`` from a phase ``b``
(phase b settles under its own top force, or is the free state and stays there). The drive is
linear in the states, so ``w``'s drive is ``dD_l = W_l w_{l-1} + gamma w_{l+1} W_{l+1}`` (``+ dF
W_L`` at the top; the clamped input does not move, ``w_0 = 0``), and the clamp passes it through
exactly wherever neither phase is clipped:

    w_l <- (1 - dt) w_l + dt [clamp(D^b_l + dD_l) - clamp(D^b_l)]                 phase b settles
    w_l <- (1 - dt) w_l + dt [clamp(D^b_l + dD_l) - clamp(D^b_l) + clamp(D^b_l) - s^b_l]   free

(:func:`clamp_difference`; in the second form the free phase's own drift, zero at its fixed
point, is phase a's). Each synapse then compares the co-activity of its two units between the
phases (:func:`relative_contrastive_grads`), scaled by its layer's ``gamma^(l-H)``.
``docs/notes/eqprop_defaults.md`` has the float32 measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from biocredit.errors import unknown_name
from biocredit.learners.base import TargetDrivenLearner
from biocredit.learners.options import check_count, check_number

UNITS: dict[str, tuple[float, float]] = {"hard_sigmoid": (0.0, 1.0), "hard_tanh": (-1.0, 1.0)}


def unit_drive(
    below: Tensor, w_in: Tensor, bias: Tensor, above: Tensor | None, w_above: Tensor | None
) -> Tensor:
    """Total input to a layer's units: ``W_l s_{l-1} + b_l`` from below, plus ``s_{l+1} W_{l+1}``
    from above through the same synapses (``above`` is a force at the top in a perturbed phase,
    ``None`` when nothing is above)."""
    drive = torch.addmm(bias, below, w_in.t())
    return drive if above is None else drive.addmm_(above, w_above)


def drive_change(below: Tensor | None, w_in: Tensor, above: Tensor, w_above: Tensor) -> Tensor:
    """How a layer's input changes when its neighbours move by ``below`` and ``above``:
    ``W_l dS_{l-1} + dS_{l+1} W_{l+1}`` (the drive is linear in the states; no bias).
    ``below`` is ``None`` for the first layer, whose input is clamped."""
    change = above.mm(w_above)
    return change if below is None else change.addmm_(below, w_in.t())


def settle_layer(state: Tensor, drive: Tensor, dt: float, low: float, high: float) -> Tensor:
    """One block step on ``E``: ``s <- (1 - dt) s + dt clamp(drive, low, high)``; ``dt = 1``
    jumps to the layer's exact minimiser given its neighbours."""
    target = drive.clamp_(low, high)
    return target if dt == 1.0 else torch.lerp(state, target, dt)


def clamp_difference(drive: Tensor, change: Tensor, low: float, high: float) -> Tensor:
    """``clamp(drive + change) - clamp(drive)``: how far a bounded unit's minimiser moves when
    its drive moves by ``change``. Exactly ``change`` wherever neither drive is clipped, so a
    change far below the rounding of ``drive`` survives; in full only at the box's edges."""
    moved = drive + change
    inside = (drive >= low) & (drive <= high) & (moved >= low) & (moved <= high)
    edge = moved.clamp_(low, high).sub_(drive.clamp(low, high))
    return torch.where(inside, change, edge)


def relative_contrastive_grads(
    post: Tensor, pre: Tensor, post_a: Tensor, pre_a: Tensor, span: float
) -> tuple[Tensor, Tensor]:
    """Gradient-sign contrastive Hebbian update of one weight layer from the co-activity of its
    units in two phases: phase b's activities ``post``, ``pre`` and phase a's given relative to
    them (``post_a = s^a_l - s^b_l``, ``pre_a = s^a_{l-1} - s^b_{l-1}``):

        dW = -((post + post_a)^T (pre + pre_a) - post^T pre) / span
           = -(post_a^T (pre + pre_a) + post^T pre_a) / span,   db = -sum_batch post_a / span

    The second form subtracts no two O(1) products, so a contrast far below float32's
    resolution of the activities survives."""
    grad_w = post_a.t().mm(pre + pre_a).addmm_(post.t(), pre_a).div_(-span)
    return grad_w, post_a.sum(0).div_(-span)


def contrastive_grads(
    post_a: Tensor, pre_a: Tensor, post_b: Tensor, pre_b: Tensor, span: float
) -> tuple[Tensor, Tensor]:
    """:func:`relative_contrastive_grads` from both phases' activities (the papers' form):
    ``dW = -(post_a^T pre_a - post_b^T pre_b) / span``, ``db = -sum_batch (post_a - post_b) /
    span``."""
    return relative_contrastive_grads(post_b, pre_b, post_a - post_b, pre_a - pre_b, span)


def energy(
    states: Sequence[Tensor],
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    feedback_gain: float = 1.0,
) -> Tensor:
    """Per-sample ``E(s) = sum_l gamma^(l-1) (||s_l||^2/2 - s_l.(W_l s_{l-1}) - b_l.s_l)`` over
    the layers ``states[1:]``; ``states[0]`` is the clamped input (a diagnostic, not used to
    learn)."""
    total = torch.zeros(states[0].shape[0], dtype=states[0].dtype)
    layer_terms = zip(states[:-1], states[1:], weights, biases, strict=True)
    for l, (below, state, weight, bias) in enumerate(layer_terms):
        term = 0.5 * state.square().sum(1) - (state * (below.mm(weight.t()) + bias)).sum(1)
        total += feedback_gain**l * term
    return total


class LayeredEnergyLearner(TargetDrivenLearner):
    """A target-driven learner whose network is a layered energy network (module docstring):
    the options, the free phase, the perturbed phases and the per-layer contrast shared by
    eqprop and chl.

    :param free_steps: sweeps of the free phase; ``None`` is one per settling layer, at least 4
    :param phase_steps: sweeps of each perturbed phase, from the free state; ``None`` is one per
        hidden layer, at least 4
    :param nudge: ``beta``, how far the output target ``y* = y - beta e`` lies from the output
    :param relative_nudge: measure ``nudge`` in units of ``rms(e)``
    :param dt: step toward each layer's minimiser, in (0, 1]
    :param units: ``"hard_tanh"`` [-1, 1] or ``"hard_sigmoid"`` [0, 1]
    :param coupling_gain: factor on the initial hidden-to-hidden weights (:meth:`init_weights`)
    :param feedback_gain: ``gamma`` in (0, 1]
    :param seed: unused (no random state); accepted like every learner's
    """

    #: the output units take part in the free phase (chl) or read it out (eqprop)
    output_in_loop: ClassVar[bool]
    #: the option name of ``phase_steps`` (``nudge_steps``, ``clamped_steps``), for messages
    phase_steps_key: ClassVar[str]
    default_feedback_gain: ClassVar[float]

    def __init__(
        self,
        free_steps: int | None,
        phase_steps: int | None,
        nudge: float,
        relative_nudge: bool,
        dt: float,
        units: str,
        coupling_gain: float,
        feedback_gain: float,
        seed: int | None,
    ) -> None:
        super().__init__(nudge, relative_nudge, seed)
        name = self.name
        why = "sweeps over the layers; null: one per layer, at least 4"
        for key, value in (("free_steps", free_steps), (self.phase_steps_key, phase_steps)):
            check_count(name, key, value, optional=True, why=why, hint=8)
        self.dt = check_number(name, "dt", dt, 0, 1, closed="high", hint=1.0)
        self.coupling_gain = check_number(name, "coupling_gain", coupling_gain, hint=1.0)
        self.feedback_gain = check_number(
            name,
            "feedback_gain",
            feedback_gain,
            0,
            1,
            closed="high",
            hint=self.default_feedback_gain,
        )
        if units not in UNITS:
            raise unknown_name(f"{name} units", units, UNITS)
        self.free_steps, self.phase_steps = free_steps, phase_steps
        self.units = units
        self.low, self.high = UNITS[units]

    def init_weights(self, layers: Sequence[nn.Linear]) -> None:
        """Scale the hidden-to-hidden weights by ``coupling_gain``.

        Layer ``l`` feeds back into layer ``l - 1`` through ``gamma W_l^T``, so in the linear
        regime the loop ``s_{l-1} -> s_l -> s_{l-1}`` has gain ``gamma ||W_l||^2``: ``2 gamma``
        under SB3's orthogonal init (gain sqrt 2). A coupling gain ``g`` makes it ``2 gamma
        g^2``; the default 1 leaves the initialisation alone (``feedback_gain`` keeps the loop
        contracting instead, at every weight scale).
        """
        for layer in layers[1:-1]:
            layer.weight.mul_(self.coupling_gain)

    @staticmethod
    def sweeps(steps: int | None, n_layers: int) -> int:
        """``steps``, or by default one sweep per settling layer and at least 4."""
        return max(4, n_layers) if steps is None else steps

    def settle(self, layers: Sequence[nn.Linear], states: list[Tensor], steps: int) -> list[Tensor]:
        """``steps`` sweeps of block-coordinate descent from ``states`` (not modified):
        ``[x, s_1 .. s_H]``, or ``[x, s_1 .. s_H, y]`` with the output units in the loop."""
        states = list(states)
        n = len(states) - 1
        output = n == len(layers)  # the last state is the (linear) output units'
        for _ in range(steps):
            for first in (1, 2):  # odd layers, then even: each block's neighbours are fixed
                for l in range(first, n + 1, 2):
                    top = l == n
                    above = None if top else states[l + 1] * self.feedback_gain
                    weight, bias = layers[l - 1].weight, layers[l - 1].bias
                    w_above = None if top and output else layers[l].weight
                    drive = unit_drive(states[l - 1], weight, bias, above, w_above)
                    if not (top and output):
                        states[l] = settle_layer(states[l], drive, self.dt, self.low, self.high)
                    elif self.dt == 1.0:  # linear output units: the drive is the minimiser
                        states[l] = drive
                    else:
                        states[l] = torch.lerp(states[l], drive, self.dt)
        return states

    def free_phase(self, layers: Sequence[nn.Linear], x: Tensor) -> list[Tensor]:
        """``[x, s_1 .. s_H]`` (``[x, s_1 .. s_H, y]`` with the output in the loop) at the free
        fixed point, started from the feedforward pass."""
        states = [x]
        for layer in layers[:-1]:
            drive = unit_drive(states[-1], layer.weight, layer.bias, None, None)
            states.append(drive.clamp_(self.low, self.high))
        if self.output_in_loop:
            out = layers[-1]
            states.append(unit_drive(states[-1], out.weight, out.bias, None, None))
        if len(states) > 2:  # one settling layer: the feedforward pass is the fixed point
            states = self.settle(layers, states, self.sweeps(self.free_steps, len(states) - 1))
        return states

    def perturbed_phases(
        self,
        layers: Sequence[nn.Linear],
        free: list[Tensor],
        top_base: Tensor | None,
        top_shift: Tensor,
        settle_base: bool,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Phase b's states ``[x, s^b_1 .. s^b_H]`` and phase a's relative to them, ``[0, w_1 ..
        w_H]`` with ``w = s^a - s^b``, after ``phase_steps`` sweeps from the free hidden states
        ``free``. The top hidden layer feels ``top_base`` (``None``: nothing) through the
        output's synapses ``W_L`` in phase b and ``top_base + top_shift`` in phase a. With
        ``settle_base`` phase b settles under its force; without, it is the free state and stays
        there (its drift is phase a's)."""
        n_hidden, gain, dt = len(free) - 1, self.feedback_gain, self.dt
        base, shift = list(free), [torch.zeros_like(s) for s in free]
        drives: dict[int, Tensor] = {}  # phase b's, fixed when it does not settle
        for sweep in range(self.sweeps(self.phase_steps, n_hidden)):
            for first in (1, 2):  # odd layers, then even: each block's neighbours are fixed
                for l in range(first, n_hidden + 1, 2):
                    weight, w_above = layers[l - 1].weight, layers[l].weight
                    top = l == n_hidden
                    if settle_base or sweep == 0:
                        above = top_base if top else base[l + 1] * gain
                        drives[l] = unit_drive(
                            base[l - 1], weight, layers[l - 1].bias, above, w_above
                        )
                    below = shift[l - 1] if l > 1 else None
                    change = drive_change(
                        below, weight, top_shift if top else shift[l + 1] * gain, w_above
                    )
                    step = clamp_difference(drives[l], change, self.low, self.high)
                    target = drives[l].clamp(self.low, self.high)
                    if settle_base:
                        base[l] = target if dt == 1.0 else torch.lerp(base[l], target, dt)
                    else:  # phase b stays at the free state: its own drift is phase a's
                        step += target - base[l]
                    shift[l] = step if dt == 1.0 else torch.lerp(shift[l], step, dt)
        return base, shift

    def hidden_contrasts(
        self,
        layers: Sequence[nn.Linear],
        base: list[Tensor],
        shift: list[Tensor],
        top_span: float,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        """Every hidden layer's contrastive update ``[dW_1, db_1, .. dW_H, db_H]``, layer ``l``'s
        divided by ``span_l = top_span gamma^(H-l)`` (its contrast is that much weaker), and the
        input's error ``-w_1 W_1 / span_1`` (``dE/dx = -c_1 s_1 W_1``, compared between the phases
        like any synapse) when ``input_grad``."""
        n_hidden, grads = len(base) - 1, []
        for l in range(n_hidden, 0, -1):
            layer_span = top_span * self.feedback_gain ** (n_hidden - l)
            grads[:0] = relative_contrastive_grads(
                base[l], base[l - 1], shift[l], shift[l - 1], layer_span
            )
        grad_x = None
        if input_grad:
            input_span = top_span * self.feedback_gain ** (n_hidden - 1)
            grad_x = shift[1].mm(layers[0].weight).div_(-input_span)
        return grad_x, grads

    def extra_repr(self) -> str:
        return (
            f"free_steps={self.free_steps}, {self.phase_steps_key}={self.phase_steps}, "
            f"nudge={self.nudge}, dt={self.dt}, units={self.units!r}, "
            f"coupling_gain={self.coupling_gain}, feedback_gain={self.feedback_gain}"
        )
