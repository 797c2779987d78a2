"""Difference target propagation: kernels against their formulas, targets with exact inverses
against the network's exact preimages, the inverse rule's fixed point and descent, options."""

import pytest
import torch

from biocredit.errors import ConfigError, UnknownNameError
from biocredit.learners import LocalNetwork, NetworkSpec, make_learner
from biocredit.learners.dtp import (
    dtp_weight_grads,
    local_loss_delta,
    reconstruction_grads,
    target_shift,
)

SQUARE = NetworkSpec(5, (5, 5), 5, "leaky_relu")


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def test_kernels_match_their_formulas():
    torch.manual_seed(0)
    post, shift, fprime, delta, pre = (
        torch.randn(4, 6),
        torch.randn(4, 6),
        torch.rand(4, 6),
        torch.randn(4, 6),
        torch.randn(4, 3),
    )
    v, c = torch.randn(5, 6), torch.randn(5)

    def g(h):
        return torch.tanh(h @ v.t() + c)

    torch.testing.assert_close(target_shift(g, post, shift), g(post + shift) - g(post))
    torch.testing.assert_close(local_loss_delta(shift, fprime), -shift * fprime)
    beta = torch.tensor(0.3)
    grad_w, grad_b = dtp_weight_grads(delta, pre, beta)
    torch.testing.assert_close(grad_w, delta.t() @ pre / 0.3)
    torch.testing.assert_close(grad_b, delta.sum(0) / 0.3)


def test_reconstruction_grads_are_the_gradient_of_the_reconstruction_loss():
    """``V.grad`` and ``c.grad`` from :func:`reconstruction_grads` equal autograd's gradient of
    ``mean_batch ||g(pre) - h~||^2 / 2`` with ``g(pre) = tanh(V pre + c)``."""
    torch.manual_seed(1)
    pre, noisy = torch.randn(7, 4), torch.randn(7, 3)
    v = torch.randn(3, 4, requires_grad=True)
    c = torch.randn(3, requires_grad=True)
    loss = (torch.tanh(pre @ v.t() + c) - noisy).pow(2).sum(1).mean() / 2
    want_w, want_b = torch.autograd.grad(loss, [v, c])
    with torch.no_grad():
        r = torch.tanh(pre @ v.t() + c)
        got_w, got_b = reconstruction_grads((r - noisy) * (1 - r * r), pre)
    torch.testing.assert_close(got_w, want_w)
    torch.testing.assert_close(got_b, want_b)


def leaky_inverse(h: torch.Tensor) -> torch.Tensor:
    return torch.where(h > 0, h, h / 0.01)


def exact_inverse(net: LocalNetwork):
    """``f_l^{-1}``: ``W_l^{-1} (f^{-1}(h) - b_l)``, without ``f^{-1}`` at the linear output."""
    n = len(net.layers)

    def inverse(l: int, post: torch.Tensor) -> torch.Tensor:
        layer = net.layers[l]
        a = post if l == n - 1 else leaky_inverse(post)
        return torch.linalg.solve(layer.weight, (a - layer.bias).t()).t()

    return inverse


def test_targets_with_exact_inverses_are_the_exact_preimages():
    """Invertible layers (square, well-conditioned weights, leaky ReLU) and exact inverses: the
    difference correction sends ``y* = y - beta e`` down to ``h*_{l-1} = f_l^{-1}(h*_l)``, each
    layer's update is ``((h_l - h*_l) f'(a_l))^T h_{l-1} / beta``, the input's error is
    ``(x - x*) / beta``, and every target maps forward onto the one above."""
    torch.manual_seed(2)
    net = LocalNetwork(SQUARE, "dtp", nudge=0.5, relative_nudge=False)
    with torch.no_grad():
        for layer in net.layers:
            q, _ = torch.linalg.qr(torch.randn(5, 5))
            layer.weight.copy_(q * 1.5)
    learner = net.learner
    learner.inverse = exact_inverse(net)
    x, e = torch.randn(8, 5), torch.randn(8, 5)
    with torch.no_grad():
        y, cache = learner.forward_pass(net.layers, x, record=True)
        grad_x, grads = learner.assign_credit(net.layers, cache, e, input_grad=True)

        beta = 0.5
        targets = [y - beta * e]  # h*_L, then down to x*
        for l in range(len(net.layers) - 1, -1, -1):
            targets.insert(0, exact_inverse(net)(l, targets[0]))
        posts = [*cache.inputs, y]
        for l, layer in enumerate(net.layers):
            mapped = targets[l] @ layer.weight.t() + layer.bias
            if l < len(net.layers) - 1:
                mapped = torch.nn.functional.leaky_relu(mapped)
                fprime = torch.where(cache.pre_activations[l] > 0, 1.0, 0.01)
            else:
                fprime = torch.ones_like(y)
            torch.testing.assert_close(mapped, targets[l + 1])  # f_l(h*_{l-1}) = h*_l
            delta = (posts[l + 1] - targets[l + 1]) * fprime
            torch.testing.assert_close(grads[2 * l], delta.t() @ cache.inputs[l] / beta)
            torch.testing.assert_close(grads[2 * l + 1], delta.sum(0) / beta)
        torch.testing.assert_close(grad_x, (x - targets[0]) / beta)


