"""The shape of a local convolutional network: conv layers, then dense layers.

    x (C, H, W) -> [conv (stride, padding) -> f -> optional pooling] x K -> flatten
                -> [dense -> f] x len(hidden) -> dense -> y (out_features)

Every conv and hidden dense layer uses ``activation``; the output layer is linear, so its error
``dL/dy`` is also the error of its pre-activation, as in
:class:`~biocredit.learners.spec.NetworkSpec`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any

from biocredit.errors import ConfigError, check_keys, unknown_name
from biocredit.learners.activations import get_activation

POOLINGS = ("max", "avg")

#: NatureCNN's conv layers (Mnih et al. 2015, Nature 518:529), SB3's ``CnnPolicy`` trunk
NATURE_CONVS: tuple[dict[str, int], ...] = (
    {"channels": 32, "kernel": 8, "stride": 4},
    {"channels": 64, "kernel": 4, "stride": 2},
    {"channels": 64, "kernel": 3, "stride": 1},
)


def _positive(value: Any, key: str, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(
            f"Conv network {key}={value!r} is not an integer >= {minimum}. "
            "Example conv layer: {channels: 32, kernel: 8, stride: 4}."
        )


@dataclass(frozen=True)
class ConvLayerSpec:
    """One conv layer: ``channels`` output maps of ``kernel x kernel`` filters moved by
    ``stride`` over the input padded by ``padding`` zeros, then the activation, then (``pool >
    1``) non-overlapping ``pool x pool`` pooling."""

    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    pool: int = 1

    def __post_init__(self) -> None:
        for item in fields(self):
            _positive(getattr(self, item.name), item.name, 0 if item.name == "padding" else 1)

    @classmethod
    def parse(cls, value: ConvLayerSpec | Mapping[str, Any], where: str) -> ConvLayerSpec:
        """A layer from a config mapping (``{channels: 32, kernel: 8, stride: 4}``)."""
        if isinstance(value, ConvLayerSpec):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{where} must be a mapping such as {{channels: 32, kernel: 8, stride: 4}}, "
                f"got {value!r}."
            )
        check_keys(value, [item.name for item in fields(cls)], where)
        for key in ("channels", "kernel"):
            if key not in value:
                raise ConfigError(f"{where} needs '{key}', got {dict(value)!r}.")
        return cls(**value)


@dataclass(frozen=True)
class ConvSpec:
    """A conv network reading ``in_shape = (C, H, W)`` maps (channel first, as SB3 feeds them).

    :param input_error: whether the network hands an error to its input (an upstream module);
        off by default, since a conv network reads observations (dfa then keeps no feedback
        matrix for the input, which would be as large as the image times the outputs)
    """

    in_shape: tuple[int, int, int]
    convs: tuple[ConvLayerSpec, ...]
    hidden: tuple[int, ...]
    out_features: int
    activation: str = "relu"
    pooling: str = "max"
    input_error: bool = False

    def __post_init__(self) -> None:
        shape = tuple(self.in_shape)
        if len(shape) != 3:
            raise ConfigError(
                f"A conv network reads (channels, height, width) maps, got input shape {shape}."
            )
        for key, value in zip(("channels", "height", "width"), shape, strict=True):
            _positive(value, f"input {key}")
        convs = tuple(ConvLayerSpec.parse(c, f"convs[{i}]") for i, c in enumerate(self.convs))
        if not convs:
            raise ConfigError("A conv network needs at least one conv layer, got convs: [].")
        object.__setattr__(self, "in_shape", shape)
        object.__setattr__(self, "convs", convs)
        object.__setattr__(self, "hidden", tuple(self.hidden))
        for i, n in enumerate(self.hidden):
            _positive(n, f"hidden[{i}]")
        _positive(self.out_features, "out_features")
        get_activation(self.activation)
        if self.pooling not in POOLINGS:
            raise unknown_name("pooling", self.pooling, POOLINGS)
        self.map_shapes  # noqa: B018  (raises when a kernel does not fit its input map)

    @property
    def map_shapes(self) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
        """Each conv layer's output map ``(C, H, W)`` before and after its pooling."""
        shapes = []
        _, height, width = self.in_shape
        for i, conv in enumerate(self.convs):
            span = 2 * conv.padding - conv.kernel
            size = [(n + span) // conv.stride + 1 for n in (height, width)]
            pooled = [n // conv.pool for n in size]
            if min(pooled) < 1:
                raise ConfigError(
                    f"convs[{i}] ({conv.kernel}x{conv.kernel} kernel, stride {conv.stride}, "
                    f"padding {conv.padding}, pool {conv.pool}) does not fit its {height}x{width} "
                    f"input map. Use a smaller kernel, stride or pool, or fewer conv layers, "
                    f"for a {self.in_shape} input."
                )
            shapes.append(((conv.channels, *size), (conv.channels, *pooled)))
            height, width = pooled
        return shapes  # type: ignore[return-value]

    @property
    def flat_features(self) -> int:
        """Units of the last conv layer's (pooled) map, the first dense layer's input."""
        return math.prod(self.map_shapes[-1][1])

    @property
    def sizes(self) -> tuple[int, ...]:
        """Units per layer, input first: the input map, each conv's output map (before pooling:
        the units whose activation the rule reads), the hidden and output widths."""
        maps = tuple(math.prod(before) for before, _ in self.map_shapes)
        return (math.prod(self.in_shape), *maps, *self.hidden, self.out_features)

    @property
    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Each weight layer's weight shape: ``(C_out, C_in, k, k)`` for a conv, then ``(n_out,
        n_in)`` for the dense layers."""
        shapes: list[tuple[int, ...]] = []
        channels = self.in_shape[0]
        for conv in self.convs:
            shapes.append((conv.channels, channels, conv.kernel, conv.kernel))
            channels = conv.channels
        widths = (self.flat_features, *self.hidden, self.out_features)
        shapes.extend((n_out, n_in) for n_in, n_out in pairwise(widths))
        return shapes

    @property
    def n_layers(self) -> int:
        """Number of weight layers (conv and dense)."""
        return len(self.convs) + len(self.hidden) + 1


def conv_layers(convs: Sequence[ConvLayerSpec | Mapping[str, Any]] | None) -> tuple[Any, ...]:
    """``convs`` as given, or NatureCNN's three layers when ``None``."""
    return tuple(NATURE_CONVS if convs is None else convs)
