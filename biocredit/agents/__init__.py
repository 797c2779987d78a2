"""Agents built from modules that each learn by their own credit-assignment scheme."""

from biocredit.agents.active_inference import ActiveInferenceAgent
from biocredit.agents.active_inference_config import ActiveInferenceConfig
from biocredit.agents.config import AgentConfig, NetworkConfig, agent_config_from_dict
from biocredit.agents.modular import ModularAgent
from biocredit.agents.registry import Agent, agent_config, list_agents, make_agent

__all__ = [
    "ActiveInferenceAgent",
    "ActiveInferenceConfig",
    "Agent",
    "AgentConfig",
    "ModularAgent",
    "NetworkConfig",
    "agent_config",
    "agent_config_from_dict",
    "list_agents",
    "make_agent",
]
