"""Image observations: a local conv network as the features extractor (SB3's ``NatureCNN``
with its layers trained by a learner), which ``BioCnnPolicy`` uses.

:class:`BioCnnExtractor` is NatureCNN's architecture (Mnih et al. 2015: 32 8x8 stride 4, 64 4x4
stride 2, 64 3x3 stride 1, ReLU, flatten, linear 512, ReLU) built as a
:class:`~biocredit.learners.conv_network.ConvNetwork`. The policy and value networks read its
features and hand their input errors back through the features; the conv network's autograd
boundary receives only their sum, ``dL/df``, and its learner (bp, fa or dfa) assigns credit to
every conv and dense layer by its own rule. With dfa the heads' input errors are their direct
projections ``e D_0``, which the conv network projects again onto every layer's map by its own
fixed matrices. The final ReLU sits after the boundary: the error reaching the network is
``dL/df * 1[y > 0]``, the slope of the feature units themselves.

Images go through SB3's own preprocessing: the policy scales uint8 images to [0, 1]
(``normalize_images``), and SB3's algorithms wrap channel-last image envs in
``VecTransposeImage``, so the extractor sees ``(C, H, W)`` maps, as NatureCNN does. Float maps
in [0, 1], channels first (MinAtar's binary maps after
:class:`~biocredit.envs.images.BinaryImageObservation`), are images already normalised
(:func:`image_kind`): read as they are, with ``normalize_images=False`` on the policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor

from biocredit.errors import ConfigError
from biocredit.learners.conv_network import ConvNetwork
from biocredit.learners.conv_spec import ConvSpec, conv_layers
from biocredit.learners.registry import DEFAULT_LEARNER


def image_kind(space: spaces.Space) -> str | None:
    """Whether ``space`` is an image, by SB3's preprocessing rules, and which kind.

    ``"uint8"``: SB3's image (``is_image_space``: a 3-D uint8 Box in [0, 255], either layout;
    the policy scales it, the algorithm moves channel-last images channels first).
    ``"normalized"``: a 3-D float Box in [0, 1] whose smallest dimension is the first (SB3's
    channels-first rule), an image already scaled (``normalized_image=True``), such as
    MinAtar's maps. ``None``: anything else (read by the dense networks, flattened).
    """
    if is_image_space(space):
        return "uint8"
    if (
        isinstance(space, spaces.Box)
        and len(space.shape) == 3
        and np.issubdtype(space.dtype, np.floating)
        and bool(np.all(space.low == 0) and np.all(space.high == 1))
        and int(np.argmin(space.shape)) == 0  # SB3's channels-first rule, without its warning
    ):
        return "normalized"
    return None


class BioCnnExtractor(BaseFeaturesExtractor):
    """Images -> ``features_dim`` features by a local conv network, ReLU on the features.

    ``PPO(BioCnnPolicy, env, policy_kwargs=dict(learner="dfa"))`` builds it with NatureCNN's
    layers (:class:`~biocredit.sb3.actor_critic.BioCnnPolicy`);
    ``features_extractor_kwargs=dict(convs=[{"channels": 8, "kernel": 4, "stride": 2}],
    features_dim=64)`` changes them.

    :param learner: an error-driven learner whose rule extends to convs (``bp``, ``fa``,
        ``dfa``); the biocredit policies set it to the policy's learner
    :param learner_kwargs: its options
    :param convs: conv layers as mappings (``channels``, ``kernel``, ``stride``, ``padding``,
        ``pool``); default NatureCNN's three
    :param hidden: dense layers between the flattened maps and the features (NatureCNN: none)
    :param activation: the conv and hidden units' activation
    :param pooling: ``max`` or ``avg``, for layers with ``pool > 1``
    :param normalized_image: the images are already scaled (SB3's flag: skips the uint8 and
        [0, 255] checks)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        features_dim: int = 512,
        learner: str = DEFAULT_LEARNER,
        learner_kwargs: dict[str, Any] | None = None,
        convs: Sequence[Mapping[str, int]] | None = None,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        pooling: str = "max",
        normalized_image: bool = False,
    ) -> None:
        if not is_image_space(
            observation_space, check_channels=False, normalized_image=normalized_image
        ):
            raise ConfigError(
                f"BioCnnExtractor reads images, got observation space {observation_space}. "
                "It needs a Box of shape (C, H, W) or (H, W, C) with dtype uint8 and bounds "
                "[0, 255] (SB3 moves the channels first); for images already scaled, pass "
                "normalize_images=False to the policy. Use BioActorCriticPolicy for other "
                "observations."
            )
        super().__init__(observation_space, features_dim)
        spec = ConvSpec(
            tuple(observation_space.shape),  # type: ignore[arg-type]
            conv_layers(convs),
            tuple(hidden),
            features_dim,
            activation,
            pooling,
        )
        self.network = ConvNetwork(spec, learner, **(learner_kwargs or {}))

    def forward(self, observations: Tensor) -> Tensor:
        return torch.relu(self.network(observations))


def conv_extractor_defaults(
    kwargs: dict[str, Any], learner: str, learner_kwargs: dict[str, Any] | None
) -> None:
    """A :class:`BioCnnExtractor` learns by the policy's learner (and its options) unless its
    own kwargs name one; with ``normalize_images=False`` it takes the images as scaled (SB3's
    ``normalized_image``, as SB3 sets it for ``NatureCNN``)."""
    extractor_class = kwargs.get("features_extractor_class")
    if not (isinstance(extractor_class, type) and issubclass(extractor_class, BioCnnExtractor)):
        return
    extractor = dict(kwargs.get("features_extractor_kwargs") or {})
    extractor.setdefault("learner", learner)
    if extractor["learner"] == learner:
        extractor.setdefault("learner_kwargs", dict(learner_kwargs or {}))
    if not kwargs.get("normalize_images", True):
        extractor.setdefault("normalized_image", True)
    kwargs["features_extractor_kwargs"] = extractor
