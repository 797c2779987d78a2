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
(``experiments/benchmarks/eqprop_ppo.yaml``).

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
edges (:func:`clamp_difference`), and ``D^b_l`` is phase b's drive. Symmetric, phase b settles
like the free phase under the force ``+beta e W_L``; one-sided, it is the free state and stays
there, and the last two terms (the free phase's own drift, zero at its fixed point) are phase
a's. In exact arithmetic these are the same two phases as settled states.

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

from biocredit.errors import ConfigError, unknown_name
from biocredit.learners.base import ForwardCache, TargetDrivenLearner, linear_grads
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register

UNITS: dict[str, tuple[float, float]] = {"hard_sigmoid": (0.0, 1.0), "hard_tanh": (-1.0, 1.0)}


def unit_drive(
    below: Tensor, w_in: Tensor, bias: Tensor, above: Tensor | None, w_above: Tensor | None
) -> Tensor:
    """Total input to a layer's units: ``W_l s_{l-1} + b_l`` from below, plus ``s_{l+1} W_{l+1}``
    from above through the same synapses (``above`` is ``-beta e`` at the top in a nudged phase,
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
    """Gradient-sign equilibrium-propagation update of one weight layer from the co-activity of
    its units in two phases: phase b's activities ``post``, ``pre`` and phase a's given relative
    to them (``post_a = s^a_l - s^b_l``, ``pre_a = s^a_{l-1} - s^b_{l-1}``):

        dW = -((post + post_a)^T (pre + pre_a) - post^T pre) / span
           = -(post_a^T (pre + pre_a) + post^T pre_a) / span,   db = -sum_batch post_a / span

    The second form subtracts no two O(1) products, so a contrast far below float32's
    resolution of the activities survives."""
    grad_w = post_a.t().mm(pre + pre_a).addmm_(post.t(), pre_a).div_(-span)
    return grad_w, post_a.sum(0).div_(-span)


def contrastive_grads(
    post_a: Tensor, pre_a: Tensor, post_b: Tensor, pre_b: Tensor, span: float
) -> tuple[Tensor, Tensor]:
    """:func:`relative_contrastive_grads` from both phases' activities (the paper's form):
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
    the hidden layers ``states[1:]``; ``states[0]`` is the clamped input (a diagnostic, not used
    to learn)."""
    total = torch.zeros(states[0].shape[0], dtype=states[0].dtype)
    layer_terms = zip(states[:-1], states[1:], weights, biases, strict=True)
    for l, (below, state, weight, bias) in enumerate(layer_terms):
        term = 0.5 * state.square().sum(1) - (state * (below.mm(weight.t()) + bias)).sum(1)
        total += feedback_gain**l * term
    return total


@register
class EquilibriumPropagation(TargetDrivenLearner):
    """Equilibrium propagation: free and nudged settling of an energy network, contrastive
    Hebbian updates.

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
        super().__init__(nudge, relative_nudge, seed)
        for key, value in (("free_steps", free_steps), ("nudge_steps", nudge_steps)):
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"eqprop '{key}' must be an integer >= 1 or null (one sweep per hidden "
                    f"layer, at least 4), got {value!r}. Try {key}: 8, or leave it out."
                )
        if not 0 < dt <= 1:
            raise ConfigError(f"eqprop 'dt' must be in (0, 1], got {dt!r}. Try dt: 1.0.")
        if not isinstance(symmetric, bool):
            raise ConfigError(f"eqprop 'symmetric' must be true or false, got {symmetric!r}.")
        if not coupling_gain > 0:
            raise ConfigError(
                f"eqprop 'coupling_gain' must be > 0, got {coupling_gain!r}. "
                "Try coupling_gain: 1.0."
            )
        if not 0 < feedback_gain <= 1:
            raise ConfigError(
                f"eqprop 'feedback_gain' must be in (0, 1], got {feedback_gain!r}. "
                "Try feedback_gain: 0.05."
            )
        if units not in UNITS:
            raise unknown_name("eqprop units", units, UNITS)
        self.free_steps, self.nudge_steps = free_steps, nudge_steps
        self.symmetric, self.dt, self.units = symmetric, float(dt), units
        self.low, self.high = UNITS[units]
        self.coupling_gain, self.feedback_gain = float(coupling_gain), float(feedback_gain)

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
    def sweeps(steps: int | None, n_hidden: int) -> int:
        """``steps``, or by default one sweep per hidden layer and at least 4."""
        return max(4, n_hidden) if steps is None else steps

    def settle(self, layers: Sequence[nn.Linear], states: list[Tensor], steps: int) -> list[Tensor]:
        """``steps`` sweeps of block-coordinate descent from ``states`` (``[x, s_1 .. s_H]``,
        not modified)."""
        states = list(states)
        n_hidden = len(states) - 1
        for _ in range(steps):
            for first in (1, 2):  # odd layers, then even: each block's neighbours are fixed
                for l in range(first, n_hidden + 1, 2):
                    above = states[l + 1] * self.feedback_gain if l < n_hidden else None
                    weight, bias = layers[l - 1].weight, layers[l - 1].bias
                    drive = unit_drive(states[l - 1], weight, bias, above, layers[l].weight)
                    states[l] = settle_layer(states[l], drive, self.dt, self.low, self.high)
        return states

    def free_phase(self, layers: Sequence[nn.Linear], x: Tensor) -> list[Tensor]:
        """``[x, s_1 .. s_H]`` at the free fixed point, started from the feedforward pass."""
        states = [x]
        for layer in layers[:-1]:
            drive = unit_drive(states[-1], layer.weight, layer.bias, None, None)
            states.append(drive.clamp_(self.low, self.high))
        if len(states) > 2:  # one hidden layer: the feedforward pass is the fixed point
            states = self.settle(layers, states, self.sweeps(self.free_steps, len(states) - 1))
        return states

    def nudged_phases(
        self, layers: Sequence[nn.Linear], free: list[Tensor], force: Tensor
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Phase b's states ``[x, s^b_1 .. s^b_H]`` and phase a's relative to them, ``[0, w_1 ..
        w_H]`` with ``w = s^a - s^b``, after ``nudge_steps`` sweeps from the free state ``free``;
        ``force = -beta e`` nudges phase a from above the top layer (and ``+beta e`` phase b when
        symmetric; one-sided, phase b is the free state)."""
        n_hidden, gain, dt = len(free) - 1, self.feedback_gain, self.dt
        base, shift = list(free), [torch.zeros_like(s) for s in free]
        top_base, top_shift = (-force, 2 * force) if self.symmetric else (None, force)
        drives: dict[int, Tensor] = {}  # phase b's, fixed when one-sided
        for sweep in range(self.sweeps(self.nudge_steps, n_hidden)):
            for first in (1, 2):  # odd layers, then even: each block's neighbours are fixed
                for l in range(first, n_hidden + 1, 2):
                    weight, w_above = layers[l - 1].weight, layers[l].weight
                    top = l == n_hidden
                    if self.symmetric or sweep == 0:
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
                    if self.symmetric:
                        base[l] = target if dt == 1.0 else torch.lerp(base[l], target, dt)
                    else:  # phase b stays at the free state: its own drift is phase a's
                        step += target - base[l]
                    shift[l] = step if dt == 1.0 else torch.lerp(shift[l], step, dt)
        return base, shift

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
        base, shift = self.nudged_phases(layers, free, force)
        span = 2 * beta if self.symmetric else beta
        n_hidden = len(free) - 1
        for l in range(n_hidden, 0, -1):  # layer l's contrast is gamma^(H-l) times weaker
            layer_span = span * self.feedback_gain ** (n_hidden - l)
            grads[:0] = relative_contrastive_grads(
                base[l], base[l - 1], shift[l], shift[l - 1], layer_span
            )
        grad_x = None
        if input_grad:  # dE/dx = -c_1 s_1 W_1, compared between the phases like any synapse
            input_span = span * self.feedback_gain ** (n_hidden - 1)
            grad_x = shift[1].mm(layers[0].weight).div_(-input_span)
        return grad_x, grads

    def extra_repr(self) -> str:
        return (
            f"free_steps={self.free_steps}, nudge_steps={self.nudge_steps}, nudge={self.nudge}, "
            f"symmetric={self.symmetric}, dt={self.dt}, units={self.units!r}, "
            f"coupling_gain={self.coupling_gain}, feedback_gain={self.feedback_gain}"
        )
