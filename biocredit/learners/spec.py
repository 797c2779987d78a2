"""The shape of a local network: layer sizes, activation, output size."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from biocredit.errors import ConfigError
from biocredit.learners.activations import get_activation


@dataclass(frozen=True)
class NetworkSpec:
    """A fully connected network ``in_features -> hidden... -> out_features``.

    Hidden layers use ``activation``; the output layer is linear, so its error ``dL/dy`` is also
    the error of its pre-activation.
    """

    in_features: int
    hidden: tuple[int, ...]
    out_features: int
    activation: str = "tanh"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        sizes = {"in_features": self.in_features, "out_features": self.out_features}
        sizes.update({f"hidden[{i}]": n for i, n in enumerate(self.hidden)})
        for key, size in sizes.items():
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ConfigError(
                    f"Network size {key}={size!r} is not a positive integer. "
                    "Layer sizes must be integers >= 1, e.g. hidden: [64, 64]."
                )
        get_activation(self.activation)

    @property
    def sizes(self) -> tuple[int, ...]:
        """All layer widths, input first: ``(in, h1, ..., out)``."""
        return (self.in_features, *self.hidden, self.out_features)

    @property
    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Each weight layer's weight shape, ``(n_out, n_in)``."""
        return [(n_out, n_in) for n_in, n_out in pairwise(self.sizes)]

    @property
    def input_error(self) -> bool:
        """A dense network may hand an error to its input (an upstream module)."""
        return True

    @property
    def n_layers(self) -> int:
        """Number of weight layers."""
        return len(self.hidden) + 1
