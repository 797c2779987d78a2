"""Convolutional layers for local learning rules: the forward pass, the conv kernels the rules
share, and :class:`ConvLearner`, the base class of the learners whose rule extends to convs.

A conv layer is a dense layer whose synapses share weights across positions, so every
error-driven rule carries over unchanged once two products are written for it:

- the weight update, the correlation of the layer's local error ``delta`` (one value per output
  unit, an ``(N, C_out, H', W')`` map) with its input ``x``, summed over positions:

      dW[o, i, u, v] = sum_{n, p, q} delta[n, o, p, q] x[n, i, s p + u - pad, s q + v - pad]
      db[o] = sum_{n, p, q} delta[n, o, p, q]

  (``torch.nn.grad.conv2d_weight``: :func:`conv_weight_grads`);
- a message sent down through a kernel ``M`` of the layer's weight shape, the transposed
  convolution ``delta * M`` (``torch.nn.grad.conv2d_input``: :func:`conv_message`), with
  ``M = W`` for backprop and a fixed random ``B`` for feedback alignment.

Pooling and flattening have no synapses: an error crosses a max pooling to the unit that won
its window (the pooling unit's own derivative), an average pooling spreads it evenly over the
window, and a flatten only reshapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biocredit.learners.activations import Activation
from biocredit.learners.base import ErrorDrivenLearner, ForwardCache, linear_grads
from biocredit.learners.conv_spec import ConvSpec


@dataclass(frozen=True)
class Geometry:
    """The fixed wiring of a conv layer's synapses: kernel size, stride and padding (no
    activity, no weight)."""

    kernel: tuple[int, int, int, int]  # (C_out, C_in, k, k), the weight's shape
    stride: tuple[int, int]
    padding: tuple[int, int]

    @classmethod
    def of(cls, layer: nn.Conv2d) -> Geometry:
        return cls(tuple(layer.weight.shape), layer.stride, layer.padding)  # type: ignore[arg-type]


def conv_weight_grads(delta: Tensor, pre: Tensor, geometry: Geometry) -> tuple[Tensor, Tensor]:
    """Gradient-sign update of one conv layer from its local error map and its input map:
    ``dW = delta (star) x`` (the correlation above), ``db = sum_{batch, positions} delta``."""
    weight = torch.nn.grad.conv2d_weight(
        pre, geometry.kernel, delta, geometry.stride, geometry.padding
    )
    return weight, delta.sum((0, 2, 3))


def conv_message(
    delta: Tensor, feedback: Tensor, geometry: Geometry, in_shape: Sequence[int]
) -> Tensor:
    """``delta`` sent down through the kernel ``feedback`` (shaped like the layer's weight): the
    transposed convolution, an ``in_shape`` map with one value per input unit."""
    return torch.nn.grad.conv2d_input(
        list(in_shape), feedback, delta, geometry.stride, geometry.padding
    )


@dataclass
class ConvCache(ForwardCache):
    """A conv network's forward record. ``inputs[l]`` is what weight layer ``l`` reads (a map
    for a conv, flat for a dense layer); ``pre_activations[l]`` and ``activities[l]`` are hidden
    layer ``l``'s ``a_l`` and ``f(a_l)`` (conv maps before pooling); ``winners[l]`` the units
    that won conv layer ``l``'s max pooling (``None``: no max pooling)."""

    activities: list[Tensor] = field(default_factory=list)
    winners: list[Tensor | None] = field(default_factory=list)


def pool(h: Tensor, size: int, kind: str) -> tuple[Tensor, Tensor | None]:
    """Non-overlapping ``size x size`` pooling of a map (``size`` 1: none) and, for max pooling,
    the winners' indices."""
    if size == 1:
        return h, None
    if kind == "max":
        return F.max_pool2d(h, size, return_indices=True)
    return F.avg_pool2d(h, size), None


def unpool(message: Tensor, size: int, winners: Tensor | None, shape: Sequence[int]) -> Tensor:
    """An error on a pooled map carried back to the ``shape`` map before pooling: to each
    window's winner (max) or spread evenly over the window (average); units the pooling left
    out (the edge when ``size`` does not divide the map) get none."""
    if size == 1:
        return message
    if winners is not None:
        return F.max_unpool2d(message, winners, size, output_size=list(shape[-2:]))
    spread = message.repeat_interleave(size, 2).repeat_interleave(size, 3) / size**2
    return F.pad(spread, (0, shape[-1] - spread.shape[-1], 0, shape[-2] - spread.shape[-2]))


