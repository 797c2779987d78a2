"""The signal-free learners' kernels against their formulas, and what each rule is known to do:
Oja's rule finds the first principal component, SoftHebb's rows reach unit norm, forward-forward
separates positive from negative data by goodness."""

import re

import pytest
import torch
import torch.nn.functional as F

from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec, make_learner
from biocredit.learners.ff import goodness_delta, rms_normalise
from biocredit.learners.hebbian import hebbian_decay_update


def recorded(net: LocalNetwork, x: torch.Tensor):
    with torch.no_grad():
        return net.learner.forward_pass(net.layers, x, record=True)[1]


def test_decay_kernel_is_the_per_unit_formula():
    """``sum_b post_bi (pre_b - potential_bi W_i)``, unit by unit."""
    pre, post, potential = torch.randn(6, 5), torch.randn(6, 3), torch.randn(6, 3)
    weight = torch.randn(3, 5)
    expected = torch.stack(
        [
            sum(post[b, i] * (pre[b] - potential[b, i] * weight[i]) for b in range(6))
            for i in range(3)
        ]
    )
    torch.testing.assert_close(hebbian_decay_update(pre, post, potential, weight), expected)


@pytest.mark.parametrize("name", ["hebbian", "softhebb"])
def test_hebbian_learn_writes_minus_the_mean_update(name):
    """Every layer: ``W.grad = -mean_b m_b y_b (x_b - u_b W)`` with ``y = u`` (Oja) or
    ``softmax(u / T)`` (SoftHebb); biases zero and not learned."""
    torch.manual_seed(0)
    options = {"temperature": 0.5} if name == "softhebb" else {}
    net = LocalNetwork(NetworkSpec(5, (7,), 3, "tanh"), name, **options)
    assert all(bool((layer.bias == 0).all()) for layer in net.layers)
    x, modulator = torch.randn(4, 5), torch.tensor([1.0, -1.0, 0.0, 2.0])
    cache = recorded(net, x)
    net.learner.learn(net.layers, cache, modulator)
    pres = [x, torch.tanh(net.layers[0](x))]
    for layer, pre in zip(net.layers, pres, strict=True):
        with torch.no_grad():
            u = pre @ layer.weight.t()
        y = u if name == "hebbian" else torch.softmax(u / 0.5, dim=1)
        rows = [m * y[b, :, None] * (pre[b] - u[b, :, None] * layer.weight) for b, m in
                enumerate(modulator)]  # fmt: skip
        torch.testing.assert_close(layer.weight.grad, -torch.stack(rows).mean(0))
        assert torch.equal(layer.bias.grad, torch.zeros_like(layer.bias))


def test_oja_finds_the_first_principal_component():
    """Zero-mean data with one dominant direction: the unit's weights converge to that
    direction, at unit norm (Oja 1982)."""
    torch.manual_seed(0)
    n = 6
    direction = F.normalize(torch.randn(n), dim=0)
    basis = torch.linalg.qr(torch.stack([direction, *torch.randn(n - 1, n)]).t())[0]
    scales = torch.tensor([3.0, 1.0, 0.8, 0.6, 0.4, 0.2])  # variance 9 along `direction`
    net = LocalNetwork(NetworkSpec(n, (), 1), "hebbian")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.005)
    for _ in range(2000):
        x = (torch.randn(16, n) * scales) @ basis.t()
        net.learner.learn(net.layers, recorded(net, x))
        optimizer.step()
    w = net.layers[0].weight.detach()[0]
    pc1 = torch.linalg.eigh(basis @ torch.diag(scales**2) @ basis.t())[1][:, -1]
    assert abs(float(w.norm()) - 1.0) < 0.02
    assert abs(float(w.dot(pc1))) > 0.999


@pytest.mark.slow
def test_softhebb_rows_converge_to_unit_norm():
    """Random zero-mean data, rows started at norms from 0.2 to 3: all end near one."""
    torch.manual_seed(0)
    net = LocalNetwork(NetworkSpec(8, (12,), 6, "tanh"), "softhebb")
    with torch.no_grad():
        for layer in net.layers:
            scale = torch.linspace(0.2, 3.0, layer.out_features)[:, None]
            layer.weight.copy_(F.normalize(layer.weight, dim=1) * scale)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(3000):
        net.learner.learn(net.layers, recorded(net, torch.randn(32, 8)))
        optimizer.step()
    for layer in net.layers:
        norms = layer.weight.detach().norm(dim=1)
        assert float((norms - 1.0).abs().max()) < 0.05, norms


def test_softhebb_units_specialise():
    """Four clusters on the sphere, four units: each unit's weights end closest to a
    different cluster centre (Oja's units would all find the same direction). At a much lower
    temperature (0.1) some units never win and stop learning: the classic dead units of
    winner-take-all learning."""
    torch.manual_seed(1)
    centres = torch.eye(4)
    net = LocalNetwork(NetworkSpec(4, (), 4), "softhebb", temperature=0.3)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(3000):
        x = centres[torch.randint(4, (32,))] + 0.05 * torch.randn(32, 4)
        net.learner.learn(net.layers, recorded(net, x))
        optimizer.step()
    nearest = (net.layers[0].weight.detach() @ centres.t()).argmax(1)
    assert sorted(nearest.tolist()) == [0, 1, 2, 3]


