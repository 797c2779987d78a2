"""Alignment diagnostics: how close a learner's update is to backprop's gradient.

Every ``every`` credit assignments of a network, :class:`AlignmentMonitor` compares, layer by
layer, the update the learner wrote with the gradient backprop would give for the same loss on
the same batch:

    cos_l = <dW_l, dL/dW_l> / (||dW_l|| ||dL/dW_l||)        (weights and bias of layer l together)

For error- and target-driven learners, the loss is the one whose output error ``e = dL/dy``
reached the network: the reference is ``J^T e``, autograd through the learner's own forward
pass (the feedforward pass, or eqprop's free phase) on the same input. For modulator-driven
learners the loss is the one their third factor stands for, one step at a time: the update of
this step's eligibility, ``-sum_env M post_l pre_l^T``, against the same product with
backprop's post terms (the TD-error and policy-gradient terms of an actor-critic).

Lillicrap et al. 2016 (Nat. Commun. 7:13276) report feedback alignment's angle to backprop
falling below 90 degrees as the forward weights come to align with the feedback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def layer_cosines(update: Sequence[Tensor], reference: Sequence[Tensor]) -> list[float]:
    """Cosine per layer between two ``[dW_1, db_1, ..., dW_L, db_L]`` lists (0 where either
    is zero)."""
    cosines = []
    for l in range(0, len(update), 2):
        a = torch.cat([t.detach().flatten() for t in update[l : l + 2]])
        b = torch.cat([t.detach().flatten() for t in reference[l : l + 2]])
        norm = float(a.norm() * b.norm())
        cosines.append(max(-1.0, min(1.0, float(a.dot(b)) / norm)) if norm > 0 else 0.0)
    return cosines


def forward_gradient(network: Any, x: Tensor, error: Tensor) -> list[Tensor]:
    """``J^T e``: backprop's parameter gradient for the output error ``e``, by autograd through
    the network's own forward pass on ``x`` (``network``: a
    :class:`~biocredit.learners.network.LocalNetwork`)."""
    with torch.enable_grad():
        y, _ = network.forward_pass(x.detach(), record=False)
        return list(torch.autograd.grad(y, network.parameters_in_order(), grad_outputs=error))


class AlignmentMonitor:
    """Counts a network's credit assignments and, every ``every``-th, records the cosine of
    each layer's update to backprop's gradient (``latest``, with ``fresh`` set until read)."""

    def __init__(self, every: int) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.calls = 0
        self.latest: list[float] = []
        self.fresh = False

    def due(self) -> bool:
        """Count one credit assignment; true when this one is to be compared."""
        self.calls += 1
        return self.calls % self.every == 0

    def record(self, update: Sequence[Tensor], reference: Sequence[Tensor]) -> None:
        self.latest = layer_cosines(update, reference)
        self.fresh = True

    def read(self, name: str) -> dict[str, float]:
        """``alignment/<name>/layer<l>`` cosines and ``.../angle<l>`` in degrees; clears
        ``fresh``."""
        self.fresh = False
        values = {}
        for l, cosine in enumerate(self.latest, start=1):
            values[f"alignment/{name}/layer{l}"] = cosine
            values[f"alignment/{name}/angle{l}"] = math.degrees(
                math.acos(max(-1.0, min(1.0, cosine)))
            )
        return values
