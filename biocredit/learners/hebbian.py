"""Two-factor Hebbian learning with Oja's normalisation (Oja 1982, J. Math. Biol. 15:267, "A
simplified neuron model as a principal component analyzer").

Each unit's weights grow with the coincidence of its input and its response, and decay by its
own weight times its squared response:

    u = W x                                    the unit's summed input (biases held at zero)
    dW_i = eta * u_i (x - u_i W_i)             per unit i, averaged over the batch

The decay keeps ``||W_i||`` at one and, for zero-mean inputs, a unit's weight vector converges
to the first principal component of its input (Oja 1982). No signal other than the layer's own
input and response reaches a layer, nor any other synapse's weight: each synapse reads its
pre- and post-synaptic activity and its own weight. A hidden layer passes ``f(u)`` up, and its
rule uses ``u`` (Oja's linear neuron). The units of a layer do not compete, so all of them find
the same component (up to sign): this is the baseline row of the two-factor family, not a
representation one would choose (:mod:`biocredit.learners.softhebb` adds the competition).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocredit.learners.base import ForwardCache, SignalFreeLearner
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register


def hebbian_decay_update(pre: Tensor, post: Tensor, potential: Tensor, weight: Tensor) -> Tensor:
    """``sum_b post_bi (pre_b - potential_bi W_i)`` for every unit ``i`` of a layer, i.e.
    ``post^T pre - diag(sum_b post_b * potential_b) W``.

    Oja's rule with ``post = potential = u``; SoftHebb's with ``post = softmax(u / T)``. Each
    synapse ``W_ij`` reads its own pre- and post-synaptic terms and its own weight only.
    """
    return post.t().mm(pre).sub_((post * potential).sum(0).unsqueeze(1) * weight)


class DecayingHebbianLearner(SignalFreeLearner):
    """``dW_i = eta * y_i (x - u_i W_i)`` in every layer, with ``u`` the layer's summed input and
    ``y = post(u)`` its post-synaptic term (:meth:`post`); the biases stay at zero."""

    update_kernels = (hebbian_decay_update,)

    def post(self, potential: Tensor) -> Tensor:
        """The post-synaptic factor ``y`` of a layer whose summed inputs are ``potential``."""
        raise NotImplementedError

    def init_weights(self, layers: Sequence[nn.Linear]) -> None:
        for layer in layers:  # the rule has no bias: u = W x
            layer.bias.zero_()

    @torch.no_grad()
    def learn(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, modulator: Tensor | None = None
    ) -> None:
        batch = cache.inputs[0].shape[0]
        self.check_modulator(modulator, batch)
        potentials = [*cache.pre_activations, cache.output]
        for layer, pre, potential in zip(layers, cache.inputs, potentials, strict=True):
            post = self.post(potential)
            if modulator is not None:
                post = post * modulator.unsqueeze(1)
            update = hebbian_decay_update(pre, post, potential, layer.weight)
            layer.weight.grad = update.div_(-batch)
            layer.bias.grad = torch.zeros_like(layer.bias)

    def base_plausibility(self, learns_from_inference: bool) -> Plausibility:
        """Flags shared by the decaying Hebbian rules (``docs/plausibility.md``)."""
        return Plausibility(
            p1_global_feedback=True,
            p2_weight_transport=True,
            p4_constraints=True,
            local_plasticity=True,
            forward_unlocked=True,
            update_unlocked=True,
            p6_inference_learning=learns_from_inference,
            architecture_agnostic=True,
            control=True,
        )


@register
class OjaHebbian(DecayingHebbianLearner):
    """Plain two-factor Hebbian learning with Oja's decay: ``dW_i = eta * u_i (x - u_i W_i)``.

    :param seed: unused (the rule keeps no random state); accepted like every learner's
    """

    name = "hebbian"
    family = "two-factor Hebbian with Oja's normalisation"
    paper = "Oja 1982, J. Math. Biol. 15:267"

    @property
    def plausibility(self) -> Plausibility:
        # P6: the synapses learn from the very activity inference produces, nothing else.
        return self.base_plausibility(learns_from_inference=True)

    def post(self, potential: Tensor) -> Tensor:
        return potential
