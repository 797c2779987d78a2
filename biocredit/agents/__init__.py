"""Agents built from modules that each learn by their own credit-assignment scheme."""

from biocredit.agents.actor_critic import ActorCriticConfig, OnlineActorCritic
from biocredit.agents.networks import NetworkConfig
from biocredit.agents.registry import agent_config, list_agents

__all__ = ["ActorCriticConfig", "NetworkConfig", "OnlineActorCritic", "agent_config", "list_agents"]
