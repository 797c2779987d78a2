"""Pointwise activations together with the derivative a local rule needs.

Every error-driven learner multiplies a feedback signal by ``f'(a_l)``, the slope of the
unit's own activation at its own pre-activation: a quantity local to the post-synaptic neuron.
The derivative takes both the pre-activation ``a`` and the output ``h = f(a)`` so each function
uses whichever is cheaper (``tanh' = 1 - h^2``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from biocredit.errors import unknown_name


@dataclass(frozen=True)
class Activation:
    """An activation ``h = f(a)`` and its derivative ``f'(a)``."""

    name: str
    fn: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor, Tensor], Tensor]  # (a, h) -> f'(a)
    #: ``(signal, a, h) -> signal * f'(a)`` in one kernel, where torch has one
    fused_gate: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None

    def gate(self, signal: Tensor, a: Tensor, h: Tensor) -> Tensor:
        """A unit's local error from the signal that reaches it: ``signal * f'(a)``.

        For tanh, ReLU and sigmoid this is the single kernel autograd runs for the same step
        (``tanh_backward``, ``threshold_backward``, ``sigmoid_backward``), so a local rule pays
        no more per layer than backprop does.
        """
        if self.fused_gate is not None:
            return self.fused_gate(signal, a, h)
        return signal * self.derivative(a, h)


def _leaky_relu_derivative(a: Tensor, h: Tensor) -> Tensor:
    return torch.where(a > 0, 1.0, 0.01).to(a.dtype)


def _elu_derivative(a: Tensor, h: Tensor) -> Tensor:
    return torch.where(a > 0, torch.ones_like(a), h + 1.0)


def _hard_tanh_derivative(a: Tensor, h: Tensor) -> Tensor:
    return ((a > -1.0) & (a < 1.0)).to(a.dtype)


def _silu_derivative(a: Tensor, h: Tensor) -> Tensor:
    s = torch.sigmoid(a)
    return s * (1.0 + a * (1.0 - s))


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(
        "tanh",
        torch.tanh,
        lambda a, h: 1.0 - h * h,
        lambda g, a, h: torch.ops.aten.tanh_backward(g, h),
    ),
    "relu": Activation(  # h > 0 iff a > 0
        "relu",
        torch.relu,
        lambda a, h: torch.sign(h),
        lambda g, a, h: torch.ops.aten.threshold_backward(g, h, 0.0),
    ),
    "leaky_relu": Activation("leaky_relu", torch.nn.functional.leaky_relu, _leaky_relu_derivative),
    "elu": Activation("elu", torch.nn.functional.elu, _elu_derivative),
    "silu": Activation("silu", torch.nn.functional.silu, _silu_derivative),
    "sigmoid": Activation(
        "sigmoid",
        torch.sigmoid,
        lambda a, h: h * (1.0 - h),
        lambda g, a, h: torch.ops.aten.sigmoid_backward(g, h),
    ),
    "hard_tanh": Activation("hard_tanh", torch.nn.functional.hardtanh, _hard_tanh_derivative),
    "identity": Activation("identity", lambda a: a, lambda a, h: torch.ones_like(a)),
}

# torch.nn classes SB3 users pass as ``activation_fn``, by the name biocredit uses for them.
TORCH_ACTIVATION_NAMES: dict[type[torch.nn.Module], str] = {
    torch.nn.Tanh: "tanh",
    torch.nn.ReLU: "relu",
    torch.nn.LeakyReLU: "leaky_relu",
    torch.nn.ELU: "elu",
    torch.nn.SiLU: "silu",
    torch.nn.Sigmoid: "sigmoid",
    torch.nn.Hardtanh: "hard_tanh",
    torch.nn.Identity: "identity",
}


def get_activation(name: str) -> Activation:
    """Look up an activation by name; unknown names raise with the valid choices."""
    if name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]
