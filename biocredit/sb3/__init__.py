"""Stable-Baselines3 policies whose networks are trained end to end by a biocredit learner."""

from biocredit.sb3.actor_critic import BioActorCriticNetworks, BioActorCriticPolicy, BioCnnPolicy
from biocredit.sb3.conv_features import BioCnnExtractor
from biocredit.sb3.features import BioFeaturesExtractor
from biocredit.sb3.multi_input import BioCombinedExtractor
from biocredit.sb3.off_policy import (
    BioCnnDQNPolicy,
    BioCnnSACPolicy,
    BioCnnTD3Policy,
    BioDQNPolicy,
    BioSACPolicy,
    BioTD3Policy,
)

__all__ = [
    "BioActorCriticNetworks",
    "BioActorCriticPolicy",
    "BioCnnDQNPolicy",
    "BioCnnExtractor",
    "BioCnnPolicy",
    "BioCnnSACPolicy",
    "BioCnnTD3Policy",
    "BioCombinedExtractor",
    "BioDQNPolicy",
    "BioFeaturesExtractor",
    "BioSACPolicy",
    "BioTD3Policy",
]
