"""Signal propagation: the input-target loss's kernel against autograd, every layer's update
against autograd of its own local loss (both streams, inputs held), the output layer's delta
rule, and a probe showing that no layer's update reads the weights of the layers above it."""

import math

import pytest
import torch

from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec, make_learner
from biocredit.learners.sigprop import standardise, target_match_errors

SPEC = NetworkSpec(5, (8, 7, 6), 3, "tanh")


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def match_loss(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The paper's input-target loss with each input's own target as its match:
    ``(1/B) sum_i (LSE_j z_ij - z_ii)``, ``z_ij = h_i . t_j - ||t_j||^2 / 2``."""
    logits = h @ t.T - 0.5 * (t * t).sum(1)
    return torch.nn.functional.cross_entropy(logits, torch.arange(h.shape[0]))


def test_target_match_errors_are_the_loss_derivatives():
    torch.manual_seed(0)
    h, t = torch.randn(9, 6, requires_grad=True), torch.randn(9, 6, requires_grad=True)
    expected = torch.autograd.grad(match_loss(h, t), [h, t])
    got = target_match_errors(h.detach(), t.detach())
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
    # logits are negative squared distances up to a per-row constant
    logits = h @ t.T - 0.5 * (t * t).sum(1)
    distances = -0.5 * torch.cdist(h, t).square()
    torch.testing.assert_close(logits - logits[:, :1], distances - distances[:, :1])


def test_standardise_and_a_batch_of_one():
    target = torch.tensor([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    torch.testing.assert_close(
        standardise(target), torch.tensor([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]) * 1.5**0.5
    )
    assert not standardise(torch.tensor([[2.0, -1.0]])).any()


def reference_update(net: LocalNetwork, x: torch.Tensor, error: torch.Tensor):
    """The paper's procedure in plain torch: the context ``-e``, standardised and projected,
    forwarded beside the input; each hidden layer's parameters get autograd's gradient of its
    own loss, through both streams, with the layer's inputs held; the output layer the delta
    rule."""
    layers, learner = net.layers, net.learner
    f = learner.activation.fn
    with torch.no_grad():
        h = [x]
        for layer in layers[:-1]:
            h.append(f(layer(h[-1])))
        t = standardise(-error) @ learner.projection
    grads = []
    for l, layer in enumerate(layers[:-1]):
        loss = match_loss(f(layer(h[l])), f(layer(t)))
        grads += torch.autograd.grad(loss, [layer.weight, layer.bias])
        with torch.no_grad():
            t = f(layer(t))
    return [*grads, error.T @ h[-1], error.sum(0)], error @ learner.projection


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_update_is_each_layers_local_loss_gradient_and_the_delta_rule(activation):
    torch.manual_seed(1)
    net = LocalNetwork(NetworkSpec(5, (8, 7, 6), 3, activation), "sigprop")
    x, error = torch.randn(16, 5, requires_grad=True), torch.randn(16, 3)
    net(x).backward(error)
    expected, input_error = reference_update(net, x.detach(), error)
    for got, want in zip([p.grad for p in net.parameters_in_order()], expected, strict=True):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(x.grad, input_error)


def test_the_local_loss_falls_under_its_own_update():
    """A small step along each hidden layer's update lowers that layer's loss on the same
    inputs of its two streams."""
    torch.manual_seed(2)
    net = LocalNetwork(SPEC, "sigprop")
    x, error = torch.randn(32, 5), torch.randn(32, 3)
    net(x).backward(error)
    layers = net.layers[:-1]
    with torch.no_grad():
        h, hs = x, []
        for layer in layers:
            hs.append(h)
            h = torch.tanh(layer(h))
        t, ts = standardise(-error) @ net.learner.projection, []
        for layer in layers:
            ts.append(t)
            t = torch.tanh(layer(t))

        def losses() -> list[float]:
            streams = zip(layers, hs, ts, strict=True)
            return [float(match_loss(torch.tanh(m(h)), torch.tanh(m(t)))) for m, h, t in streams]

        before = losses()
        for layer in layers:
            for p in (layer.weight, layer.bias):
                p -= 0.05 * p.grad
        after = losses()
    assert all(a < b for a, b in zip(after, before, strict=True)), (before, after)


def updates_with_layers_above_poisoned(name: str, poisoned_from: int) -> list[torch.Tensor]:
    """One credit assignment after the recorded forward pass, with the weights and biases of
    every weight layer from ``poisoned_from`` up set to NaN."""
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, name)
    x, error = torch.randn(8, 5), torch.randn(8, 3)
    with torch.no_grad():
        _, cache = net.learner.forward_pass(net.layers, x, record=True)
        for layer in net.layers[poisoned_from:]:
            layer.weight.fill_(math.nan)
            layer.bias.fill_(math.nan)
        return net.learner.assign_credit(net.layers, cache, error, input_grad=False)[1]


def test_no_layer_update_reads_the_weights_above_it():
    """Forward only: layer ``l``'s update is bitwise the same with every layer above it
    poisoned, for every ``l``; the same probe makes backprop's updates NaN (it can fail)."""
    clean = updates_with_layers_above_poisoned("sigprop", len(SPEC.sizes))
    assert all(bool(g.isfinite().all()) for g in clean)
    n_layers = len(SPEC.sizes) - 1
    for above in range(1, n_layers):
        poisoned = updates_with_layers_above_poisoned("sigprop", above)
        for got, want in zip(poisoned[: 2 * above], clean[: 2 * above], strict=True):
            assert torch.equal(got, want), above
    backprop = updates_with_layers_above_poisoned("bp", n_layers - 1)
    assert not bool(backprop[0].isfinite().all())


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"nudge": 0.1}, ["sigprop", "does not accept", "nudge"]),
        ({"projection": "learned"}, ["sigprop", "does not accept", "projection"]),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, words):
    with pytest.raises(ConfigError) as info:
        make_learner("sigprop", **kwargs)
    for word in words:
        assert word in str(info.value)
