"""Divergence guard: stop a run at the step a NaN or inf first appears, and say where.

Checked every env step: observations and rewards from the env, the network outputs the agent
acted on, and the weights (scanned only when one was written since the last scan: every in-place
write bumps a tensor's version counter). Updates (``.grad``, the learner's output): in SB3 runs,
hooks check them before every optimizer step and the weights after it; the online loop checks the
weights once per step (a bad update always leaves a bad weight) and scans the updates only to
name the cause. The run stops with a :class:`DivergenceError` naming the quantity, the module,
its learner and the step; checkpoints written before that step are left as they were (the last
good one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from biocredit.errors import BiocreditError
from biocredit.learners import LocalNetwork

# Float dtypes NumPy has too (others, such as bfloat16, are checked by torch).
NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


class DivergenceError(BiocreditError):
    """A NaN or inf appeared in the run."""


def _nonfinite(value: Any) -> bool:
    if isinstance(value, (list, tuple)):  # per-tensor norms: a NaN or inf anywhere shows there
        return not bool(torch.isfinite(torch.stack(value)).all())
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return False
        if value.device.type != "cpu" or value.dtype not in NUMPY_FLOATS:
            return not bool(torch.isfinite(value).all())
        value = value.detach().numpy()  # a view: NumPy checks small arrays in half torch's time
    array = np.asarray(value)
    if array.dtype.kind not in "fc":  # integers and booleans are always finite
        return False
    return not bool(np.isfinite(array).all())


def learner_of(module: nn.Module) -> str:
    """Names of the learners inside ``module`` (``"-"`` for a free parameter)."""
    names = sorted({m.learner.name for m in module.modules() if isinstance(m, LocalNetwork)})
    return "+".join(names) or "-"


class DivergenceGuard:
    """Checks values as the run produces them; ``step`` is the env-step counter to report."""

    def __init__(self, modules: dict[str, nn.Module], step: Callable[[], int]) -> None:
        self.modules = modules
        self.step = step
        self.params = [param for module in modules.values() for param in module.parameters()]
        self.scanned_versions: list[int] = []

    def fail(self, what: str, module: str | None = None) -> None:
        where = ""
        if module is not None:
            where = f" in module '{module}' (learner {learner_of(self.modules[module])})"
        raise DivergenceError(
            f"Divergence at env step {self.step()}: {what} is not finite{where}. The run stopped "
            "here; the last checkpoint written before this step is intact. Lower the learning "
            "rate, check the env's observations and rewards, or try another learner."
        )

    def check_values(self, **values: Any) -> None:
        """``check_values(observation=obs, reward=r)``: each must be finite."""
        for name, value in values.items():
            if value is not None and _nonfinite(value):
                self.fail(name)

    def check_parameters(self, *kinds: str) -> None:
        """Check every ``.grad`` (``"update"``) and/or every parameter (``"weight"``): one fused
        norm over all of them, and only when it is not finite a scan to name the first culprit
        (updates before weights: a bad update is what makes a weight bad)."""
        tensors = [
            value
            for kind in kinds
            for param in self.params
            if (value := param.grad if kind == "update" else param) is not None
        ]
        if not tensors or not _nonfinite(torch._foreach_norm(tensors)):
            if "weight" in kinds:
                self.scanned_versions = self.weight_versions()
            return
        for kind in kinds:
            for module_name, module in self.modules.items():
                for name, param in module.named_parameters():
                    value = param.grad if kind == "update" else param
                    if value is not None and _nonfinite(value):
                        self.fail(f"the {kind} of '{name}'", module_name)

    def weight_versions(self) -> list[int]:
        """Each weight's version counter, which every in-place write bumps (an optimizer step, a
        Polyak update, ``weight[i] = x`` under ``no_grad``; not a write through ``.data``)."""
        return [param._version for param in self.params]

    def check_changed_weights(self) -> None:
        """Check the weights if any was written since they were last found finite: an unchanged
        version counter means unchanged values, so a step that wrote nothing costs no scan."""
        if self.weight_versions() != self.scanned_versions:
            self.check_parameters("weight")

    def check_step(self) -> None:
        """After an optimizer step: a bad update always leaves a bad weight, so one fused check
        of the weights covers both; only on failure are the updates scanned first, to name
        the cause."""
        if math.isfinite(torch.stack(torch._foreach_norm(self.params)).sum().item()):
            return  # one sum of the norms: any NaN or inf makes it non-finite
        self.check_parameters("update", "weight")

    def watch(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        """Check updates before and weights after every ``step()`` of ``optimizers``."""
        for optimizer in optimizers:
            optimizer.register_step_pre_hook(lambda *_: self.check_parameters("update"))
            optimizer.register_step_post_hook(lambda *_: self.check_parameters("weight"))
