"""Which kind of run a config asks for: the one place that knows every run class."""

from __future__ import annotations

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
