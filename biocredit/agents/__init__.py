"""Agents built from modules that each learn by their own credit-assignment scheme."""

from biocredit.agents.config import AgentConfig, NetworkConfig, agent_config_from_dict
from biocredit.agents.modular import ModularAgent
from biocredit.agents.registry import agent_config, list_agents

__all__ = [
    "AgentConfig",
    "ModularAgent",
    "NetworkConfig",
    "agent_config",
    "agent_config_from_dict",
    "list_agents",
]
