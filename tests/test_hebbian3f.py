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
    """Two hidden layers, so each reads its own fixed projection ``D_l`` of the output's post
    term (``feedback_1`` for the 4 units, ``feedback_2`` for the 5)."""
    torch.manual_seed(0)
    spec = NetworkSpec(3, (4, 5), 2, "tanh")
    net = LocalNetwork(spec, "hebbian3f", RunContext(gamma=0.8, n_envs=2), lam=0.5, seed=1)
    W1, b1, W2, b2 = (p.detach().clone() for p in net.parameters_in_order()[:4])
    D1, D2 = net.learner.feedback_1, net.learner.feedback_2
    assert D1.shape == (2, 4) and D2.shape == (2, 5)
    decay = 0.8 * 0.5
    shapes = [(4, 3), (4,), (5, 4), (5,), (2, 5), (2,)]
    expected = [torch.zeros(2, *shape) for shape in shapes]  # per env, [W1, b1, W2, b2, W3, b3]
    for step in range(3):
        x, post = torch.randn(2, 3), torch.randn(2, 2)
        _, cache = forward(net, x)
        net.learner.accumulate(net.layers, cache, post)
        h1 = torch.tanh(x @ W1.T + b1)
        h2 = torch.tanh(h1 @ W2.T + b2)
        post1, post2 = (post @ D1) * (1 - h1**2), (post @ D2) * (1 - h2**2)
        terms = [(post1, x), (post2, h1), (post, h2)]  # (post_l, pre_l) of each layer
        for b in range(2):  # per env: e <- gamma lambda e + post pre^T
            for l, (post_l, pre_l) in enumerate(terms):
                expected[2 * l][b] = decay * expected[2 * l][b] + torch.outer(post_l[b], pre_l[b])
                expected[2 * l + 1][b] = decay * expected[2 * l + 1][b] + post_l[b]
        traces = [t for pair in net.learner.traces() for t in pair]
        for got, want in zip(traces, expected, strict=True):
            torch.testing.assert_close(got, want, msg=f"step {step}")
    modulator = torch.tensor([0.7, -1.3])
    net.learner.modulate(net.layers, modulator)
    for param, trace in zip(net.parameters_in_order(), expected, strict=True):
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
