"""SoftHebb: Hebbian learning in a soft winner-take-all layer (Journe, Rodriguez, Guo &
Moraitis 2022, arXiv 2209.11883, "Hebbian Deep Learning Without Feedback"; the rule from
Moraitis et al. 2022, Neuromorph. Comput. Eng. 2:044017).

The units of a layer compete through a softmax of their summed inputs (lateral inhibition), and
each learns in proportion to its share of the competition:

    u = W x                                     summed inputs (biases held at zero)
    y = softmax(u / T)                          soft winner-take-all over the layer's units
    dW_i = eta * y_i (x - u_i W_i)              per unit i, averaged over the batch

Since ``W_i . dW_i = eta * y_i u_i (1 - ||W_i||^2)`` and ``y_i u_i`` is positive on average for
inputs centred on zero, every row's norm converges to one; the competition makes the units
specialise to different parts of the input distribution (soft clustering on the unit sphere)
instead of all finding the same component as Oja's rule does (:mod:`biocredit.learners.hebbian`).
No feedback, target or error signal: each synapse reads its pre-synaptic input, its unit's
``y_i`` and ``u_i``, and its own weight. Too low a temperature leaves units that never win and
so never learn (the dead units of hard winner-take-all).

As in the paper's multilayer networks, the softmax serves plasticity only: a hidden layer passes
``f(u)`` up (the network's activation), the output layer hands on ``u``. Dense layers only; the
paper's convolutional layers and its anti-Hebbian variant for the losing units are not here.
"""

from __future__ import annotations

from torch import Tensor

from biocredit.learners.hebbian import DecayingHebbianLearner
from biocredit.learners.options import check_number
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register


@register
class SoftHebb(DecayingHebbianLearner):
    """Soft winner-take-all Hebbian learning: ``dW_i = eta * y_i (x - u_i W_i)``,
    ``y = softmax(u / T)``.

    :param temperature: ``T`` of the competition; small is close to hard winner-take-all
    :param seed: unused (the rule keeps no random state); accepted like every learner's
    """

    name = "softhebb"
    family = "soft winner-take-all Hebbian"
    paper = "Journe, Rodriguez, Guo & Moraitis 2022, arXiv 2209.11883 (ICLR 2023)"

    def __init__(self, temperature: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.temperature = check_number(self.name, "temperature", temperature, hint=1.0)

    @property
    def plausibility(self) -> Plausibility:
        # Not P6: the soft winner-take-all output the synapses learn from is computed for
        # plasticity beside the activity the layer passes up.
        return self.base_plausibility(learns_from_inference=False)

    def post(self, potential: Tensor) -> Tensor:
        return (potential / self.temperature).softmax(dim=1)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, seed={self.seed}"