def test_goodness_delta_is_the_gradient_of_the_logistic_loss():
    a = torch.randn(5, 4, requires_grad=True)
    for phase in (1.0, -1.0):
        h = torch.tanh(a)
        loss = F.softplus(-phase * (h.square().sum(1) - 2.0)).sum()
        (expected,) = torch.autograd.grad(loss, a)
        with torch.no_grad():
            delta = goodness_delta(torch.tanh(a), 1 - torch.tanh(a) ** 2, phase, 2.0)
        torch.testing.assert_close(delta, expected)


def test_ff_forward_passes_normalised_activity_up():
    net = LocalNetwork(NetworkSpec(4, (6, 5), 3, "relu"), "ff")
    cache = recorded(net, torch.randn(7, 4))
    for h in cache.inputs[1:]:
        torch.testing.assert_close(h.square().mean(1), torch.ones(7))
    torch.testing.assert_close(cache.inputs[1], rms_normalise(torch.relu(cache.pre_activations[0])))


def test_ff_learn_is_each_layers_own_loss_gradient():
    """Each layer's ``.grad`` is autograd's gradient of that layer's loss alone, mean over the
    batch, with its inputs (positive and negative) held fixed, here with a modulator."""
    torch.manual_seed(0)
    net = LocalNetwork(NetworkSpec(4, (6, 5), 3, "relu"), "ff", threshold=0.7, bank_size=16)
    learner = net.learner
    learner.remember(torch.randn(10, 4))  # earlier observations in the bank
    x, modulator = torch.randn(6, 4), torch.tensor([1.0, -1.0, 0.0, 2.0, 1.0, 1.0])
    cache = recorded(net, x)
    rng = torch.get_rng_state()
    learner.learn(net.layers, cache, modulator)
    learned = [p.grad.clone() for p in net.parameters_in_order()]
    # the same negatives: the bank as it was after remembering x, the same random draw
    torch.set_rng_state(rng)
    negatives = learner.negatives(6)
    negative_cache = recorded(net, negatives)
    widths = [6, 5, 3]
    for l, layer in enumerate(net.layers):
        loss = 0.0
        for phase_cache, phase in ((cache, 1.0), (negative_cache, -1.0)):
            a = F.linear(phase_cache.inputs[l], layer.weight, layer.bias)
            h = a if l == 2 else torch.relu(a)
            goodness = h.square().sum(1)
            loss = loss + (modulator * F.softplus(-phase * (goodness - 0.7 * widths[l]))).mean()
        expected = torch.autograd.grad(loss, [layer.weight, layer.bias])
        torch.testing.assert_close(learned[2 * l], expected[0])
        torch.testing.assert_close(learned[2 * l + 1], expected[1])


def test_ff_negatives_shuffle_features_of_remembered_observations():
    net = LocalNetwork(NetworkSpec(3, (4,), 2), "ff", bank_size=4)
    learner = net.learner
    rows = torch.arange(21.0).view(7, 3)
    learner.remember(rows[:6])  # the last four stay
    learner.remember(rows[6:])  # and replace the oldest
    assert int(learner.bank_filled) == 4
    kept = rows[3:]
    assert sorted(learner.bank.tolist()) == kept.tolist()
    negatives = learner.negatives(50)
    for j in range(3):
        assert set(negatives[:, j].tolist()) <= set(kept[:, j].tolist())
    assert len({tuple(row) for row in negatives.tolist()}) > 4  # rows mixed, not copied


@pytest.mark.slow
def test_ff_goodness_separates_positives_from_negatives():
    """Observations near four patterns against negatives that mix their features: after
    training, every layer's goodness is above its threshold for most positives and below it
    for most negatives (at the start it is below for all of them)."""
    torch.manual_seed(0)
    n = 8
    patterns = torch.randn(4, n)

    def observations(batch: int) -> torch.Tensor:
        return patterns[torch.randint(4, (batch,))] + 0.1 * torch.randn(batch, n)

    net = LocalNetwork(NetworkSpec(n, (32,), 16, "relu"), "ff", threshold=0.5)
    learner = net.learner

    def accuracies() -> list[float]:
        test = observations(512)
        learner.remember(test)
        right = []
        for x, positive in ((test, True), (learner.negatives(512), False)):
            activities = learner.layer_activities(recorded(net, x))
            for (h, _), width in zip(activities, (32, 16), strict=True):
                right.append(float(((h.square().sum(1) > 0.5 * width) == positive).float().mean()))
        return right

    assert max(accuracies()[:2]) < 0.5  # positives' goodness starts low
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(1000):
        learner.learn(net.layers, recorded(net, observations(64)))
        optimizer.step()
    assert min(accuracies()) > 0.8


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("softhebb", {"temperature": 0.0}, "'temperature' must be > 0"),
        ("softhebb", {"temperature": "hot"}, "'temperature' must be a number"),
        ("ff", {"threshold": -1.0}, "'threshold' must be > 0"),
        ("ff", {"bank_size": 1}, "'bank_size' must be an integer >= 2"),
        ("ff", {"bank_size": 10.5}, "'bank_size' must be an integer >= 2"),
        ("hebbian", {"rate": 0.1}, "does not accept these options"),
    ],
)
def test_bad_options_are_refused_clearly(name, options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_learner(name, **options)


@pytest.mark.parametrize("name", ["hebbian", "softhebb", "ff"])
def test_a_modulator_of_the_wrong_shape_is_refused(name):
    net = LocalNetwork(NetworkSpec(3, (4,), 2), name)
    cache = recorded(net, torch.randn(5, 3))
    with pytest.raises(ConfigError, match=re.escape("one modulator value per row of the batch")):
        net.learner.learn(net.layers, cache, torch.ones(4))
