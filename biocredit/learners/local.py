"""Local losses (Nokland & Eidnes 2019, ICML, "Training neural networks with local error
signals"; Belilovsky, Eickenberg & Oyallon 2019, ICML, "Greedy layerwise learning can scale to
ImageNet").

Every hidden layer ``l`` has a linear readout of its own that predicts the network's output
target, and learns from that readout's loss alone; no error crosses from one layer to another.
The top weight layer is the network's own readout, ``r_L = W_L h_{L-1} + b_L``:

    r_l = R_l h_l + c_l                                   (l = 1 .. L-1)
    L_l = ||r_l - y*||^2 / (2 beta),   y* = y - beta e      (the output target)
    err_l = dL_l/dr_l = (r_l - y*) / beta = e + (r_l - y) / beta
    delta_l = (err_l R_l) * f'(a_l),   dW_l = delta_l^T h_{l-1},  db_l = sum delta_l
    top:  dW_L = err_L^T h_{L-1}

The loss reaches the network only as ``e = dL/dy`` at its output, so the readouts' target is the
boundary's output target ``y* = y - beta e`` (:class:`TargetDrivenLearner`): the readout loss is
the squared distance to it, scaled by ``1 / beta`` so that its gradient at ``r_l = y`` is exactly
``e``. With ``output="top"`` the top layer's error is therefore ``e`` itself, and its update is
backprop's last-layer gradient. A squared error ``||y - t||^2 / 2`` with ``relative_nudge=False``
and ``nudge=1`` makes ``y* = t``: every readout regresses on the task's own target, the papers'
set-up with a squared loss. The first-order form of the same loss, ``err_l = e`` (dropping the
readout's own prediction ``(r_l - y) / beta``), would make a fixed readout direct feedback
alignment with ``D_l = R_l``: the prediction term is what makes each layer predict the target.

``readout="learned"`` (the papers' linear classifiers) trains each readout by the same local
loss, ``R.grad = err_l^T h_l``, ``c.grad = sum err_l``; they are parameters of the learner, so the
optimizer that trains the network trains them. Their error reaches the layer through their own
weights (``err_l R_l``): weight transport within the readout. ``readout="fixed"``: fixed random
readouts without bias, entries of the spread of ``nn.Linear`` weights reading layer ``l`` times
``scale``; they never change, so the feedback that carries ``err_l`` back (``R_l`` again) is set
once and never transported (docs/plausibility.md).

``output``: what the network outputs. ``"top"``: the top layer's readout ``y = r_L``; the hidden
readouts serve learning only. ``"mean"``: the average of every layer's readout,
``y = (r_1 + ... + r_L) / L``, each layer predicting the output itself (the per-layer value
predictions of Artificial Dopamine, Guan et al. 2024, NeurIPS, "Temporal-difference learning
using distributed error signals", where every layer predicts Q and learns from its own TD error).
The forward pass (:meth:`LocalLosses.forward_pass`) is then the average, for inference, target
networks and the alignment diagnostic alike; the readouts keep their own initialisation there
(SB3's small output gain for a policy's logits reaches only the top layer). Averaged, the
readouts' errors are the output's: ``sum_l (r_l - y) = 0``, so ``sum_l err_l / L = e``.

The error handed to a module upstream, for the network's input ``x``, is that of an input readout
``r_0 = R_0 x + c_0`` under the same loss, ``err_0 R_0``: the upstream module's output learns to
predict the target too, and nothing crosses a layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from biocredit.errors import unknown_name
from biocredit.learners.base import (
    ForwardCache,
    TargetDrivenLearner,
    accumulate_grad,
    linear_grads,
)
from biocredit.learners.feedback import check_feedback_options, random_feedback
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec

READOUTS = ("learned", "fixed")
OUTPUTS = ("top", "mean")


def readout(post: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A layer's prediction of the output, ``r_l = R_l h_l + c_l`` (``weight``: n_out x n_l)."""
    if bias is None:
        return post.mm(weight.t())
    return torch.addmm(bias, post, weight.t())


def readout_error(prediction: Tensor, output: Tensor, shift: Tensor, beta: Tensor) -> Tensor:
    """Gradient of the readout loss ``||r - y*||^2 / (2 beta)`` at ``r``, with the output target
    ``y* = y + shift`` (``shift = -beta e``): ``((r - y) - shift) / beta``; ``e`` at ``r = y``."""
    return (prediction - output).sub_(shift).div_(beta)


def readout_delta(error: Tensor, readout_weight: Tensor, fprime: Tensor) -> Tensor:
    """A hidden layer's local error from its readout's: ``delta_l = (err_l R_l) * f'(a_l)``."""
    return error.mm(readout_weight).mul_(fprime)


@dataclass
class ReadoutCache(ForwardCache):
    """The forward pass with every readout: ``readouts[l]`` is ``r_l`` for ``l = 0 .. L`` (``r_0``
    the input's, ``r_L`` the top layer's)."""

    readouts: list[Tensor] = field(default_factory=list)