def conv_forward(
    layers: Sequence[nn.Module], spec: ConvSpec, activation: Activation, x: Tensor, record: bool
) -> tuple[Tensor, ConvCache | None]:
    """Feedforward inference: ``h_l = pool(f(conv_l(h_{l-1})))`` for the conv layers, flatten,
    ``h_l = f(W_l h_{l-1} + b_l)`` for the hidden dense layers, a linear output layer."""
    f = activation.fn
    cache = ConvCache([x], [], x) if record else None
    n_conv = len(spec.convs)
    h = x
    for conv, layer in zip(spec.convs, layers[:n_conv], strict=True):
        assert isinstance(layer, nn.Conv2d)
        a = F.conv2d(h, layer.weight, layer.bias, layer.stride, layer.padding)
        h = f(a)
        if cache is not None:
            cache.pre_activations.append(a)
            cache.activities.append(h)
        h, winners = pool(h, conv.pool, spec.pooling)
        if cache is not None:
            cache.winners.append(winners)
            cache.inputs.append(h)
    h = h.flatten(1)
    *hidden, out = layers[n_conv:]
    if cache is not None:
        cache.inputs[-1] = h
    for layer in hidden:
        assert isinstance(layer, nn.Linear)
        a = torch.addmm(layer.bias, h, layer.weight.t())
        h = f(a)
        if cache is not None:
            cache.pre_activations.append(a)
            cache.activities.append(h)
            cache.inputs.append(h)
    assert isinstance(out, nn.Linear)
    y = torch.addmm(out.bias, h, out.weight.t())
    if cache is not None:
        cache.output = y
    return y, cache


def layer_grads(layer: nn.Module, delta: Tensor, pre: Tensor) -> tuple[Tensor, Tensor]:
    """``(dW, db)`` of a conv or dense layer from its local error and its input."""
    if isinstance(layer, nn.Conv2d):
        return conv_weight_grads(delta, pre, Geometry.of(layer))
    return linear_grads(delta, pre)


def send_down(layer: nn.Module, delta: Tensor, feedback: Tensor, pre: Tensor) -> Tensor:
    """``delta`` through ``feedback`` (shaped like ``layer``'s weight), to the layer's input
    units: a transposed convolution for a conv, ``delta B`` for a dense layer."""
    if isinstance(layer, nn.Conv2d):
        return conv_message(delta, feedback, Geometry.of(layer), pre.shape)
    return delta.mm(feedback)


def hidden_error(
    spec: ConvSpec, cache: ConvCache, l: int, message: Tensor, activation: Activation
) -> Tensor:
    """Hidden layer ``l``'s local error from the message that reached its (pooled, flattened)
    output: carried back through the pooling to the units, times their slope ``f'(a_l)``."""
    a, h = cache.pre_activations[l], cache.activities[l]
    if l < len(spec.convs):
        pooled = spec.map_shapes[l][1]
        message = unpool(
            message.reshape(-1, *pooled), spec.convs[l].pool, cache.winners[l], a.shape
        )
    return activation.gate(message, a, h)


def conv_backward_chain(
    layers: Sequence[nn.Module],
    spec: ConvSpec,
    cache: ConvCache,
    error: Tensor,
    feedback: Sequence[Tensor],
    activation: Activation,
    input_grad: bool,
) -> tuple[Tensor | None, list[Tensor]]:
    """Send ``error`` down the layers through ``feedback[l]`` (``W_l`` for BP, ``B_l`` for FA):
    ``delta_l = unpool(delta_{l+1} (x) M_{l+1}) * f'(a_l)``, ``(x)`` the transposed conv or the
    matrix product."""
    grads: list[Tensor] = []
    delta, grad_x = error, None
    for l in range(len(layers) - 1, -1, -1):
        grads[:0] = layer_grads(layers[l], delta, cache.inputs[l])
        if l == 0 and not input_grad:
            break
        message = send_down(layers[l], delta, feedback[l], cache.inputs[l])
        if l == 0:
            grad_x = message
        else:
            delta = hidden_error(spec, cache, l - 1, message, activation)
    return grad_x, grads


class ConvLearner(ErrorDrivenLearner):
    """An error-driven learner whose rule extends to conv layers
    (:class:`~biocredit.learners.conv_network.ConvNetwork`).

    It builds its state from a :class:`ConvSpec` in :meth:`build_state` as from a
    :class:`~biocredit.learners.spec.NetworkSpec` (both give ``sizes``, ``weight_shapes``,
    ``out_features`` and ``input_error``) and assigns credit on a conv network's record in
    :meth:`assign_conv_credit`.
    """

    update_kernels = (linear_grads, conv_weight_grads)

    def assign_conv_credit(
        self,
        layers: Sequence[nn.Module],
        spec: ConvSpec,
        cache: ConvCache,
        error: Tensor,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        """:meth:`assign_credit` for a conv network: the input's error signal (``None`` unless
        ``input_grad``) and ``[dW_1, db_1, ..., dW_L, db_L]``, conv layers first."""
        raise NotImplementedError
