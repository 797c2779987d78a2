"""Which kind of run a config asks for."""

from __future__ import annotations

from typing import Any

from biocredit.envs.multiagent import is_multiagent
from biocredit.training.config import RunConfig
from biocredit.training.multiagent_online import MultiAgentOnlineRun
from biocredit.training.multiagent_sb3 import MultiAgentSB3Run
from biocredit.training.online import OnlineRun
from biocredit.training.run import TrainingRun
from biocredit.training.sb3_runner import SB3Run


def run_class(config: RunConfig) -> type[TrainingRun]:
    """A native agent or an SB3 algorithm, on a Gymnasium or a PettingZoo env."""
    if is_multiagent(config.env):
        return MultiAgentOnlineRun if config.agent else MultiAgentSB3Run
    return OnlineRun if config.agent else SB3Run


def train_any(config: RunConfig, progress: bool = False) -> dict[str, Any]:
    """Start and run ``config`` to the end; return its summary."""
    return run_class(config).start(config).run(None, progress)
