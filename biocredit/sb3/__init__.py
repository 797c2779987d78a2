"""Stable-Baselines3 policies whose networks are trained end to end by a biocredit learner."""

from biocredit.sb3.actor_critic import BioActorCriticNetworks, BioActorCriticPolicy

__all__ = ["BioActorCriticNetworks", "BioActorCriticPolicy"]
