"""Binary image observations (MinAtar's maps) as the float images SB3's conv policies read.

MinAtar (Young & Tian 2019) observes a 10x10 grid of ``C`` boolean channels, channel-last:
``Box(False, True, (10, 10, C), bool)``. SB3 scales and transposes only ``uint8`` images, so
:class:`BinaryImageObservation` hands them on as ``float32`` maps, channels first, values 0 and
1: ``Box(0, 1, (C, H, W), float32)``, which SB3 treats as an image already normalised
(``is_image_space(space, normalized_image=True)``) and ``BioCnnExtractor`` reads without
scaling (``normalized_image=True``).

:func:`image_observations` applies it wherever biocredit builds envs, to every env whose
observations are a three-dimensional ``bool`` Box (channel-last, Gymnasium's image layout); other
envs pass through unchanged.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def is_binary_image(space: spaces.Space) -> bool:
    """A three-dimensional ``bool`` Box: a stack of binary maps, channel-last."""
    return isinstance(space, spaces.Box) and space.dtype == np.bool_ and len(space.shape) == 3


class BinaryImageObservation(gym.ObservationWrapper):
    """``(H, W, C)`` bool maps -> ``(C, H, W)`` float32 maps of 0 and 1."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not is_binary_image(space):
            raise ValueError(f"BinaryImageObservation reads (H, W, C) bool maps, got {space}.")
        height, width, channels = space.shape  # type: ignore[misc]
        self.observation_space = spaces.Box(0.0, 1.0, (channels, height, width), np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(observation, -1, 0), dtype=np.float32)


def image_observations(env: gym.Env) -> gym.Env:
    """``env`` with :class:`BinaryImageObservation` if it observes binary maps, else as is."""
    return BinaryImageObservation(env) if is_binary_image(env.observation_space) else env