@register
class LocalLosses(TargetDrivenLearner):
    """Local losses: each hidden layer learns to predict the output target with its own readout.

    :param readout: ``"learned"`` (linear readouts trained by their own loss, as in the papers)
        or ``"fixed"`` (fixed random readouts without bias)
    :param output: ``"top"`` (the network outputs its top layer's readout) or ``"mean"`` (the
        average of every layer's readout)
    :param nudge: how far the output target lies from the output, against the loss
    :param relative_nudge: measure ``nudge`` in units of ``rms(e)`` (``beta = nudge / rms(e)``)
    :param init: ``"uniform"`` or ``"gaussian"`` initial readout entries
    :param scale: their spread, relative to default ``nn.Linear`` weights reading the layer
    :param seed: seed for the readouts; by default drawn from torch's global RNG
    """

    name = "local"
    family = "local losses: per-layer readouts predicting the output target"
    paper = "Nokland & Eidnes 2019, ICML; Belilovsky et al. 2019, ICML; Guan et al. 2024"
    update_kernels = (linear_grads,)
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "fixed": {"readout": "fixed"},
        "mean": {"output": "mean"},
    }

    def __init__(
        self,
        readout: str = "learned",
        output: str = "top",
        nudge: float = 0.1,
        relative_nudge: bool = True,
        init: str = "uniform",
        scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(nudge, relative_nudge, seed)
        if readout not in READOUTS:
            raise unknown_name("local readout", readout, READOUTS)
        if output not in OUTPUTS:
            raise unknown_name("local output", output, OUTPUTS)
        check_feedback_options(self.name, init, scale)
        self.readout, self.output = readout, output
        self.init, self.scale = init, scale
        self._readouts: list[tuple[Tensor, Tensor | None]] = []

    @property
    def plausibility(self) -> Plausibility:
        # No error crosses a layer: each hidden layer's signal is its own readout's error, there
        # as soon as the output target is (UL). The target is broadcast to every readout by a
        # pathway of its own (not P1, as dfa). A learned readout's error reaches its layer
        # through the readout's own changing weights (not P2, not LP); a fixed one through
        # synapses set once (P2, LP). Not FL: the target needs the whole forward pass.
        fixed = self.readout == "fixed"
        return Plausibility(
            p2_weight_transport=fixed,
            local_plasticity=fixed,
            update_unlocked=True,
            architecture_agnostic=True,
            control=True,
        )

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        """A readout ``R_l`` (n_out x n_l) for the input and every hidden layer, and a bias
        ``c_l`` when learned."""
        n_out = spec.out_features
        for l, width in enumerate(spec.sizes[:-1]):
            weight = random_feedback((n_out, width), width, self.init, self.scale, generator)
            if self.readout == "learned":
                self.register_parameter(f"readout_{l}", nn.Parameter(weight))
                self.register_parameter(f"readout_bias_{l}", nn.Parameter(torch.zeros(n_out)))
                bias: Tensor | None = getattr(self, f"readout_bias_{l}")
            else:
                self.register_buffer(f"readout_{l}", weight)
                bias = None
            self._readouts.append((getattr(self, f"readout_{l}"), bias))

    def forward_pass(
        self, layers: Sequence[nn.Linear], x: Tensor, record: bool
    ) -> tuple[Tensor, ForwardCache | None]:
        """The feedforward pass; its output is the top readout ``r_L`` (``output="top"``) or the
        mean of ``r_1 .. r_L`` (``"mean"``). With ``record`` every readout is kept, the input's
        included (the readout units fire with the forward pass)."""
        if not record and self.output == "top":
            return super().forward_pass(layers, x, record=False)
        top, cache = super().forward_pass(layers, x, record=True)
        assert cache is not None
        first = 0 if record else 1  # the input's readout only serves learning
        readouts = [
            readout(h, weight, bias)
            for h, (weight, bias) in zip(cache.inputs[first:], self._readouts[first:], strict=True)
        ]
        readouts.append(top)
        y = top if self.output == "top" else torch.stack(readouts[1 - first :]).mean(0)
        if not record:
            return y, None
        return y, ReadoutCache(cache.inputs, cache.pre_activations, y, readouts)

    def learn_from_target(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        shift: Tensor,
        beta: Tensor,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        assert self.activation is not None and isinstance(cache, ReadoutCache)
        derivative = self.activation.derivative
        errors = [readout_error(r, cache.output, shift, beta) for r in cache.readouts]
        grads = list(linear_grads(errors[-1], cache.inputs[-1]))  # the top layer: its own readout
        for l in range(len(layers) - 1, 0, -1):
            a, h = cache.pre_activations[l - 1], cache.inputs[l]
            delta = readout_delta(errors[l], self._readouts[l][0], derivative(a, h))
            grads[:0] = linear_grads(delta, cache.inputs[l - 1])
        if self.readout == "learned":
            for l, (weight, bias) in enumerate(self._readouts):
                if l > 0 or input_grad:  # the input's readout learns when it sends its error
                    grad_w, grad_b = linear_grads(errors[l], cache.inputs[l])
                    accumulate_grad(weight, grad_w)
                    accumulate_grad(bias, grad_b)
        grad_x = errors[0].mm(self._readouts[0][0]) if input_grad else None
        return grad_x, grads

    def extra_repr(self) -> str:
        return (
            f"readout={self.readout!r}, output={self.output!r}, nudge={self.nudge}, "
            f"relative_nudge={self.relative_nudge}, init={self.init!r}, scale={self.scale}, "
            f"seed={self.seed}"
        )
