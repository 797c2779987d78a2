"""An energy-based recurrent memory whose weights learn by equilibrium propagation.

At step ``t`` the memory state ``m`` (``units`` hard-tanh units in [-1, 1]) settles, starting
from ``m_{t-1}``, to the minimum over the box of

    E_t(m) = ||m||^2 / 2 - m^T J m / 2 - m^T (U f_t + V m_{t-1} + b)

with the current features ``f_t`` and the previous state ``m_{t-1}`` clamped as inputs and ``J``
symmetric lateral connections. The free phase is projected gradient descent,
``m <- clamp(m - dt dE/dm, -1, 1)``, and its end point ``m_t`` is what the policy reads.

Settling. The Hessian of ``E_t`` is ``I - J``. While every eigenvalue ``mu`` of ``J`` is below
1, ``E_t`` is strongly convex: one minimum in the box, and each projected step is a
contraction by ``rho = max |1 - dt (1 - mu)|`` (the clamp does not expand distances), so
after ``n`` steps the state is within ``rho^n`` of that minimum. The defaults, ``J = 0.5 I``,
``dt = 1`` and 20 steps, give ``rho = 0.5``: the last step moves the state by at most
``0.5^19 |m_1 - m_0|``. A self-excitation of 1 or more would make each unit's energy concave,
with its only stable states at the bounds; the configuration rejects it.

Holding information. It persists through ``V`` (the previous state as an input), not through
attractors of ``J``: for a unit with ``J_ii = s``, ``V_ii = r`` and no other lateral input, the
settled state is ``m_t = clamp((r m_{t-1} + u_t) / (1 - s))`` with ``u_t`` its input from
``U f_t + b``. Across steps this map has gain ``k = r / (1 - s)`` (2 at the defaults ``r = 1``,
``s = 0.5``): a unit whose cue moved it past the map's unstable point runs to a bound and stays
there while ``|u_t| <= (k - 1)(1 - s)``, a bit held over any delay.

Learning is equilibrium propagation (Scellier & Bengio 2017) with symmetric nudging (Laborieux
et al. 2021) through an autograd boundary, as for the ``eqprop`` learner: the agent's modules send
``e = dL/dm_t`` (the actor's and critic's input errors, the world model's next-observation
error); the nudged phases settle ``F = E + beta e.m`` from ``m_t`` with ``+beta`` and ``-beta``
and every synapse compares its units' co-activity:

    dW = -(m^+ z^T - m^- z^T) / (2 beta),  z = (f_t, m_{t-1}),  W = (U V)
    dJ = -(m^+ m^+^T - m^- m^-^T) / (4 beta),  db = -(m^+ - m^-) / (2 beta)

As ``beta -> 0`` this is the gradient of ``L = e.m_t`` through the settled state, by implicit
differentiation of the fixed point: ``lambda = (I - J_FF)^-1 e_F`` over the units ``F`` inside
the bounds (0 elsewhere), ``dW = lambda z^T``, ``db = lambda``,
``dJ = (lambda m^T + m lambda^T) / 2``. ``E_t`` is quadratic, so while no unit crosses a bound
between the phases the symmetric estimate equals that gradient at any ``beta``; a unit held at
a bound gets no update, as its gradient is 0. ``beta`` is relative to the root mean
square of ``e``. ``m_{t-1}`` is a clamped input, never differentiated: the gradient is that of
the one step, with no backpropagation through time. The state is a buffer (one row per env), so
checkpoints carry it; rows are reset to zero at episode start.

Delay-line initialisation (optional, off by default): with ``copy_gain`` ``a > 0`` the first ``F``
units (``F`` the feature width) start as copies of the features, and with ``change_gain``
``g > 0`` the next ``F`` as their one-step change, read through the clamped previous state
(every other entry of their rows of ``U``, ``V``, ``J`` and ``b`` is 0):

    copy unit i (i < F):        U_(i, i) = a
    change unit F + i (i < F):  U_(F+i, i) = g,  V_(F+i, i) = -g/a

so at the fixed point ``m_i = clamp(a f_{t,i})`` and ``m_{F+i} = clamp(g f_{t,i} - (g/a)
m_{t-1,i}) = clamp(g (f_{t,i} - f_{t-1,i}))`` while ``|a f| <= 1``: a finite difference, i.e. a
velocity, from position-like features (``f_{-1} = 0`` at episode start). The settling reaches
it exactly with ``dt = 1`` and to within ``(1 - dt)^steps`` otherwise. The other units keep the
default initialisation; every weight then learns as above.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from biocredit.errors import ConfigError
from biocredit.learners.settling import contrastive_grads

LOW, HIGH = -1.0, 1.0


def memory_step(
    state: Tensor, lateral: Tensor, drive: Tensor, nudge: Tensor | None, dt: float
) -> Tensor:
    """One projected gradient step of a unit: ``m <- clamp(m + dt (J m + drive - m - nudge))``
    with ``drive = U f + V m_prev + b`` its clamped inputs and ``nudge = beta e`` (or ``None``)."""
    force = torch.addmm(drive, state, lateral).sub_(state)
    if nudge is not None:
        force.sub_(nudge)
    return state.add(force, alpha=dt).clamp_(LOW, HIGH)


def memory_energy(state: Tensor, lateral: Tensor, drive: Tensor) -> Tensor:
    """Per-sample ``E = ||m||^2/2 - m.(J m)/2 - m.drive`` (a diagnostic)."""
    return (0.5 * state.square() - 0.5 * state * state.mm(lateral) - state * drive).sum(1)


class EqPropMemory(nn.Module):
    """The memory module: ``forward(features)`` settles and commits the next state.

    :param n_features: width of the features it reads
    :param n_envs: parallel envs (rows of the state)
    :param units: memory units
    :param steps: settling steps of the free and of each nudged phase
    :param beta: nudging strength, relative to the root mean square of ``e``
    :param dt: step size of the settling, in (0, 1]
    :param self_excitation: initial diagonal ``s`` of ``J``, below 1 so that the energy is
        convex and the settling a contraction (module docstring)
    :param recurrence: initial ``V = r I``; with ``r / (1 - s) > 1`` a unit driven to a bound
        stays there from step to step: a bit held across steps
    :param optimizer: optimizer class
    :param lr: learning rate
    :param copy_gain: ``a``; above 0 the first ``n_features`` units start as the copy units of
        the delay line (module docstring); 0 (default): off
    :param change_gain: ``g``; above 0 (needs ``copy_gain > 0``) the next ``n_features`` units
        start as its change units, ``g (f_t - f_{t-1})``; 0 (default): off
    """

    def __init__(
        self,
        n_features: int,
        n_envs: int,
        units: int,
        steps: int,
        beta: float,
        dt: float,
        self_excitation: float,
        recurrence: float,
        optimizer: type[torch.optim.Optimizer],
        lr: float,
        copy_gain: float = 0.0,
        change_gain: float = 0.0,
    ) -> None:
        super().__init__()
        self.units, self.steps, self.beta, self.dt = units, steps, beta, dt
        self.residual = 0.0  # of forward's last free phase (a diagnostic, not state)
        inputs = nn.Linear(n_features + units, units)
        lateral = self_excitation * torch.eye(units)
        with torch.no_grad():
            inputs.weight[:, n_features:] = recurrence * torch.eye(units)
            if copy_gain > 0 or change_gain > 0:
                delay_line_init(inputs, lateral, n_features, copy_gain, change_gain)
        self.inputs = inputs  # W = (U V) and b
        self.lateral = nn.Parameter(lateral)  # J (used symmetrised)
        self.register_buffer("state", torch.zeros(n_envs, units))
        self.optimizer = optimizer(self.parameters(), lr=lr)

    @property
    def out_features(self) -> int:
        return self.units

    def symmetric_lateral(self) -> Tensor:
        return 0.5 * (self.lateral + self.lateral.t())

    def settle(
        self, start: Tensor, drive: Tensor, lateral: Tensor, nudge: Tensor | None = None
    ) -> tuple[Tensor, float]:
        """``steps`` projected steps from ``start``: the state reached and its residual, the
        largest change of a unit in the last step (how far from settled the phase stopped)."""
        state = start
        for _ in range(self.steps - 1):
            state = memory_step(state, lateral, drive, nudge, self.dt)
        last = memory_step(state, lateral, drive, nudge, self.dt)
        return last, float((last - state).abs().max())

    def infer(self, features: Tensor, start: Tensor | None = None) -> Tensor:
        """The state reached from ``start`` (default: the committed state), without committing."""
        start = self.state if start is None else start
        with torch.no_grad():
            z = torch.cat([features, start], dim=1)
            return self.settle(start, self.inputs(z), self.symmetric_lateral())[0]

    def forward(self, features: Tensor) -> Tensor:
        """Settle from the committed state with ``features`` clamped, commit, and return the new
        state attached to the equilibrium-propagation boundary."""
        params = (self.inputs.weight, self.inputs.bias, self.lateral)
        state = MemoryBoundary.apply(self, features, *params)
        self.state.copy_(state.detach())
        return state

    def reset(self, done: Tensor) -> None:
        """Zero the state of the envs whose episode just ended (the next one starts afresh)."""
        self.state.mul_((~done).to(self.state.dtype)[:, None])

    def extra_repr(self) -> str:
        return f"units={self.units}, steps={self.steps}, beta={self.beta}, dt={self.dt}"


def check_delay_line_gains(copy_gain: float, change_gain: float) -> None:
    """A change unit reads the previous features from the copy units of the previous state, so
    ``change_gain > 0`` needs ``copy_gain > 0``."""
    if change_gain > 0 and not copy_gain > 0:
        raise ConfigError(
            f"modules.memory.change_gain={change_gain!r} needs copy_gain > 0: a change unit reads "
            "the previous features from the copy units of the previous state. Set copy_gain too "
            "(e.g. copy_gain: 0.4), small enough that copy_gain * |f| <= 1."
        )


def delay_line_init(
    inputs: nn.Linear, lateral: Tensor, n_features: int, copy_gain: float, change_gain: float
) -> None:
    """Make the first ``n_features`` units copy units (gain ``copy_gain``) and, when
    ``change_gain > 0``, the next ``n_features`` change units, in place (module docstring)."""
    check_delay_line_gains(copy_gain, change_gain)
    units = lateral.shape[0]
    needed = n_features * (2 if change_gain > 0 else 1)
    if units < needed:
        raise ConfigError(
            f"modules.memory.units is {units}, but the delay-line initialisation needs {needed}: "
            f"{n_features} copy units{f' and {n_features} change units' if change_gain > 0 else ''}"
            f" for the {n_features} features the memory reads (the observation's size, or "
            f"perception's 'features'). Set units: {needed} or more."
        )
    eye = torch.eye(n_features)
    blocks = [(slice(0, n_features), copy_gain)]
    if change_gain > 0:
        blocks.append((slice(n_features, 2 * n_features), change_gain))
    for rows, gain in blocks:
        inputs.weight[rows] = 0.0
        inputs.bias[rows] = 0.0
        lateral[rows] = 0.0
        lateral[:, rows] = 0.0
        inputs.weight[rows, :n_features] = gain * eye  # U: the current features
    if change_gain > 0:  # V: minus the previous copy, rescaled to the features' units
        copies_prev = slice(n_features, 2 * n_features)  # columns of m_{t-1}'s copy units
        inputs.weight[n_features : 2 * n_features, copies_prev] = -change_gain / copy_gain * eye


class MemoryBoundary(torch.autograd.Function):
    """``m_t = settle(m_{t-1}, f_t)``, whose backward is the nudged phases' contrastive update."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, memory: EqPropMemory, features: Tensor, *params: Tensor
    ) -> Tensor:
        with torch.no_grad():
            z = torch.cat([features, memory.state], dim=1)
            drive, lateral = memory.inputs(z), memory.symmetric_lateral()
            free, memory.residual = memory.settle(memory.state, drive, lateral)
        ctx.memory, ctx.z, ctx.drive = memory, z, drive  # type: ignore[attr-defined]
        ctx.lateral, ctx.free = lateral, free  # type: ignore[attr-defined]
        return free.detach()  # a tensor of its own: returning ctx.free would be a reference cycle

    @staticmethod
    def backward(ctx: Any, error: Tensor) -> tuple[Tensor | None, ...]:
        memory: EqPropMemory = ctx.memory
        scale = float(error.square().mean().sqrt())
        beta = memory.beta / max(scale, 1e-12)
        nudge = error * beta
        plus = memory.settle(ctx.free, ctx.drive, ctx.lateral, nudge)[0]
        minus = memory.settle(ctx.free, ctx.drive, ctx.lateral, -nudge)[0]
        span = 2 * beta
        grad_w, grad_b = contrastive_grads(plus, ctx.z, minus, ctx.z, span)
        grad_j = contrastive_grads(plus, plus, minus, minus, 2 * span)[0]
        n_features = ctx.z.shape[1] - memory.units
        grad_features = None
        if ctx.needs_input_grad[1]:  # dE/df = -m U, compared between the phases
            grad_features = (minus - plus).mm(memory.inputs.weight[:, :n_features]).div_(span)
        return None, grad_features, grad_w, grad_b, grad_j
