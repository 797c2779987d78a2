"""Fixed random feedback weights, the shared state of FA, DFA and three-factor rules."""

from __future__ import annotations

import torch
from torch import Tensor

from biocredit.errors import unknown_name
from biocredit.learners.base import Learner
from biocredit.learners.options import check_number

FEEDBACK_INITS = ("uniform", "gaussian")


def random_feedback(
    shape: tuple[int, ...], fan: int, init: str, scale: float, generator: torch.Generator
) -> Tensor:
    """A fixed random matrix with entries of standard deviation ``scale / sqrt(3 fan)``.

    ``uniform`` draws from ``U(-scale/sqrt(fan), scale/sqrt(fan))``, the range of PyTorch's default
    ``nn.Linear`` weights; ``gaussian`` draws from a normal of the same variance.
    """
    bound = scale / fan**0.5
    if init == "uniform":
        return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound
    return torch.randn(shape, generator=generator) * (bound / 3**0.5)


def check_feedback_options(owner: str, init: str, scale: float) -> None:
    """Reject an unknown feedback ``init`` or a non-positive ``scale`` of learner ``owner``."""
    if init not in FEEDBACK_INITS:
        raise unknown_name("feedback init", init, FEEDBACK_INITS)
    check_number(owner, "scale", scale, hint=1.0)


class RandomFeedbackLearner(Learner):
    """A learner whose feedback pathway is fixed random matrices, kept as buffers
    ``feedback_<l>`` so they are saved and restored with the model.

    :param init: ``"uniform"`` or ``"gaussian"`` feedback entries
    :param scale: multiplies the spread of the feedback entries
    :param seed: seed for the feedback matrices; by default drawn from torch's global RNG
    """

    def __init__(self, init: str = "uniform", scale: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        check_feedback_options(self.name, init, scale)
        self.init, self.scale = init, scale

    def add_feedback(
        self, index: int, shape: tuple[int, ...], fan: int, generator: torch.Generator
    ) -> None:
        """Draw the fixed matrix ``feedback_<index>`` of ``shape``, spread ``scale/sqrt(fan)``."""
        matrix = random_feedback(shape, fan, self.init, self.scale, generator)
        self.register_feedback(f"feedback_{index}", matrix)

    def feedback(self) -> list[Tensor]:
        """The feedback matrices in the order they were added (:meth:`own_feedback`)."""
        return self.own_feedback()

    def extra_repr(self) -> str:
        return f"init={self.init!r}, scale={self.scale}, seed={self.seed}"
