"""Difference target propagation (Lee, Zhang, Fischer & Bengio 2015, ECML-PKDD, "Difference
Target Propagation"), with the output target sent down through the output layer's own inverse
as in the DTP of Meulemans, Carzaniga, Suykens, Sacramento & Grewe 2020 (NeurIPS, "A
Theoretical Framework for Target Propagation").

Layer ``l = 1..L`` computes ``h_l = f_l(h_{l-1})``, ``f_l(h) = f(W_l h + b_l)`` for the hidden
layers and ``W_L h + b_L`` for the linear output (``h_0 = x``, ``h_L = y``). Each layer has a
feedback mapping ``g_l`` from its own units back to the layer below, meant to invert it:

    g_l(h_l) = f(V_l h_l + c_l)     2 <= l < L (between hidden layers, Lee et al.'s form)
    g_L(y) = V_L y + c_L            (the linear output's inverse, linear like its exact inverse)
    g_1(h_1) = V_1 h_1 + c_1        (into the input, linear)

``g_L`` is linear because the output is unbounded: a value head's outputs grow to tens, and
``f(V_L y + c_L)`` then works on the flat parts of ``f`` (ReLU's zero side, tanh's tails), where
neither the targets below (``g_L(y*) - g_L(y)``) nor the inverse's own reconstruction gradient
move. With a ReLU ``g_L``, after 50k steps of PPO on CartPole-v1 (RL Zoo settings, seed 0) the
critic's values were about 41 and 52% of its output inverse's units were silent on every state
a random policy visits; that run returned 115, the same run with a linear ``g_L`` 199 (one
seed each; bp: 500).

Targets. The autograd boundary gives the output its target ``y* = y - beta e``; each target is
sent down through the inverses with the difference correction

    h*_{l-1} = h_{l-1} + g_l(h*_l) - g_l(h_l)

which cancels ``g_l``'s reconstruction error at ``h_l`` (a layer whose target equals its
activity passes its own activity down, however imperfect ``g_l``). With exact inverses
``g_l = f_l^{-1}`` every target is the exact preimage of the one above, ``f_l(h*_{l-1}) =
h*_l``. The targets are kept as shifts ``h*_l - h_l``, so a small nudge is not lost to rounding.

Forward weights. Each layer moves toward its target by its own local loss ``||f_l(h_{l-1}) -
h*_l||^2 / 2``, its input held at ``h_{l-1}``; only its own weights change:

    delta_l = (h_l - h*_l) * f'(a_l)        (delta_L = y - y* = beta e at the linear output)
    W_l.grad = delta_l^T h_{l-1} / beta,   b_l.grad = sum_batch delta_l / beta

Divided by ``beta`` to be gradient-sized: the output layer's is backprop's ``e^T h_{L-1}``.

Inverses. Each ``g_l`` learns by Lee et al.'s layer-local reconstruction loss on
noise-perturbed activities,

    h~ = h_{l-1} + sigma xi,  xi ~ N(0, I),     L^inv_l = ||g_l(f_l(h~)) - h~||^2 / 2

by normalised least mean squares at its own rate ``eta`` (``inverse_rate``), after the targets of
the update are sent (Lee et al.'s order: targets, inverses, forward weights):

    r = g_l(u),  u = V_l f_l(h~) + c_l,  err = (r - h~) * g'(u)   (g' = 1 for g_1 and g_L)
    V_l <- V_l - eta mean_batch(err^T f_l(h~)) / P,   c_l <- c_l - eta mean_batch(err) / P
    P = mean_batch ||f_l(h~)||^2 + 1

The input's inverse ``g_1`` serves only the input's error, so it learns only on the updates
where a module upstream asks for that error (never for an SB3 policy reading observations).
The inverses are buffers of the learner (saved and resumed with the model), trained by that
rule, not by the optimizer: (1) an SB3 algorithm clips the global norm of every ``.grad`` it
steps, and the reconstruction gradients, whose scale is set by the activities and not by the
loss, would take over that norm and shrink the network's own steps; (2) dividing by the input
power ``P`` makes the step independent of the layer widths and of the output's scale (a value
head's outputs reach tens on CartPole-v1), stable for ``eta`` in (0, 1]. The noise comes
from torch's global generator, which every run seeds.

Why Lee et al.'s DTP and not the difference reconstruction loss (DRL) of Meulemans et al.
2020: DRL trains each feedback mapping on the reconstruction of the whole feedback path, from
the output down to layer ``l``, so every layer's feedback update needs a noise-perturbed pass
through all the layers above and back through all their inverses (``O(L^2)`` products per
update, and a signal that is not local to the layer pair). Lee et al.'s loss involves one
forward layer and its own inverse (``O(L)`` products, local), which the issue's wall-time
target (at most twice backprop's) and the locality flag ask for. Meulemans et al. show that
DTP's targets approximate Gauss-Newton targets when the inverses are accurate, which the
per-update inverse training aims at.

The top target: Lee et al. sent the loss's gradient through ``W_L^T`` to the last hidden layer
(``h*_{L-1} = h_{L-1} - eta dL/dh_{L-1}``, a weight transport at the top) and trained the output
layer on the loss; here the output gets the boundary's target ``y*`` (which trains the output
layer on the same gradient) and the last hidden layer's target goes through ``g_L`` with the
difference correction, as in Meulemans et al.'s DTP: no weight transport anywhere.

The network's input gets the target ``x* = x + g_1(h*_1) - g_1(h_1)``, and an upstream module
the error ``(x - x*) / beta``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from itertools import pairwise

import torch
from torch import Tensor, nn

from biocredit.learners.base import ForwardCache, TargetDrivenLearner
from biocredit.learners.feedback import check_feedback_options, random_feedback
from biocredit.learners.options import check_number
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec


def target_shift(inverse: Callable[[Tensor], Tensor], post: Tensor, shift: Tensor) -> Tensor:
    """The difference correction, as a shift of the layer below:
    ``h*_{l-1} - h_{l-1} = g_l(h_l + shift_l) - g_l(h_l)`` with ``shift_l = h*_l - h_l``."""
    return inverse(post + shift).sub_(inverse(post))


def local_loss_delta(shift: Tensor, fprime: Tensor) -> Tensor:
    """A layer's local-loss gradient at its pre-activation, ``d/da ||f(a) - h*||^2 / 2 =
    (h - h*) * f'(a) = -shift * f'(a)``."""
    return shift.mul(fprime).neg_()


def dtp_weight_grads(delta: Tensor, pre: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient-sign update of one layer toward its target, from its local-loss gradient
    ``delta`` and its input: ``W.grad = delta^T h_{l-1} / beta``, ``b.grad = sum delta / beta``."""
    scaled = delta / beta
    return scaled.t().mm(pre), scaled.sum(0)


