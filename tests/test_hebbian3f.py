"""The three-factor kernel against hand-computed eligibility and updates."""

import pytest
import torch

from biocredit.errors import BiocreditError, ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec
from biocredit.learners.base import RunContext

SPEC = NetworkSpec(3, (4,), 2, "tanh")


def forward(net, x):
    return net.learner.forward_pass(net.layers, x, record=True)


def test_traces_and_update_by_hand():
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "hebbian3f", RunContext(gamma=0.8, n_envs=2), lam=0.5, seed=1)
    W1, b1 = (p.detach().clone() for p in net.parameters_in_order()[:2])
    D1 = net.learner.feedback_1
    decay = 0.8 * 0.5
    e_w1, e_b1 = torch.zeros(2, 4, 3), torch.zeros(2, 4)
    e_w2, e_b2 = torch.zeros(2, 2, 4), torch.zeros(2, 2)
    for step in range(3):
        x, post = torch.randn(2, 3), torch.randn(2, 2)
        _, cache = forward(net, x)
        net.learner.accumulate(net.layers, cache, post)
        h = torch.tanh(x @ W1.T + b1)
        post1 = (post @ D1) * (1 - h**2)
        for b in range(2):  # per env: e <- gamma lambda e + post pre^T
            e_w2[b] = decay * e_w2[b] + torch.outer(post[b], h[b])
            e_b2[b] = decay * e_b2[b] + post[b]
            e_w1[b] = decay * e_w1[b] + torch.outer(post1[b], x[b])
            e_b1[b] = decay * e_b1[b] + post1[b]
        traces = net.learner.traces()
        for got, want in zip(
            [t for pair in traces for t in pair], [e_w1, e_b1, e_w2, e_b2], strict=True
        ):
            torch.testing.assert_close(got, want, msg=f"step {step}")
    modulator = torch.tensor([0.7, -1.3])
    net.learner.modulate(net.layers, modulator)
    for param, trace in zip(net.parameters_in_order(), [e_w1, e_b1, e_w2, e_b2], strict=True):
        want = -(modulator[0] * trace[0] + modulator[1] * trace[1])  # .grad = -sum_b M_b e_b
        torch.testing.assert_close(param.grad, want)


def test_zero_modulator_changes_nothing():
    net = LocalNetwork(SPEC, "hebbian3f", seed=0)
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    before = [p.detach().clone() for p in net.parameters()]
    _, cache = forward(net, torch.randn(1, 3))
    net.learner.accumulate(net.layers, cache, torch.randn(1, 2))
    net.learner.modulate(net.layers, torch.zeros(1))
    optimizer.step()
    for a, b in zip(before, net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_episode_end_clears_only_that_env():
    net = LocalNetwork(SPEC, "hebbian3f", RunContext(n_envs=2), seed=0)
    _, cache = forward(net, torch.randn(2, 3))
    net.learner.accumulate(net.layers, cache, torch.randn(2, 2))
    net.learner.end_episodes(torch.tensor([True, False]))
    for trace_w, trace_b in net.learner.traces():
        assert trace_w[0].abs().sum() == 0 and trace_b[0].abs().sum() == 0
        assert trace_w[1].abs().sum() > 0


def test_transpose_feedback_gives_exact_gradients():
    """With W^T feedback the trace of one step equals autograd's d(post . y)/dW."""
    net = LocalNetwork(SPEC, "hebbian3f", feedback="transpose", lam=0.0, seed=0)
    x, post = torch.randn(1, 3), torch.randn(1, 2)
    _, cache = forward(net, x)
    net.learner.accumulate(net.layers, cache, post)
    h = x
    for layer in net.layers[:-1]:
        h = torch.tanh(layer(h))
    y = net.layers[-1](h)
    expected = torch.autograd.grad((post * y).sum(), net.parameters_in_order())
    got = [t[0] for pair in net.learner.traces() for t in pair]
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)


def test_bad_options_and_misuse():
    with pytest.raises(ConfigError, match="lam"):
        LocalNetwork(SPEC, "hebbian3f", lam=1.5)
    with pytest.raises(BiocreditError, match="Did you mean 'random'"):
        LocalNetwork(SPEC, "hebbian3f", feedback="randon")
    net = LocalNetwork(SPEC, "hebbian3f")
    with pytest.raises(BiocreditError, match="learns from a modulator signal, not from a loss"):
        net(torch.randn(2, 3)).sum().backward()
