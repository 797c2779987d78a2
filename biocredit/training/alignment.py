"""The alignment diagnostic in runs: monitors on every local network, their values logged.

``alignment_every: N`` attaches an :class:`~biocredit.learners.alignment.AlignmentMonitor` to
each local network's learner; every N-th credit assignment of a network records the cosine of
each layer's update to backprop's gradient of the same loss, logged to TensorBoard and
``progress.csv`` as ``alignment/<network>/layer<l>`` (and ``angle<l>`` in degrees).
"""

from __future__ import annotations

from collections.abc import Mapping

from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from biocredit.learners import LocalNetwork
from biocredit.learners.alignment import AlignmentMonitor


def attach_monitors(modules: Mapping[str, nn.Module], every: int) -> dict[str, AlignmentMonitor]:
    """One monitor per local network among ``modules`` (by name); none when ``every`` is 0."""
    if every == 0:
        return {}
    monitors = {}
    for name, module in modules.items():
        if isinstance(module, LocalNetwork):
            module.learner.alignment = monitors[name] = AlignmentMonitor(every)
    return monitors


def fresh_alignment(monitors: Mapping[str, AlignmentMonitor]) -> dict[str, float]:
    """The values of every monitor that recorded since it was last read."""
    values: dict[str, float] = {}
    for name, monitor in monitors.items():
        if monitor.fresh:
            values.update(monitor.read(name))
    return values


class AlignmentCallback(BaseCallback):
    """Hands fresh alignment values to SB3's logger, which writes them with its next dump."""

    def __init__(self, monitors: Mapping[str, AlignmentMonitor]) -> None:
        super().__init__()
        self.monitors = monitors

    def _on_step(self) -> bool:
        for key, value in fresh_alignment(self.monitors).items():
            self.logger.record(key, value)
        return True

    def _on_rollout_end(self) -> None:
        self._on_step()