def linear_net_with_exact_inverses(seed: int = 3) -> LocalNetwork:
    """A linear network (identity activation), whose learned inverses ``g_l(h) = V_l h + c_l``
    can be exact: ``V_l = W_l^{-1}``, ``c_l = -W_l^{-1} b_l``."""
    torch.manual_seed(seed)
    net = LocalNetwork(NetworkSpec(4, (4, 4), 4, "identity"), "dtp")
    with torch.no_grad():
        for l, layer in enumerate(net.layers):
            layer.weight.add_(torch.eye(4))
            inverse = torch.linalg.inv(layer.weight)
            getattr(net.learner, f"inverse_weight_{l}").copy_(inverse)
            getattr(net.learner, f"inverse_bias_{l}").copy_(-inverse @ layer.bias)
    return net


def test_learned_inverses_when_exact_give_the_exact_targets_and_stay():
    net = linear_net_with_exact_inverses()
    inverses = [b.clone() for b in net.learner.buffers()]
    x, e = torch.randn(6, 4), torch.randn(6, 4)
    with torch.no_grad():
        y, cache = net.learner.forward_pass(net.layers, x, record=True)
        grad_x, grads = net.learner.learn_from_target(
            net.layers, cache, -0.2 * e, torch.tensor(0.2), True
        )
    targets = [y - 0.2 * e]
    for layer in reversed(net.layers):
        targets.insert(0, torch.linalg.solve(layer.weight, (targets[0] - layer.bias).t()).t())
    posts = [*cache.inputs, y]
    for l in range(len(net.layers)):  # identity units: delta_l = h_l - h*_l
        delta = posts[l + 1] - targets[l + 1]
        torch.testing.assert_close(grads[2 * l], delta.t() @ cache.inputs[l] / 0.2)
    torch.testing.assert_close(grad_x, (x - targets[0]) / 0.2)
    # exact inverses reconstruct every noisy input exactly: a fixed point of the inverse rule
    for before, after in zip(inverses, net.learner.buffers(), strict=True):
        torch.testing.assert_close(after, before)


def reconstruction_loss(net: LocalNetwork, x: torch.Tensor) -> list[float]:
    """``mean_batch ||g_l(f_l(h_{l-1})) - h_{l-1}||^2 / 2`` of every inverse, without noise."""
    learner = net.learner
    with torch.no_grad():
        y, cache = learner.forward_pass(net.layers, x, record=True)
        posts = [*cache.inputs[1:], y]
        return [
            float((learner.inverse(l, posts[l]) - cache.inputs[l]).pow(2).sum(1).mean() / 2)
            for l in range(len(net.layers))
        ]


def test_the_inverse_rule_lowers_every_reconstruction_loss():
    torch.manual_seed(4)
    net = LocalNetwork(NetworkSpec(6, (16, 12), 3, "tanh"), "dtp")
    mixing = torch.randn(6, 6)
    held_out = torch.randn(256, 6) @ mixing
    before = reconstruction_loss(net, held_out)
    for _ in range(300):
        with torch.no_grad():
            _, cache = net.learner.forward_pass(net.layers, torch.randn(64, 6) @ mixing, True)
            net.learner.train_inverses(net.layers, cache, input_inverse=True)
    after = reconstruction_loss(net, held_out)
    assert all(a < 0.5 * b for a, b in zip(after, before, strict=True)), (before, after)


def test_forward_weights_only_carry_activity_forward_and_state_is_buffers():
    net = LocalNetwork(NetworkSpec(3, (8, 8), 2), "dtp", seed=0)
    names = [name for name, _ in net.learner.named_buffers()]
    assert names == [f"inverse_{kind}_{l}" for l in range(3) for kind in ("weight", "bias")]
    assert list(net.learner.parameters()) == []  # the optimizer never steps the inverses


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"noise": 0}, ConfigError, "dtp 'noise' must be > 0, got 0"),
        ({"inverse_rate": 1.5}, ConfigError, "dtp 'inverse_rate' must be in (0, 1], got 1.5"),
        ({"inverse_rate": 0}, ConfigError, "Try inverse_rate: 0.5"),
        ({"init": "normal"}, UnknownNameError, "Unknown feedback init 'normal'"),
        ({"scale": -1}, ConfigError, "'scale' must be > 0"),
        ({"nudge": 0}, ConfigError, "dtp 'nudge' must be > 0"),
        ({"inverse_lr": 0.1}, ConfigError, "does not accept these options"),
    ],
)
def test_bad_options_are_refused_clearly(options, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_learner("dtp", **options)
