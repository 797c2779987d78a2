"""Which problems of backpropagation a learner addresses, in the survey's terms.

Criteria from the 2024 "Review of Neuroscience-Inspired Machine Learning" and Ororbia (2023),
"Brain-Inspired Machine Intelligence". A criterion is ``True`` when the learner addresses it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

CRITERIA: dict[str, str] = {
    "p1_global_feedback": "P1: no global feedback pathway (error skips the layer-by-layer path)",
    "p2_weight_transport": "P2: no weight transport (feedback does not reuse W^T)",
    "p3_short_term_plasticity": "P3: short-term plasticity / fast dynamics take part in learning",
    "p4_constraints": "P4: respects biological constraints and sensitivity (bounded, robust)",
    "local_plasticity": "LP: each update uses only pre/post-synaptic and locally available terms",
    "forward_unlocked": "FL: layers need not wait for the full forward pass to learn",
    "update_unlocked": "UL: layers need not wait for the full backward pass to update",
    "p6_inference_learning": "P6: inference and learning share one dynamical process",
    "architecture_agnostic": "AA: applies to any layered architecture",
    "time": "Time: learns online over sequences without unrolling",
    "control": "Ctrl: demonstrated on behaviour / control tasks",
    "equals_backprop": "=BP: computes backprop's gradients exactly (a reference, not a new rule)",
}


@dataclass(frozen=True)
class Plausibility:
    """Flags for the criteria in :data:`CRITERIA`; ``True`` means the problem is addressed."""

    p1_global_feedback: bool = False
    p2_weight_transport: bool = False
    p3_short_term_plasticity: bool = False
    p4_constraints: bool = False
    local_plasticity: bool = False
    forward_unlocked: bool = False
    update_unlocked: bool = False
    p6_inference_learning: bool = False
    architecture_agnostic: bool = False
    time: bool = False
    control: bool = False
    equals_backprop: bool = False

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)

    @staticmethod
    def short_names() -> dict[str, str]:
        """Column labels (``P1``, ``LP`` ...) keyed by field name."""
        return {f.name: CRITERIA[f.name].split(":")[0] for f in fields(Plausibility)}
