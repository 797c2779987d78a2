"""Predictive coding (Rao & Ballard 1999, Nat. Neurosci. 2:79; Whittington & Bogacz 2017, Neural
Comput. 29:1229) and its neural-generative-coding form with learned error synapses (Ororbia &
Kifer 2022, Nat. Commun. 13:2064).

Every layer ``l = 1..L`` has value nodes ``x_l`` and error nodes ``eps_l``; each layer predicts
the one above from its own activity:

    mu_l  = W_l f(x_{l-1}) + b_l          (f(x_0) = x_0, the clamped input)
    eps_l = x_l - mu_l
    F     = sum_l ||eps_l||^2 / 2

The value nodes start where the forward pass put them (amortised initialisation: ``x_l = a_l``,
so every hidden ``eps_l = 0``). The loss reaches the network only as ``e = dL/dy`` through the
autograd boundary; it nudges the output to ``x_L = y - beta e`` and the hidden value nodes
descend F:

    x_l <- x_l + eta P_l^-1 (-eps_l + f'(x_l) * (B_{l+1} eps_{l+1}))

``P_l`` bounds each unit's row of F's Hessian (:func:`unit_stiffness`, Gershgorin), so the step
is stable at ``eta = 1`` however large the weights grow.

With ``output="nudged"`` the output node stays free under the force ``-beta e`` (the total energy
is ``F + beta e . x_L``): ``x_L <- x_L + eta (-eps_L - beta e)``, so at rest ``eps_L = -beta e``
and the settled updates tend to backprop's as ``beta -> 0`` (Whittington & Bogacz 2017; Scellier
& Bengio 2017). With ``output="clamped"`` the output is held at ``y - beta e``, the NGC set-up
in which the hidden layers absorb part of the output error; with ``relative_nudge=False`` and
``nudge=1`` a squared error ``||y - t||^2 / 2`` then clamps the output to the target ``t``.

``B_{l+1}`` carries the error message down: ``W_{l+1}^T`` with ``feedback="symmetric"`` (exact
descent on F), a fixed random matrix with ``"random"``, or separate error synapses ``E_{l+1}``
with ``"learned"`` or ``"mirror"``. ``"learned"`` error synapses are parameters of the learner:
their gradient is the same local product as the forward weights' plus a decay (NGC; ``E``
comes to mirror ``W`` as in Kolen-Pollack learning, Akrout et al. 2019, only when ``W`` gets the
same decay under the same optimizer: under Adam without decay the alignment measured 0.20-0.49):

    E.grad = -eps_l^T f(x_{l-1}) / beta + feedback_decay E_l

That rule makes ``E`` track ``W^T`` only as far as the two receive matching updates (an earlier
version with its own SGD rate drifted apart under Adam: the active-inference Q network collapsed
after 32k steps on CartPole-v1). ``"mirror"`` (the weight mirror of Akrout et al. 2019, NeurIPS,
"Deep learning without weight transport") needs no such match: at every update each layer's input
neurons fire white noise ``xi`` (``k`` samples, one per row of the batch), the forward synapses
carry it to ``r = W_l xi``, and the error synapses take the product of their own two ends:

    E_l <- (1 - mirror_rate) E_l + mirror_rate r xi^T / k     (E[r xi^T] = W_l, so E_l -> W_l)

whatever the optimizer does to ``W_l``; the messages are read from ``E`` only.

After ``steps`` inference steps every synapse changes by its own pre- and post-synaptic terms:

    dW_l = eps_l f(x_{l-1})^T / beta,  db_l = eps_l     so  W.grad = -dW_l

Dividing by ``beta`` gives the size of a gradient. ``beta = nudge / rms(e)`` by default
(``relative_nudge``): the output moves by about ``nudge`` whatever the loss's scale, which keeps
the errors well above float32 rounding.

``formulation="fixed_prediction"`` (Millidge, Tschantz & Buckley 2022, Neural Comput. 34:1329;
Song et al. 2020, NeurIPS) holds each prediction ``mu_l``, ``f(x_{l-1})`` and ``f'`` at their
forward values and the output error at its rest point ``-beta e``; the hidden errors obey

    eps_l <- eps_l + eta (-eps_l + f'(a_l) * (B_{l+1} eps_{l+1}))

With ``eta = 1`` they settle exactly in one step per hidden layer, to ``-beta`` times the
backprop deltas, so symmetric feedback gives backprop's gradients exactly, at any ``beta``.
``"iterative"`` is the full dynamics: predictions move with the value nodes.

The input's error, for a module upstream, is the message that would reach ``x_0``:
``-(B_1 eps_1) / beta``.

Defaults were chosen by measurement (PPO on CartPole-v1; table in
``experiments/results/pc_ppo/table.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from biocredit.errors import unknown_name
from biocredit.learners.base import ForwardCache, TargetDrivenLearner
from biocredit.learners.feedback import check_feedback_options, random_feedback
from biocredit.learners.options import check_count, check_number
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec

FEEDBACK_MODES = ("symmetric", "learned", "mirror", "random")
FORMULATIONS = ("fixed_prediction", "iterative")
OUTPUTS = ("nudged", "clamped")
ITERATIVE_STEPS = 10


def prediction_error(value: Tensor, prediction: Tensor) -> Tensor:
    """Error node of one layer: ``eps_l = x_l - mu_l``."""
    return value - prediction


def error_message(error_above: Tensor, feedback: Tensor) -> Tensor:
    """What the error nodes above tell layer ``l``: ``B_{l+1} eps_{l+1}`` (row vectors:
    ``eps_{l+1} @ B``, ``B`` shaped like the forward weights above, ``(n_{l+1}, n_l)``)."""
    return error_above.mm(feedback)


@dataclass(frozen=True)
class Coupling:
    """Row sums of ``|d^2F / dx_l dx|`` for the units of hidden layer ``l``, before the slopes
    ``f'`` that scale them. F's Hessian reads the forward weights (``W``); inference reads the
    error synapses ``B`` in their place (shaped like ``W``: ``W`` itself with symmetric
    feedback, its mirror with mirror feedback), so no forward weight is transported:

    - ``through``: ``|B_{l+1}|^T |B_{l+1}| 1``, its own layer through the errors above
      (``D_l B^T W D_l``, the unit's own curvature ``f'_i^2 ||B_{:,i}||^2`` included);
    - ``above``: ``|B_{l+1}|^T 1``, the value nodes above (``-D_l B^T``), when they are free;
    - ``below``: ``|B_l| 1``, the hidden value nodes below (``-W_l D_{l-1}``).
    """

    through: Tensor
    above: Tensor | None
    below: Tensor | None


def layer_couplings(feedback: Sequence[Tensor], free_output: bool) -> list[Coupling]:
    """One :class:`Coupling` per hidden layer from every layer's error synapses (shaped like
    the forward weights, ``(n_l, n_{l-1})``)."""
    n_hidden = len(feedback) - 1
    return [
        Coupling(
            through=feedback[l + 1].abs().t().mv(feedback[l + 1].abs().sum(1)),
            above=feedback[l + 1].abs().sum(0) if l + 1 < n_hidden or free_output else None,
            below=feedback[l].abs().sum(1) if l > 0 else None,
        )
        for l in range(n_hidden)
    ]


def unit_stiffness(
    slope: Tensor,
    peak: Tensor,
    coupling: Coupling,
    peak_below: Tensor | None,
    step_size: float,
) -> Tensor:
    """Each hidden unit's inverse inference rate ``P_i / eta``: ``P_i`` bounds the row sum of
    ``|H|``, the Hessian of F in the hidden value nodes (Gershgorin's circle theorem), so every
    eigenvalue of ``P^-1 H`` lies in (0, 1] and the preconditioned Jacobi step is stable for
    any ``eta < 2`` however large the weights grow (a unit's own curvature alone is not: on a
    [4, 64, 64, 1] network with a 30x output layer it flipped the update's sign):

        P_i = 1 + |f'_i| (m_l through_i + above_i) + m_{l-1} below_i

    ``slope`` is ``|f'(x_l)|``, ``peak`` its maximum per sample ``m_l`` (bounding the slopes of
    the other units), ``peak_below`` the same for the hidden layer below (``None``: it does not
    move)."""
    if coupling.above is None:
        stiffness = peak * coupling.through
    else:
        stiffness = torch.addcmul(coupling.above, peak, coupling.through)
    stiffness.mul_(slope).add_(1.0)
    if coupling.below is not None and peak_below is not None:
        stiffness.addcmul_(peak_below, coupling.below)
    return stiffness if step_size == 1.0 else stiffness.div_(step_size)


def output_stiffness(feedback: Tensor, peak_below: Tensor | None, step_size: float) -> Tensor:
    """A free output node's inverse inference rate, ``(1 + m_{L-1} |B_L| 1) / eta``: the row
    sum of its Hessian (its own error and its coupling to the hidden layer below, if any)."""
    if peak_below is None:
        return feedback.new_tensor(1.0 / step_size)
    return peak_below.mul(feedback.abs().sum(1)).add_(1.0).div_(step_size)


def value_step(
    value: Tensor, error: Tensor, message: Tensor, fprime: Tensor, stiffness: Tensor | float
) -> Tensor:
    """One inference step of a hidden value node down ``dF/dx_l = eps_l - f'(x_l) * message``,
    divided by the unit's stiffness (``1 / eta`` for a plain step of size ``eta``):
    ``x_l - (eps_l - f'(x_l) * message) / stiffness``."""
    drift = torch.addcmul(error, fprime, message, value=-1.0)  # dF/dx_l
    if isinstance(stiffness, Tensor):
        return torch.addcdiv(value, drift, stiffness, value=-1.0)
    return value.sub(drift, alpha=1.0 / stiffness)


def output_step(value: Tensor, error: Tensor, force: Tensor, stiffness: Tensor | float) -> Tensor:
    """One inference step of the free output node, pulled by the loss's nudge ``-beta e``:
    ``x_L + (-eps_L - beta e) / stiffness``, whose rest point is ``eps_L = -beta e``."""
    return torch.addcdiv(value, force - error, torch.as_tensor(stiffness, dtype=value.dtype))


def pc_weight_grads(error: Tensor, pre: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient-sign Hebbian update of one layer from its own error and input:
    ``W.grad = -eps_l^T f(x_{l-1}) / beta``, ``b.grad = -sum_batch eps_l / beta``."""
    scaled = error / -beta
    return scaled.t().mm(pre), scaled.sum(0)


def feedback_grad(
    feedback: Tensor, error: Tensor, pre: Tensor, beta: Tensor, decay: float
) -> Tensor:
    """Gradient-sign local rule of the error synapses ``E_l`` (shaped like ``W_l``), which join
    the error nodes ``eps_l`` to the units ``f(x_{l-1})``:
    ``E.grad = -eps_l^T f(x_{l-1}) / beta + decay E_l``."""
    return (error / -beta).t().mm(pre).add_(feedback, alpha=decay)


def mirror_step(feedback: Tensor, noise: Tensor, response: Tensor, rate: float) -> None:
    """In place, the weight mirror: ``E_l <- (1 - rate) E_l + rate r^T xi / k`` from the input
    neurons' noise ``xi`` ``(k, n_in)`` and the forward synapses' response ``r`` ``(k, n_out)``."""
    feedback.lerp_(response.t().mm(noise) / noise.shape[0], rate)


@dataclass
class Settled:
    """The end of inference: each layer's error ``eps_l`` and pre-synaptic activity
    ``f(x_{l-1})``, the nudge ``beta`` and, when asked for, ``F`` after every step and the
    residual: how fast the hidden value nodes still move at the end, relative to their first
    step, ``||dF/dx||_end / ||dF/dx||_start`` (0: settled; fixed predictions: not measured)."""

    errors: list[Tensor]
    pre: list[Tensor]
    beta: Tensor
    energies: list[float] | None
    residual: float | None = None


@register
class PredictiveCoding(TargetDrivenLearner):
    """Predictive coding: settle value nodes on the energy F, then local Hebbian updates.

    At its defaults this is predictive coding without backprop: iterative inference on the value
    nodes, error messages through error synapses that mirror the forward weights (no weight
    transport). ``formulation="fixed_prediction", feedback="symmetric"`` computes backprop's
    gradients exactly; :attr:`equals_backprop` and the plausibility flags say so.

    :param formulation: ``"iterative"`` (full dynamics) or ``"fixed_prediction"`` (predictions
        held at their forward values; settles exactly in one step per hidden layer)
    :param output: ``"clamped"`` (held at ``y - beta e``: hidden layers settle in about half
        the steps) or ``"nudged"`` (free output under the force ``-beta e``: settles to
        backprop's deltas as ``beta -> 0``); only the iterative formulation tells them apart
    :param feedback: ``"mirror"`` (error synapses that mirror ``W`` from its response to
        noise), ``"learned"`` (error synapses with a local rule), ``"random"`` (fixed) or
        ``"symmetric"`` (``W^T`` itself: weight transport) carries the error messages down
    :param steps: inference steps; ``None``: one per hidden layer with fixed predictions (exact
        convergence), ``ITERATIVE_STEPS`` with the iterative dynamics
    :param step_size: inference rate ``eta``; ``None``: 1 (each unit's step is further divided
        by the row-sum bound of its curvature, :func:`unit_stiffness`, under which any
        ``eta <= 1`` descends monotonically; the earlier rule, each unit's own curvature at
        ``eta = 0.1``, flipped the update's sign once a critic's output layer had grown 30x)
    :param nudge: how far the output is pushed against the loss
    :param relative_nudge: measure ``nudge`` in units of ``rms(e)`` (``beta = nudge / rms(e)``)
        instead of using ``beta = nudge``
    :param feedback_decay: L2 decay of the learned error synapses (in their gradient; the
        optimizer that trains the network trains them too)
    :param mirror_rate: how far the mirror error synapses move towards ``r xi^T / k`` per update
    :param mirror_init_samples: with ``"mirror"``, a mirror phase before learning (Akrout et al.'s
        mirror mode, once): the error synapses start at ``r xi^T / k`` from this many noise
        samples instead of at random; 0 keeps the random start
    :param init: ``"uniform"`` or ``"gaussian"`` initial learned/random feedback entries
    :param scale: their spread, relative to default ``nn.Linear`` weights
    :param seed: seed for the feedback matrices; by default drawn from torch's global RNG
    """

    name = "pc"
    family = "predictive coding / neural generative coding"
    paper = "Whittington & Bogacz 2017, Neural Comput. 29:1229; Ororbia & Kifer 2022"
    update_kernels = (pc_weight_grads,)
    conv_refusal = (
        "its inference is written for dense layers (each hidden unit's step is bounded by the "
        "row sums of dense error synapses, and mirror feedback reads dense weights' response "
        "to noise); a conv form of its value nodes, predictions and stiffness bound is not "
        "implemented"
    )
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "learned": {"feedback": "learned"},
        "random": {"feedback": "random"},
        "symmetric": {"feedback": "symmetric"},
        "fixed-bp": {"formulation": "fixed_prediction", "feedback": "symmetric"},
    }

    def __init__(
        self,
        formulation: str = "iterative",
        output: str = "clamped",
        feedback: str = "mirror",
        steps: int | None = None,
        step_size: float | None = None,
        nudge: float = 0.1,
        relative_nudge: bool = True,
        feedback_decay: float = 1e-3,
        mirror_rate: float = 0.01,
        mirror_init_samples: int = 0,
        init: str = "uniform",
        scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(nudge, relative_nudge, seed)
        if formulation not in FORMULATIONS:
            raise unknown_name("pc formulation", formulation, FORMULATIONS)
        if output not in OUTPUTS:
            raise unknown_name("pc output", output, OUTPUTS)
        if feedback not in FEEDBACK_MODES:
            raise unknown_name("pc feedback", feedback, FEEDBACK_MODES)
        name = self.name
        check_feedback_options(name, init, scale)
        self.steps = check_count(name, "steps", steps, 0, optional=True)
        step_size = 1.0 if step_size is None else step_size
        self.step_size = check_number(name, "step_size", step_size, 0, 1, closed="high", hint=0.5)
        self.feedback_decay = check_number(name, "feedback_decay", feedback_decay, closed="low")
        self.mirror_rate = check_number(
            name, "mirror_rate", mirror_rate, 0, 1, closed="high", hint=0.01
        )
        self.mirror_init_samples = check_count(
            name, "mirror_init_samples", mirror_init_samples, 0, hint=4096
        )
        self.formulation, self.output, self.feedback_mode = formulation, output, feedback
        self.init, self.scale = init, scale

    @property
    def equals_backprop(self) -> bool:
        """Fixed predictions with symmetric feedback settle to backprop's deltas exactly."""
        return self.formulation == "fixed_prediction" and self.feedback_mode == "symmetric"

    @property
    def plausibility(self) -> Plausibility:
        # Not UL: a layer's error settles only after the error above it has. With iterative
        # inference the errors are the network's own error units settling on F (P1, P3, P6);
        # with fixed predictions they are one backward sweep of the chain rule.
        iterative = self.formulation == "iterative"
        no_transport = self.feedback_mode != "symmetric"
        return Plausibility(
            p1_global_feedback=iterative,
            p2_weight_transport=no_transport,
            p3_short_term_plasticity=iterative,
            local_plasticity=iterative or no_transport,
            p6_inference_learning=iterative,
            architecture_agnostic=True,
            control=True,
            equals_backprop=self.equals_backprop,
        )

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        if self.feedback_mode == "symmetric":
            return
        for l, (n_in, n_out) in enumerate(pairwise(spec.sizes)):  # B_l shaped like W_l
            matrix = random_feedback((n_out, n_in), n_in, self.init, self.scale, generator)
            self.register_feedback(f"feedback_{l}", matrix, self.feedback_mode == "learned")

    def init_weights(self, layers: Sequence[nn.Linear]) -> None:
        """With mirror feedback and ``mirror_init_samples > 0``, start every error synapse at the
        mirror estimate ``r xi^T / k`` of its forward weights (a mirror phase on white noise)."""
        if self.feedback_mode != "mirror" or self.mirror_init_samples == 0:
            return
        for b, layer in zip(self.own_feedback(), layers, strict=True):
            noise = torch.randn(self.mirror_init_samples, layer.in_features, dtype=b.dtype)
            mirror_step(b, noise, noise.mm(layer.weight.t()), 1.0)

    def feedback_matrices(self, layers: Sequence[nn.Linear]) -> list[Tensor]:
        """``B_l`` for every layer: the forward weights only with symmetric feedback, otherwise
        the learner's own matrices (``layers`` is then not read)."""
        if self.feedback_mode == "symmetric":
            return [layer.weight for layer in layers]
        return self.own_feedback()

    def n_steps(self) -> int:
        assert self.spec is not None
        if self.steps is not None:
            return self.steps
        return len(self.spec.hidden) if self.formulation == "fixed_prediction" else ITERATIVE_STEPS

    def settle(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        shift: Tensor,
        beta: Tensor,
        record_energy: bool = False,
    ) -> Settled:
        """Nudge the output to the target ``y* = y + shift`` (``shift = -beta e``), run
        inference, return the settled errors."""
        output_error = shift  # eps_L = y* - y
        feedback = self.feedback_matrices(layers)
        if self.formulation == "fixed_prediction":
            return self._settle_fixed(cache, output_error, feedback, beta, record_energy)
        return self._settle_iterative(layers, cache, output_error, feedback, beta, record_energy)

    def _settle_fixed(
        self,
        cache: ForwardCache,
        output_error: Tensor,
        feedback: list[Tensor],
        beta: Tensor,
        record_energy: bool,
    ) -> Settled:
        assert self.activation is not None
        derivative = self.activation.derivative
        fprimes = [
            derivative(a, h) for a, h in zip(cache.pre_activations, cache.inputs[1:], strict=True)
        ]
        errors = [torch.zeros_like(a) for a in cache.pre_activations] + [output_error]
        energies = [energy(errors)] if record_energy else None
        for step in range(self.n_steps()):
            reached = max(0, len(fprimes) - 1 - step)  # below: still exactly 0, skipped
            errors = [
                *errors[:reached],
                *(
                    value_step(eps, eps, error_message(above, b), fprime, 1.0 / self.step_size)
                    for eps, above, b, fprime in zip(
                        errors[reached:],
                        errors[reached + 1 :],
                        feedback[reached + 1 :],
                        fprimes[reached:],
                        strict=False,
                    )
                ),
                output_error,
            ]
            if energies is not None:
                energies.append(energy(errors))
        return Settled(errors, cache.inputs, beta, energies)

    def _settle_iterative(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        output_error: Tensor,
        feedback: list[Tensor],
        beta: Tensor,
        record_energy: bool,
    ) -> Settled:
        """Jacobi steps on every hidden value node at once. The start is the forward pass
        (``x_l = a_l``, ``f(x_l) = h_l``, every hidden ``eps_l = 0``, ``eps_L = -beta e``), so
        nothing is recomputed there, and a layer the output error has not reached yet (after
        ``k`` steps, the ``k`` hidden layers under the output) still has ``eps_l = 0`` and is
        skipped."""
        assert self.activation is not None
        f, derivative = self.activation.fn, self.activation.derivative
        weights_t = [layer.weight.t() for layer in layers]
        biases = [layer.bias for layer in layers]
        n_hidden = len(cache.pre_activations)
        values = [*cache.pre_activations, cache.output + output_error]  # x_L = y - beta e
        predictions = [*cache.pre_activations, cache.output]
        pre = list(cache.inputs)  # f(x_{l-1}) for every layer l
        errors = [*(torch.zeros_like(a) for a in cache.pre_activations), output_error]
        force = output_error if self.output == "nudged" else None  # -beta e; None: clamped
        couplings = layer_couplings(feedback, free_output=force is not None)
        energies: list[float] | None = [] if record_energy else None
        drift_norms: list[float] = []

        def record() -> None:
            assert energies is not None
            energies.append(energy(errors, force, values[-1] - cache.output))

        if energies is not None:
            record()
            drift_norms.append(hidden_drift_norm(values, errors, feedback, pre, derivative))
        for step in range(self.n_steps()):
            lowest = max(0, n_hidden - 1 - step)  # hidden layers below: eps_l still 0
            fprimes = [derivative(values[l], pre[l + 1]) for l in range(lowest, n_hidden)]
            slopes = [fprime.abs() for fprime in fprimes]
            peaks = [slope.amax(1, keepdim=True) for slope in slopes]
            for i, l in enumerate(range(lowest, n_hidden)):
                below = peaks[i - 1] if i > 0 else None  # None: eps below still 0, or the input
                stiffness = unit_stiffness(slopes[i], peaks[i], couplings[l], below, self.step_size)
                message = error_message(errors[l + 1], feedback[l + 1])
                values[l] = value_step(values[l], errors[l], message, fprimes[i], stiffness)
            if force is not None:
                below = peaks[-1] if peaks else None  # None: the input, which stays
                stiffness = output_stiffness(feedback[-1], below, self.step_size)
                values[-1] = output_step(values[-1], errors[-1], force, stiffness)
            for l in range(lowest, n_hidden):
                pre[l + 1] = f(values[l])
                predictions[l + 1] = torch.addmm(biases[l + 1], pre[l + 1], weights_t[l + 1])
            for l in range(lowest, n_hidden + 1):
                errors[l] = prediction_error(values[l], predictions[l])
            if energies is not None:
                record()
        if energies is not None:
            drift_norms.append(hidden_drift_norm(values, errors, feedback, pre, derivative))
        residual = drift_norms[-1] / max(drift_norms[0], 1e-30) if drift_norms else None
        return Settled(errors, pre, beta, energies, residual)

    def learn_from_target(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        shift: Tensor,
        beta: Tensor,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        settled = self.settle(layers, cache, shift, beta)
        grads = [
            g
            for eps, pre in zip(settled.errors, settled.pre, strict=True)
            for g in pc_weight_grads(eps, pre, settled.beta)
        ]
        grad_x = None
        if input_grad:
            message = error_message(settled.errors[0], self.feedback_matrices(layers)[0])
            grad_x = message / -settled.beta
        if self.feedback_mode == "learned":
            for b, eps, pre in zip(self.own_feedback(), settled.errors, settled.pre, strict=True):
                grad = feedback_grad(b.detach(), eps, pre, settled.beta, self.feedback_decay)
                b.grad = grad if b.grad is None else b.grad.add_(grad)
        elif self.feedback_mode == "mirror":
            for b, layer in zip(self.own_feedback(), layers, strict=True):
                noise = torch.randn(
                    shift.shape[0], layer.in_features, dtype=shift.dtype, device=shift.device
                )
                mirror_step(b, noise, noise.mm(layer.weight.t()), self.mirror_rate)
        return grad_x, grads

    def extra_repr(self) -> str:
        return (
            f"formulation={self.formulation!r}, output={self.output!r}, "
            f"feedback={self.feedback_mode!r}, steps={self.steps}, "
            f"step_size={self.step_size}, nudge={self.nudge}, seed={self.seed}"
        )


def hidden_drift_norm(
    values: Sequence[Tensor],
    errors: Sequence[Tensor],
    feedback: Sequence[Tensor],
    pre: Sequence[Tensor],
    derivative: Callable[[Tensor, Tensor], Tensor],
) -> float:
    """``||dF/dx||`` over the hidden value nodes, ``dF/dx_l = eps_l - f'(x_l) * (B eps_{l+1})``
    (a diagnostic of how far inference is from rest)."""
    total = sum(
        (eps - derivative(x, h) * error_message(above, b)).pow(2).sum()
        for x, eps, above, b, h in zip(
            values, errors, errors[1:], feedback[1:], pre[1:], strict=False
        )
    )
    return float(total) ** 0.5


def energy(
    errors: Sequence[Tensor], force: Tensor | None = None, displacement: Tensor | None = None
) -> float:
    """What inference descends: ``F = sum_l ||eps_l||^2 / 2`` over the batch, plus the nudge's
    potential ``beta e . (x_L - y)`` when the output is nudged rather than clamped."""
    total = sum(eps.detach().pow(2).sum() for eps in errors) / 2
    if force is not None and displacement is not None:
        total = total - (force * displacement).sum()
    return float(total)