def reconstruction_grads(error: Tensor, pre: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient of the batch-mean reconstruction loss of one inverse, from its reconstruction
    error at its pre-activation (``(r - h~) * g'(u)``) and its input ``f_l(h~)``:
    ``V.grad = mean_batch error^T pre``, ``c.grad = mean_batch error``."""
    return error.t().mm(pre).div_(pre.shape[0]), error.mean(0)


@register
class DifferenceTargetPropagation(TargetDrivenLearner):
    """Difference target propagation: targets sent down through learned inverses with the
    difference correction, each layer moved toward its own target.

    :param noise: ``sigma``, the spread of the Gaussian noise added to each layer's input to
        train its inverse
    :param inverse_rate: ``eta`` in (0, 1], the inverses' normalised LMS rate
    :param nudge: how far the output target lies from the output, against the loss
    :param relative_nudge: measure ``nudge`` in units of ``rms(e)`` (``beta = nudge / rms(e)``)
    :param init: ``"uniform"`` or ``"gaussian"`` initial inverse weights ``V_l``
    :param scale: their spread, relative to default ``nn.Linear`` weights reading the layer
    :param seed: seed for the initial inverses; by default drawn from torch's global RNG
    """

    name = "dtp"
    family = "difference target propagation"
    paper = "Lee et al. 2015, ECML-PKDD; Meulemans et al. 2020, NeurIPS"
    update_kernels = (dtp_weight_grads, reconstruction_grads)

    def __init__(
        self,
        noise: float = 0.1,
        inverse_rate: float = 0.5,
        nudge: float = 0.1,
        relative_nudge: bool = True,
        init: str = "uniform",
        scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(nudge, relative_nudge, seed)
        self.noise = check_number(self.name, "noise", noise, hint=0.1)
        self.inverse_rate = check_number(
            self.name, "inverse_rate", inverse_rate, 0, 1, closed="high", hint=0.5
        )
        check_feedback_options(self.name, init, scale)
        self.init, self.scale = init, scale
        self._inverses: list[tuple[Tensor, Tensor]] = []

    @property
    def plausibility(self) -> Plausibility:
        # Targets travel down a layered pathway of their own (the inverses): not P1, not UL.
        # The forward weights only carry activity forward, also to train the inverses (P2);
        # each layer's local loss needs its slope f' (not P4).
        return Plausibility(
            p2_weight_transport=True,
            local_plasticity=True,
            architecture_agnostic=True,
            control=True,
        )

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        for l, (n_in, n_out) in enumerate(pairwise(spec.sizes)):  # V_l: layer l+1 -> layer l
            weight = random_feedback((n_in, n_out), n_out, self.init, self.scale, generator)
            self.register_buffer(f"inverse_weight_{l}", weight)
            self.register_buffer(f"inverse_bias_{l}", torch.zeros(n_in))
            self._inverses.append(
                (getattr(self, f"inverse_weight_{l}"), getattr(self, f"inverse_bias_{l}"))
            )

    def inverse(self, l: int, post: Tensor) -> Tensor:
        """``g_l``: from the output of weight layer ``l`` (0-based) back to its input; through
        the activation between hidden layers, linear from the output and into the input."""
        assert self.activation is not None
        weight, bias = self._inverses[l]
        u = torch.addmm(bias, post, weight.t())
        return u if self.linear_inverse(l) else self.activation.fn(u)

    def linear_inverse(self, l: int) -> bool:
        """Whether ``g_l`` (weight layer ``l``, 0-based) is linear: into the input or from the
        output."""
        return l == 0 or l == len(self._inverses) - 1

    def learn_from_target(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        shift: Tensor,
        beta: Tensor,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None
        derivative = self.activation.derivative
        posts = [*cache.inputs[1:], cache.output]
        grads: list[Tensor] = []
        for l in range(len(layers) - 1, -1, -1):
            if l == len(layers) - 1:
                delta = shift.neg()  # the linear output: y - y*
            else:
                delta = local_loss_delta(shift, derivative(cache.pre_activations[l], posts[l]))
            grads[:0] = dtp_weight_grads(delta, cache.inputs[l], beta)
            if l > 0 or input_grad:
                shift = target_shift(partial(self.inverse, l), posts[l], shift)
        self.train_inverses(layers, cache, input_inverse=input_grad)
        return (shift / -beta if input_grad else None), grads

    def train_inverses(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, input_inverse: bool
    ) -> None:
        """One normalised LMS step of every inverse on its reconstruction of a noise-perturbed
        input (module docstring), in place; the input's inverse ``g_1`` only with
        ``input_inverse``: it serves nothing but the input's error, so it learns when an upstream
        module asks for that error (an SB3 policy reading observations never does).

        One draw of noise serves every layer (each takes its first ``n_{l-1}`` columns): each
        inverse's own update sees fresh Gaussian noise and the correlation between layers
        changes no layer's expected step, while the draw is the costliest op of the step."""
        assert self.activation is not None and self.spec is not None
        f, derivative = self.activation.fn, self.activation.derivative
        x = cache.inputs[0]
        width = max(self.spec.sizes[int(not input_inverse) : -1])
        noise = torch.randn(x.shape[0], width, dtype=x.dtype, device=x.device)
        for l, (layer, (weight, bias)) in enumerate(zip(layers, self._inverses, strict=True)):
            if l == 0 and not input_inverse:
                continue
            below = cache.inputs[l]
            noisy = torch.add(below, noise[:, : below.shape[1]], alpha=self.noise)
            out = torch.addmm(layer.bias, noisy, layer.weight.t())
            if l < len(layers) - 1:
                out = f(out)
            u = torch.addmm(bias, out, weight.t())
            if self.linear_inverse(l):
                error = u.sub_(noisy)
            else:
                r = f(u)
                error = derivative(u, r).mul_(r - noisy)
            grad_w, grad_b = reconstruction_grads(error, out)
            power = float(out.square().sum()) / out.shape[0]
            rate = self.inverse_rate / (power + 1.0)
            weight.sub_(grad_w, alpha=rate)
            bias.sub_(grad_b, alpha=rate)

    def extra_repr(self) -> str:
        return (
            f"noise={self.noise}, inverse_rate={self.inverse_rate}, nudge={self.nudge}, "
            f"init={self.init!r}, scale={self.scale}, seed={self.seed}"
        )
