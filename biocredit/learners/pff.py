"""Predictive forward-forward (Ororbia & Mali 2023, arXiv 2301.01452, "The Predictive
Forward-Forward Algorithm").

Two circuits learn side by side from the observations alone. The **representation circuit**
is the network's own layers, run as a recurrent circuit: each layer's state is driven by the
layer below and by the top-down context of the layer above, for a few settling steps, and every
layer learns forward-forward's goodness objective at every step. The **generative circuit** is
a second set of synapses, top-down, that predicts each layer's settled state from the one
above; its local error units drive Hebbian-like updates of its weights, as in predictive
coding. The generative circuit does not feed the representation: it learns beside it (as in the
paper), so the features the network hands on are the representation circuit's.

Representation circuit, layers ``l = 1..L`` (``L`` the output layer, linear), ``z_0 = x``. The
start is forward-forward's feedforward pass (:mod:`biocredit.learners.ff`); then ``T = steps``
Jacobi steps, every layer at once from its neighbours' previous states:

    s_l(t)   = z_l(t) / rms(z_l(t))        what layer l sends up and down (s_0 = x, unnormalised)
    a_l(t)   = W_l s_{l-1}(t-1) + b_l + V_l s_{l+1}(t-1)     (no V term for the top layer)
    z_l(t)   = damping * z_l(t-1) + (1 - damping) * f(a_l(t))  (f = identity for the top layer)

Each layer's logistic goodness loss at every step, with everything it receives held fixed (its
inputs ``s(t-1)`` and its own previous state), as in ff, ``G = sum_j z_j^2``,
``theta_l = threshold * n_l``:

    L_l(t)   = softplus(-(G(z_l^+(t)) - theta_l)) + softplus(G(z_l^-(t)) - theta_l)
    delta_l  = dL_l(t)/da_l(t) = 2 c z_l(t) * (1 - damping) f'(a_l(t)),
               c^+ = -sigmoid(theta_l - G^+),  c^- = sigmoid(G^- - theta_l)
    dW_l = -eta sum_t (delta_l^T s_{l-1}(t-1)) / (B T),   db_l likewise
    dV_l = -eta sum_t (delta_l^T s_{l+1}(t-1)) / (B T)     (the top-down synapses, same rule)

over the positive (``+``, the observations met) and negative (``-``) settling, averaged over
the batch ``B`` and the steps (one ``.grad`` per update; the paper's code applies each step's
update at once). The network's output is the settled top layer ``z_L(T)``. Negatives are made
as ff makes them: features shuffled across the last ``bank_size`` observations.

Generative circuit, ``G_l, c_l`` for ``l = 1..L``: a top-down prediction of each layer's settled
state from the one above, its error units, and the predictive-coding weight rule (each synapse
reads its own error unit and its own input; the gradient of ``||eps||^2 / 2`` in ``G_l``):

    mu_{l-1}  = G_l s_l(T) + c_l          (the prediction of z_{l-1}(T); of the input x for l = 1)
    eps_{l-1} = z_{l-1}(T) - mu_{l-1}
    dG_l = eta eps_{l-1}^T s_l(T) / B,  dc_l = eta sum_batch eps_{l-1} / B

on the positive settling. The paper's generative circuit also has a top latent above the
representation, inferred by a few gradient steps on its prediction error (through ``G^T``), used
to sample data; here the top of the generative circuit is the representation's top layer, and
nothing is sampled. Also not here: the paper's learnable lateral competition within a layer, its
noise injection, its label context at the top (a classifier's), and its sign convention (the
paper's code pushes goodness down for positives; this keeps ff's, up).

The optional modulator ``m_b`` scales row ``b``'s goodness terms as in ff (``m_b = -1`` swaps
which phase is pushed up); the generative circuit weighs row ``b`` by ``|m_b|`` (a row the
modulator skips, ``m_b = 0``, is skipped there too; a prediction error has no phase to swap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from biocredit.learners.base import ForwardCache, linear_grads
from biocredit.learners.feedback import random_feedback
from biocredit.learners.ff import GoodnessLearner, goodness_delta, rms_normalise
from biocredit.learners.options import check_count, check_number
from biocredit.learners.pc import pc_weight_grads, prediction_error
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec


@dataclass
class SettledCache(ForwardCache):
    """A :class:`ForwardCache` of the last settling step (``inputs[l] = s_l(T-1)``,
    ``pre_activations`` the hidden ``a_l(T)``, ``output = z_L(T)``) plus the trajectory:
    ``sent[t]`` is ``[s_0, s_1(t), ..., s_L(t)]`` for ``t = 0..T``; ``potentials[t - 1]`` and
    ``states[t - 1]`` are ``[a_1(t), ..., a_L(t)]`` and ``[z_1(t), ..., z_L(t)]`` for
    ``t = 1..T``."""

    sent: list[list[Tensor]] = field(default_factory=list)
    potentials: list[list[Tensor]] = field(default_factory=list)
    states: list[list[Tensor]] = field(default_factory=list)


@register
class PredictiveForwardForward(GoodnessLearner):
    """Predictive forward-forward: a recurrent forward-forward representation circuit with
    top-down context, and beside it a top-down generative circuit learned by predictive coding's
    local rule (module docstring; the paper's top latent, lateral competition and noise are not
    here).

    :param threshold: goodness threshold per unit, ``theta_l = threshold * n_l``
    :param bank_size: how many recent observations the negatives' features are drawn from
    :param steps: settling steps ``T`` after the feedforward start (>= 1)
    :param damping: how much of its previous state a layer keeps per step, in ``[0, 1)``
    :param seed: seed of the top-down and generative synapses' initial values; by default drawn
        from torch's global RNG (negatives always come from it)
    """

    name = "pff"
    family = (
        "predictive forward-forward (recurrent goodness circuit with top-down context; "
        "generative circuit by predictive coding's local rule; no top latent, no lateral "
        "competition)"
    )
    paper = "Ororbia & Mali 2023, arXiv 2301.01452"
    update_kernels = (goodness_delta, linear_grads, pc_weight_grads)

    def __init__(
        self,
        threshold: float = 0.5,
        bank_size: int = 1024,
        steps: int = 3,
        damping: float = 0.3,
        seed: int | None = None,
    ) -> None:
        super().__init__(threshold, bank_size, seed)
        self.steps = check_count(
            self.name,
            "steps",
            steps,
            why="the settling steps in which each layer takes the context of the layer above",
            hint=3,
        )
        self.damping = check_number(
            self.name,
            "damping",
            damping,
            0,
            1,
            closed="low",
            why="the share of its previous state a layer keeps per settling step (1 would never "
            "move)",
            hint=0.3,
        )
        self._context: list[Tensor] = []
        self._generative: list[tuple[Tensor, Tensor]] = []

    @property
    def plausibility(self) -> Plausibility:
        # P1: no error at all, the top-down synapses carry activity. P3: the settling states are
        # what the synapses learn from. Not FL, not UL: a layer's states take the context of the
        # layers above, so its update waits for them to have run. Not P4: the delta needs f'(a).
        # Not P6: learning needs a negative settling that inference never runs.
        return Plausibility(
            p1_global_feedback=True,
            p2_weight_transport=True,
            p3_short_term_plasticity=True,
            local_plasticity=True,
            architecture_agnostic=True,
            control=True,
        )

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        super().build_state(spec, generator)
        sizes = spec.sizes
        for l in range(len(sizes) - 2):  # V: layer l + 2 -> layer l + 1 (weight layer l)
            shape = (sizes[l + 1], sizes[l + 2])
            matrix = random_feedback(shape, sizes[l + 2], "uniform", 1.0, generator)
            self.register_parameter(f"context_{l}", nn.Parameter(matrix))
            self._context.append(getattr(self, f"context_{l}"))
        for l in range(len(sizes) - 1):  # G: layer l + 1 -> a prediction of layer l
            shape = (sizes[l], sizes[l + 1])
            matrix = random_feedback(shape, sizes[l + 1], "uniform", 1.0, generator)
            self.register_parameter(f"generative_{l}", nn.Parameter(matrix))
            self.register_parameter(f"generative_bias_{l}", nn.Parameter(torch.zeros(sizes[l])))
            self._generative.append(
                (getattr(self, f"generative_{l}"), getattr(self, f"generative_bias_{l}"))
            )

    def forward_pass(
        self, layers: Sequence[nn.Linear], x: Tensor, record: bool
    ) -> tuple[Tensor, ForwardCache | None]:
        """ff's feedforward pass, then ``steps`` settling steps with top-down context (module
        docstring); the output is the settled top layer ``z_L(T)``."""
        assert self.activation is not None, "attach() the learner to a network first"
        f = self.activation.fn
        top = len(layers) - 1
        states, h = [], x
        for i, layer in enumerate(layers):  # the start: ff's forward pass
            a = torch.addmm(layer.bias, h, layer.weight.t())
            z = f(a) if i < top else a
            states.append(z)
            h = rms_normalise(z)
        sent = [x, *(rms_normalise(z) for z in states)]
        trajectory: list[tuple[list[Tensor], list[Tensor], list[Tensor]]] = []
        for _ in range(self.steps):
            potentials, new_states = [], []
            for i, layer in enumerate(layers):
                a = torch.addmm(layer.bias, sent[i], layer.weight.t())
                if i < top:
                    a = a.addmm_(sent[i + 2], self._context[i].t())
                h = f(a) if i < top else a
                new_states.append(torch.lerp(h, states[i], self.damping))
                potentials.append(a)
            if record:
                trajectory.append((sent, potentials, new_states))
            states = new_states
            sent = [x, *(rms_normalise(z) for z in states)]
        if not record:
            return states[-1], None
        last_sent, last_potentials, _ = trajectory[-1]
        cache = SettledCache(
            inputs=last_sent[:-1],
            pre_activations=last_potentials[:-1],
            output=states[-1],
            sent=[step[0] for step in trajectory] + [sent],
            potentials=[step[1] for step in trajectory],
            states=[step[2] for step in trajectory],
        )
        return states[-1], cache

    def representation_grads(
        self, layers: Sequence[nn.Linear], cache: SettledCache, phase: float,
        modulator: Tensor | None,
    ) -> list[tuple[Tensor, Tensor, Tensor | None]]:  # fmt: skip
        """``(sum_t delta^T s_{l-1}, sum_t delta, sum_t delta^T s_{l+1})`` of every layer over
        one phase's settling steps (gradient sign, not yet averaged); ``None``: no context."""
        assert self.activation is not None
        derivative = self.activation.derivative
        top = len(layers) - 1
        keep = 1.0 - self.damping
        totals: list[tuple[Tensor, Tensor, Tensor | None]] = []
        for i in range(len(layers)):
            grad_w = grad_b = grad_v = None
            for sent, potentials, states in zip(
                cache.sent, cache.potentials, cache.states, strict=False
            ):
                a, z = potentials[i], states[i]
                if i < top:
                    slope = derivative(a, self.activation.fn(a)).mul(keep)
                else:
                    slope = torch.full_like(z, keep)
                delta = goodness_delta(z, slope, phase, self.threshold * z.shape[1])
                if modulator is not None:
                    delta = delta * modulator.unsqueeze(1)
                w, b = linear_grads(delta, sent[i])
                grad_w = w if grad_w is None else grad_w.add_(w)
                grad_b = b if grad_b is None else grad_b.add_(b)
                if i < top:
                    v = linear_grads(delta, sent[i + 2])[0]
                    grad_v = v if grad_v is None else grad_v.add_(v)
            assert grad_w is not None and grad_b is not None
            totals.append((grad_w, grad_b, grad_v))
        return totals

    def generative_grads(
        self, cache: SettledCache, modulator: Tensor | None
    ) -> list[tuple[Tensor, Tensor]]:
        """``(G_l.grad, c_l.grad)`` of every generative layer, summed over the batch: the
        predictive-coding rule on the positive settled states (module docstring)."""
        sent = cache.sent[-1]  # s_0 = x, s_l(T)
        values = [sent[0], *cache.states[-1]]  # z_0 = x, z_l(T)
        one = values[0].new_tensor(1.0)
        grads = []
        for l, (weight, bias) in enumerate(self._generative):
            prediction = torch.addmm(bias, sent[l + 1], weight.t())
            error = prediction_error(values[l], prediction)
            if modulator is not None:
                error = error * modulator.abs().unsqueeze(1)
            grads.append(pc_weight_grads(error, sent[l + 1], one))
        return grads

    @torch.no_grad()
    def learn(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, modulator: Tensor | None = None
    ) -> None:
        if not isinstance(cache, SettledCache):
            raise TypeError("pff learns from the SettledCache of its own forward_pass(record=True)")
        positives = cache.inputs[0]
        batch = positives.shape[0]
        self.check_modulator(modulator, batch)
        self.remember(positives)
        _, negative_cache = self.forward_pass(layers, self.negatives(batch), record=True)
        assert isinstance(negative_cache, SettledCache)
        scale = 1.0 / (batch * self.steps)
        positive = self.representation_grads(layers, cache, 1.0, modulator)
        negative = self.representation_grads(layers, negative_cache, -1.0, modulator)
        for i, (layer, pos, neg) in enumerate(zip(layers, positive, negative, strict=True)):
            layer.weight.grad = pos[0].add_(neg[0]).mul_(scale)
            layer.bias.grad = pos[1].add_(neg[1]).mul_(scale)
            if pos[2] is not None and neg[2] is not None:
                self._context[i].grad = pos[2].add_(neg[2]).mul_(scale)
        for (weight, bias), (grad_g, grad_c) in zip(
            self._generative, self.generative_grads(cache, modulator), strict=True
        ):
            weight.grad = grad_g.div_(batch)
            bias.grad = grad_c.div_(batch)

    def extra_repr(self) -> str:
        return (
            f"threshold={self.threshold}, bank_size={self.bank_size}, steps={self.steps}, "
            f"damping={self.damping}, seed={self.seed}"
        )
