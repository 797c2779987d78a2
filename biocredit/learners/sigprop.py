"""Signal propagation (Kohan, Rietman & Siegelmann 2023, IEEE Trans. Neural Netw. Learn. Syst.,
"Signal propagation: the framework for learning and inference in a forward pass";
arXiv:2204.01723).

Sigprop sends the target through the network's forward path: the context ``c`` is projected
into the input space, ``t_0 = S(c)``, and forwarded through the same layers beside the input,

    h_l = f(W_l h_{l-1} + b_l),    t_l = f(W_l t_{l-1} + b_l),    h_0 = x,

each hidden layer learns by a loss between the two streams at its own units (its inputs
``h_{l-1}``, ``t_{l-1}`` held), and the top layer learns from the task's loss. No backward pass
and no feedback synapses: every weight is only ever used forward.

In RL there is no label: the network receives only ``e = dL/dy`` at its output. The context
here is the output target taken relative to the output, ``y* - y = -beta e`` for any step
``beta``, standardised per output unit over the batch (the paper's signal modules normalise
theirs, and the standardisation removes ``beta``), and ``S`` is a fixed random matrix (``n_out
x n_in``, entries ``U(-1, 1) / sqrt(n_out)``, the paper's fixed projection):

    c = standardise(-e),    t_0 = c S

The error as the context is one of the framework's own instances (error forward-propagation,
Kohan et al. 2018, listed by the authors as sigprop with ``S`` projecting the output error to
the front of the network). The target ``y* = y - beta e`` itself was tried first: with a small
step it is the network's own output, so each hidden layer learned to represent what the network
already outputs (its effective rank fell toward the output's dimension). With ``-e`` each hidden
layer learns features that tell apart which way the outputs must move for each input, which the
output layer, learning from ``e`` directly (the paper's top layer, trained on the task's loss),
can then use:

    dW_L = e^T h_H,   db_L = sum_batch e

Neither context learns CartPole-v1 under PPO in 50k steps (seed 0: 35 with ``-e``, 46 with
``y*``, 10 with the hidden layers frozen, 500 with backprop; ``docs/notes/sigprop_context.md``).

The local loss is the paper's input-target loss (its ``sigprop.loss`` functions: logits
``h_i . t_j`` between every input's and every target's activity in the batch, cross-entropy
toward the matching target) with each input's own target as its match, and the bias
``-||t_j||^2 / 2``, which makes each logit the negative squared distance ``-||h_i - t_j||^2 / 2``
up to a per-row constant (a raw dot product favours the largest target, and with one output
unit, a value head, all targets lie on one line of the input space):

    z_ij = h_i . t_j - ||t_j||^2 / 2,    P = softmax_j z,    L_l = (1/B) sum_i (LSE_j z_ij - z_ii)
    dL/dh_i = ((P t)_i - t_i) / B
    dL/dt_j = ((P^T h)_j - (sum_i P_ij) t_j - h_j + t_j) / B

Its first term pulls each input's activity onto its own target's, like an L2 loss; the
log-sum-exp pushes it off the other targets, which an L2 loss alone does not (it is minimised by
a layer that maps every input and target alike). As in the paper both streams learn:

    dW_l = (dL/dh * f'(a_l))^T h_{l-1} + (dL/dt * f'(a^t_l))^T t_{l-1},   db_l likewise

The error handed to an upstream module is ``e S``: the output error carried into the input
space by the target's own projection, a direct projection like DFA's ``e D_0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocredit.learners.base import ErrorDrivenLearner, ForwardCache, linear_grads
from biocredit.learners.feedback import random_feedback
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec


def standardise(values: Tensor) -> Tensor:
    """``(v - mean) / std`` per output unit over the batch (std floored at 1e-8, so a batch of
    one, or equal rows, give a zero context)."""
    mean = values.mean(0)
    std = values.std(0, correction=0).clamp_min_(1e-8)
    return (values - mean).div_(std)


def target_match_errors(post_a: Tensor, post_b: Tensor) -> tuple[Tensor, Tensor]:
    """Derivatives of a layer's input-target loss with respect to its units' activities in the
    input stream (``post_a = h``) and the target stream (``post_b = t``), batch ``B``:

        z = h t^T - ||t_j||^2 / 2,   P = softmax_j z,   L = (1/B) sum_i (LSE_j z_ij - z_ii)
        dL/dh = (P t - t) / B,   dL/dt = (P^T h - colsum(P) t - h + t) / B
    """
    logits = post_a.mm(post_b.t()).sub_(post_b.square().sum(1).mul_(0.5))
    p = torch.softmax(logits, dim=1)
    batch = post_a.shape[0]
    d_input = p.mm(post_b).sub_(post_b).div_(batch)
    d_target = p.t().mm(post_a).sub_(post_b * p.sum(0, keepdim=True).t())
    d_target.sub_(post_a).add_(post_b).div_(batch)
    return d_input, d_target


@register
class SignalPropagation(ErrorDrivenLearner):
    """Signal propagation: the way the outputs must move (``-e``, standardised), projected into
    the input space, is forwarded through the same layers beside the input; each hidden layer
    learns by a local input-target loss, the output layer from ``e``; no backward pass.

    :param seed: seed for the fixed projection ``S``; by default drawn from torch's global RNG
    """

    name = "sigprop"
    family = "signal propagation"
    paper = "Kohan, Rietman & Siegelmann 2023, IEEE TNNLS; arXiv:2204.01723"
    update_kernels = (target_match_errors, linear_grads)

    @property
    def plausibility(self) -> Plausibility:
        # Weights only carry activity forward (P2); each layer learns from its own two streams'
        # pre and post activity (LP) as soon as the target has come up to it, waiting for
        # nothing from the layers above (UL). Not P1: in RL the context is made at the output
        # (e) and carried to the input by S, a pathway of its own. Not FL: the context needs
        # the whole forward pass and the loss first. Not P4: the local loss passes f'.
        return Plausibility(
            p2_weight_transport=True,
            local_plasticity=True,
            update_unlocked=True,
            architecture_agnostic=True,
            control=True,
        )

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        shape = (spec.out_features, spec.in_features)
        projection = random_feedback(shape, spec.out_features, "uniform", 1.0, generator)
        self.register_buffer("projection", projection)

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        f, derivative = self.activation.fn, self.activation.derivative
        target = standardise(-error).mm(self.projection)  # t_0 = c S
        grads: list[Tensor] = []
        for l, layer in enumerate(layers[:-1]):
            a_t = torch.addmm(layer.bias, target, layer.weight.t())
            above = f(a_t)
            h = cache.inputs[l + 1]
            d_input, d_target = target_match_errors(h, above)
            d_input.mul_(derivative(cache.pre_activations[l], h))
            d_target.mul_(derivative(a_t, above))
            grad_w, grad_b = linear_grads(d_input, cache.inputs[l])
            grad_w_t, grad_b_t = linear_grads(d_target, target)
            grads += [grad_w.add_(grad_w_t), grad_b.add_(grad_b_t)]
            target = above
        grads += linear_grads(error, cache.inputs[-1])
        return (error.mm(self.projection) if input_grad else None), grads
