"""Forward-forward (Hinton 2022, arXiv 2212.13345, "The Forward-Forward Algorithm: Some
Preliminary Investigations").

Two forward passes take the place of backprop's forward and backward passes: one on positive
data, one on negative data. Each layer has an objective of its own, the goodness of its
activity, which its logistic loss pushes above a threshold for positive data and below it for
negative data:

    G_l = sum_j h_lj^2,      theta_l = threshold * n_l        (a threshold per unit)
    L_l = softplus(-(G_l^+ - theta_l)) + softplus(G_l^- - theta_l)
    delta_l = dL_l / da_l = 2 c h_l * f'(a_l),   c^+ = -sigmoid(theta_l - G^+),
                                                 c^- = sigmoid(G^- - theta_l)
    dW_l = -eta (delta_l^+T x_l^+ + delta_l^-T x_l^-) / B,    db_l likewise

with ``x_l`` the layer's input. Only the layer's own weights enter its loss: its input is taken
as given, and no error, target or other layer's signal reaches it (no backward pass). A hidden
layer passes its activity up normalised to unit root mean square, ``h / rms(h)`` (Hinton's
length normalisation: the layer above cannot read the goodness off its input's length and has
to use the pattern). The output layer is linear (``h = y``, ``f' = 1``) and hands on ``y``.

Positive data are the observations the agent meets. Negative data are made from them by
shuffling features across recently met observations: the learner keeps the last ``bank_size``
network inputs (a ring buffer saved with the network), and feature ``j`` of negative ``b`` is
``bank[r_bj, j]`` with ``r_bj`` drawn uniformly from the rows filled so far (torch's global RNG,
which a run's checkpoint saves). Negatives keep each feature's distribution and lose the
relations between features that real observations have; those relations are what the layers
learn to detect. With one env, the bank holds earlier time steps, so the shuffle mixes time
steps; with many, envs as well.

The optional modulator ``m_b`` (e.g. the sign of the TD error) scales row ``b``'s positive and
negative terms: ``m_b = 0`` skips the row, ``m_b = -1`` swaps which of the two is pushed up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocredit.learners.base import ForwardCache, SignalFreeLearner, linear_grads
from biocredit.learners.options import check_count, check_number
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec


def rms_normalise(h: Tensor) -> Tensor:
    """``h / rms(h)`` per row (zero rows stay zero): what a layer passes up."""
    return h / h.square().mean(1, keepdim=True).sqrt().add_(1e-8)


def goodness_delta(post: Tensor, slope: Tensor, phase: float, threshold: float) -> Tensor:
    """``dL/da`` of one layer's logistic goodness loss ``softplus(-phase (G - threshold))``,
    ``G = sum_j post_j^2``: ``-phase sigmoid(-phase (G - threshold)) 2 post * slope``.

    ``phase`` is ``+1`` for positive data, ``-1`` for negative data; ``slope`` is ``f'(a)``.
    """
    goodness = post.square().sum(1, keepdim=True)
    coefficient = torch.sigmoid((goodness - threshold) * -phase) * (-2.0 * phase)
    return post * slope * coefficient


class GoodnessLearner(SignalFreeLearner):
    """What the goodness learners share (ff, pff): a goodness threshold per unit and the bank of
    recent observations that negatives are made from (module docstring).

    :param threshold: goodness threshold per unit, ``theta_l = threshold * n_l``
    :param bank_size: how many recent observations the negatives' features are drawn from
    :param seed: unused (negatives come from torch's global RNG); accepted like every learner's
    """

    def __init__(
        self, threshold: float = 0.5, bank_size: int = 1024, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        self.threshold = check_number(
            self.name,
            "threshold",
            threshold,
            why="the goodness per unit above which data count as positive",
            hint=0.5,
        )
        self.bank_size = check_count(
            self.name,
            "bank_size",
            bank_size,
            2,
            why="negatives mix the features of that many recent observations",
            hint=1024,
        )

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        self.register_buffer("bank", torch.zeros(self.bank_size, spec.in_features))
        self.register_buffer("bank_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank_next", torch.zeros((), dtype=torch.long))

    def remember(self, x: Tensor) -> None:
        """Add the rows of ``x`` to the ring buffer of recent observations."""
        x = x[-self.bank_size :]
        rows = (self.bank_next + torch.arange(x.shape[0])) % self.bank_size
        self.bank.index_copy_(0, rows, x)
        self.bank_next.copy_((self.bank_next + x.shape[0]) % self.bank_size)
        self.bank_filled.copy_((self.bank_filled + x.shape[0]).clamp(max=self.bank_size))

    def negatives(self, batch: int) -> Tensor:
        """``batch`` negatives: feature ``j`` of row ``b`` from a random remembered row."""
        rows = torch.randint(int(self.bank_filled), (batch, self.bank.shape[1]))
        return self.bank.gather(0, rows)


@register
class ForwardForward(GoodnessLearner):
    """Forward-forward: every layer pushes its goodness ``sum h^2`` above ``threshold * n_l`` for
    the observations met and below it for negatives made by shuffling their features.

    :param threshold: goodness threshold per unit, ``theta_l = threshold * n_l``
    :param bank_size: how many recent observations the negatives' features are drawn from
    :param seed: unused (negatives come from torch's global RNG); accepted like every learner's
    """

    name = "ff"
    family = "forward-forward (per-layer goodness, positive and negative passes)"
    paper = "Hinton 2022, arXiv 2212.13345"
    update_kernels = (goodness_delta, linear_grads)

    @property
    def plausibility(self) -> Plausibility:
        # Not P4: each layer's delta needs its units' slope f'(a). Not P6: learning needs a
        # second, negative pass that inference never runs.
        return Plausibility(
            p1_global_feedback=True,
            p2_weight_transport=True,
            local_plasticity=True,
            forward_unlocked=True,
            update_unlocked=True,
            architecture_agnostic=True,
            control=True,
        )

    def forward_pass(
        self, layers: Sequence[nn.Linear], x: Tensor, record: bool
    ) -> tuple[Tensor, ForwardCache | None]:
        """``a_l = W_l x_l + b_l``, ``x_{l+1} = f(a_l) / rms(f(a_l))``, linear output layer; the
        cache's ``inputs`` are the normalised activities each layer receives."""
        assert self.activation is not None, "attach() the learner to a network first"
        f = self.activation.fn
        inputs, pre_activations = [x], []
        h = x
        for layer in layers[:-1]:
            a = torch.addmm(layer.bias, h, layer.weight.t())
            h = rms_normalise(f(a))
            if record:
                pre_activations.append(a)
                inputs.append(h)
        out = layers[-1]
        y = torch.addmm(out.bias, h, out.weight.t())
        return y, (ForwardCache(inputs, pre_activations, y) if record else None)

    def layer_activities(self, cache: ForwardCache) -> list[tuple[Tensor, Tensor]]:
        """``(h_l, f'(a_l))`` of every layer, output (``y``, 1) last: what goodness is made of."""
        assert self.activation is not None
        activation = self.activation
        pairs = []
        for a in cache.pre_activations:
            h = activation.fn(a)
            pairs.append((h, activation.derivative(a, h)))
        pairs.append((cache.output, torch.ones_like(cache.output)))
        return pairs

    @torch.no_grad()
    def learn(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, modulator: Tensor | None = None
    ) -> None:
        positives = cache.inputs[0]
        batch = positives.shape[0]
        self.check_modulator(modulator, batch)
        self.remember(positives)
        _, negative_cache = self.forward_pass(layers, self.negatives(batch), record=True)
        assert negative_cache is not None
        phases = ((cache, 1.0), (negative_cache, -1.0))
        grads: list[list[Tensor]] = [[] for _ in layers]
        for phase_cache, phase in phases:
            activities = self.layer_activities(phase_cache)
            for l, ((post, slope), pre) in enumerate(
                zip(activities, phase_cache.inputs, strict=True)
            ):
                delta = goodness_delta(post, slope, phase, self.threshold * post.shape[1])
                if modulator is not None:
                    delta = delta * modulator.unsqueeze(1)
                grads[l].append(linear_grads(delta, pre))
        for layer, ((w_pos, b_pos), (w_neg, b_neg)) in zip(layers, grads, strict=True):
            layer.weight.grad = w_pos.add_(w_neg).div_(batch)
            layer.bias.grad = b_pos.add_(b_neg).div_(batch)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, bank_size={self.bank_size}, seed={self.seed}"
