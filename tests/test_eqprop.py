"""Equilibrium propagation: the kernels, the free phase's energy descent and fixed point, and the
beta -> 0 limit against autograd through the fixed point of the same energy network."""

import pytest
import torch

from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec, make_learner
from biocredit.learners.eqprop import contrastive_grads, energy, settle_layer, unit_drive

SPEC = NetworkSpec(5, (8, 7, 6), 3)


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def strong_net(units: str = "hard_sigmoid", gain: float = 1.0, **kwargs) -> LocalNetwork:
    """A network whose recurrent coupling is strong enough for settling to take many sweeps."""
    torch.manual_seed(3)
    net = LocalNetwork(SPEC, "eqprop", units=units, coupling_gain=1.0, **kwargs)
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(gain * 3.0)
            layer.bias.uniform_(-0.5, 0.5)
    return net


def residual(net: LocalNetwork, states: list[torch.Tensor]) -> float:
    """Largest change one more exact block sweep would make: zero at a fixed point."""
    learner = net.learner
    dt = learner.dt
    learner.dt = 1.0
    with torch.no_grad():
        again = learner.settle(net.layers, states, 1)
    learner.dt = dt
    return max(float((a - b).abs().max()) for a, b in zip(again[1:], states[1:], strict=True))


def test_kernels_match_their_formulas():
    torch.manual_seed(0)
    below, w_in, bias, above, w_above = (
        torch.randn(4, 5),
        torch.randn(6, 5),
        torch.randn(6),
        torch.randn(4, 3),
        torch.randn(3, 6),
    )
    drive = unit_drive(below, w_in, bias, above, w_above)
    torch.testing.assert_close(drive, below @ w_in.T + bias + above @ w_above)
    torch.testing.assert_close(unit_drive(below, w_in, bias, None, None), below @ w_in.T + bias)
    state = torch.rand(4, 6)
    torch.testing.assert_close(
        settle_layer(state, drive.clone(), 0.3, 0.0, 1.0),
        0.7 * state + 0.3 * drive.clamp(0.0, 1.0),
    )
    post_a, pre_a, post_b, pre_b = torch.rand(4, 6), torch.rand(4, 5), torch.rand(4, 6), below
    grad_w, grad_b = contrastive_grads(post_a, pre_a, post_b, pre_b, 0.2)
    expected_w = -sum(
        torch.outer(post_a[i], pre_a[i]) - torch.outer(post_b[i], pre_b[i]) for i in range(4)
    )
    torch.testing.assert_close(grad_w, expected_w / 0.2)
    torch.testing.assert_close(grad_b, -(post_a - post_b).sum(0) / 0.2)
    s1, weight = torch.rand(4, 6), torch.randn(6, 5)
    e = 0.5 * (s1**2).sum(1) - ((below @ weight.T) * s1).sum(1) - (s1 * bias).sum(1)
    torch.testing.assert_close(energy([below, s1], [weight], [bias]), e)


@pytest.mark.parametrize("units", ["hard_sigmoid", "hard_tanh"])
@pytest.mark.parametrize("dt", [1.0, 0.5])
@pytest.mark.parametrize("feedback_gain", [1.0, 0.5])
def test_free_phase_descends_the_energy_to_a_fixed_point(units, dt, feedback_gain):
    net = strong_net(units, gain=feedback_gain**-0.5, dt=dt, feedback_gain=feedback_gain)
    learner, layers = net.learner, net.layers
    weights = [layer.weight.detach() for layer in layers[:-1]]
    biases = [layer.bias.detach() for layer in layers[:-1]]
    torch.manual_seed(1)
    x = torch.randn(16, 5)
    with torch.no_grad():
        states = learner.free_phase(layers, x)  # the feedforward start, then free_steps sweeps
        start = residual(net, states)
        energies = [energy(states, weights, biases, feedback_gain)]
        for _ in range(200):
            states = learner.settle(layers, states, 1)
            energies.append(energy(states, weights, biases, feedback_gain))
    steps = torch.stack(energies)
    assert (steps[1:] <= steps[:-1] + 1e-12).all()  # monotone, in every sample
    assert (steps[0] - steps[-1]).max() > 1e-3  # and the settling did something
    assert start > 1e-2  # the default free phase had not converged on this strong net ...
    assert residual(net, states) < 1e-8  # ... 200 more sweeps reach the fixed point


def unrolled_loss(net: LocalNetwork, x: torch.Tensor, target: torch.Tensor, sweeps: int):
    """The same free dynamics in plain differentiable torch (reference for autograd)."""
    low, high, gain = net.learner.low, net.learner.high, net.learner.feedback_gain
    layers = net.layers
    states = [x]
    for layer in layers[:-1]:
        states.append(layer(states[-1]).clamp(low, high))
    n = len(states) - 1
    for _ in range(sweeps):
        for first in (1, 2):
            for l in range(first, n + 1, 2):
                drive = layers[l - 1](states[l - 1])
                if l < n:
                    drive = drive + gain * states[l + 1] @ layers[l].weight
                states[l] = drive.clamp(low, high)
    y = layers[-1](states[-1])
    return 0.5 * (y - target).square().sum()


def cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    flat_a, flat_b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    return float(torch.nn.functional.cosine_similarity(flat_a, flat_b, dim=0))


@pytest.mark.parametrize("units", ["hard_sigmoid", "hard_tanh"])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("feedback_gain", [1.0, 0.5])
def test_small_beta_gives_the_gradient_through_the_fixed_point(units, symmetric, feedback_gain):
    torch.manual_seed(2)
    net = LocalNetwork(
        SPEC,
        "eqprop",
        units=units,
        free_steps=100,
        nudge_steps=100,
        nudge=1e-4,
        symmetric=symmetric,
        feedback_gain=feedback_gain,
    )
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(2.0)  # recurrent coupling that matters, still a stable fixed point
    x, target = torch.randn(16, 5), torch.randn(16, 3)
    loss = 0.5 * (net(x) - target).square().sum()
    loss.backward()
    eqprop = [p.grad.clone() for p in net.parameters_in_order()]
    params = net.parameters_in_order()
    reference = torch.autograd.grad(unrolled_loss(net, x, target, 100), params)
    for l in range(0, len(params), 2):  # every layer, not just overall
        assert cosine(eqprop[l : l + 2], list(reference[l : l + 2])) >= 0.99, l
    assert cosine(eqprop, list(reference)) >= 0.999
    # and not the gradient of the feedforward pass of the same units: the fixed point matters
    feedforward = torch.autograd.grad(unrolled_loss(net, x, target, 0), params)
    assert cosine(eqprop[:2], list(feedforward[:2])) < 0.99


def test_weak_feedback_gives_backprops_gradient_of_the_feedforward_pass():
    """Xie & Seung 2003: as gamma -> 0 the free fixed point is the feedforward pass and the
    gamma^(l-H)-scaled contrastive update is backprop's gradient through it."""
    torch.manual_seed(5)
    net = strong_net("hard_tanh", gain=0.5, feedback_gain=1e-4, nudge=1e-4, free_steps=20)
    x, target = torch.randn(16, 5), torch.randn(16, 3)
    (0.5 * (net(x) - target).square().sum()).backward()
    eqprop = [p.grad.clone() for p in net.parameters_in_order()]
    params = net.parameters_in_order()
    feedforward = torch.autograd.grad(unrolled_loss(net, x, target, 0), params)
    for l in range(0, len(params), 2):
        assert cosine(eqprop[l : l + 2], list(feedforward[l : l + 2])) >= 0.999, l
    # at full feedback the same weights settle elsewhere and the update is a different one
    net.learner.feedback_gain = 1.0
    net.zero_grad()
    (0.5 * (net(x) - target).square().sum()).backward()
    strong = [p.grad.clone() for p in net.parameters_in_order()]
    assert cosine(strong[:2], list(feedforward[:2])) < 0.99


def test_input_error_is_the_gradient_for_the_input():
    torch.manual_seed(4)
    net = LocalNetwork(SPEC, "eqprop", free_steps=100, nudge_steps=100, nudge=1e-4)
    x, target = torch.randn(8, 5, requires_grad=True), torch.randn(8, 3)
    (0.5 * (net(x) - target).square().sum()).backward()
    xr = x.detach().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(unrolled_loss(net, xr, target, 100), [xr])
    assert cosine([x.grad], [expected]) >= 0.999


def test_the_output_is_the_free_fixed_point_readout():
    net = strong_net(free_steps=200)
    x = torch.randn(6, 5)
    with torch.no_grad():
        states = net.learner.free_phase(net.layers, x)
        plain = net(x)
    torch.testing.assert_close(plain, net.layers[-1](states[-1]))
    torch.testing.assert_close(net(x).detach(), plain)  # the recorded (autograd) path agrees
    bp = LocalNetwork(SPEC, "bp")
    bp.load_state_dict(net.state_dict())
    assert not torch.allclose(plain, bp(x).detach())  # top-down feedback changed the output


def test_one_hidden_layer_is_backprop_with_hard_sigmoid_units():
    """Without recurrence the free phase is the feedforward pass and eqprop's update is exact."""
    spec = NetworkSpec(5, (9,), 3)
    net = LocalNetwork(spec, "eqprop", nudge=1e-3, units="hard_sigmoid")
    x, target = torch.randn(8, 5), torch.randn(8, 3)
    (0.5 * (net(x) - target).square().sum()).backward()
    got = [p.grad for p in net.parameters_in_order()]
    h = net.layers[0](x).clamp(0.0, 1.0)
    expected = torch.autograd.grad(
        0.5 * (net.layers[1](h) - target).square().sum(), net.parameters_in_order()
    )
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_coupling_gain_scales_only_the_hidden_to_hidden_weights_after_any_init():
    """SB3's orthogonal init (gain sqrt 2) makes the loop between hidden layers expand
    (||W_2||^2 = 2); the learner's init hook scales W_2 .. W_H by coupling_gain, after the
    network's own init and after init_orthogonal."""
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "eqprop", coupling_gain=0.25)
    torch.manual_seed(0)
    plain = LocalNetwork(SPEC, "eqprop", coupling_gain=1.0)
    layers, reference = net.layers, plain.layers
    torch.testing.assert_close(layers[0].weight, reference[0].weight)
    torch.testing.assert_close(layers[-1].weight, reference[-1].weight)
    for layer, ref in zip(layers[1:-1], reference[1:-1], strict=True):
        torch.testing.assert_close(layer.weight, 0.25 * ref.weight)
    net.init_orthogonal(2**0.5, 1.0)
    norms = [float(torch.linalg.matrix_norm(layer.weight.detach(), 2)) for layer in net.layers]
    assert norms[0] == pytest.approx(2**0.5) and norms[-1] == pytest.approx(1.0)
    for norm in norms[1:-1]:
        assert norm == pytest.approx(0.25 * 2**0.5)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"nudge": 0.0}, ["nudge", "0.0", "> 0"]),
        ({"free_steps": 0}, ["free_steps", ">= 1"]),
        ({"nudge_steps": 2.5}, ["nudge_steps", "2.5"]),
        ({"dt": 1.5}, ["dt", "(0, 1]"]),
        ({"symmetric": "yes"}, ["symmetric", "'yes'"]),
        ({"units": "sigmoid"}, ["units", "sigmoid", "hard_sigmoid"]),
        ({"coupling_gain": 0.0}, ["coupling_gain", "0.0", "> 0"]),
        ({"feedback_gain": 1.5}, ["feedback_gain", "1.5", "(0, 1]"]),
        ({"stpes": 3}, ["eqprop", "stpes"]),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, words):
    with pytest.raises(ConfigError) as info:
        make_learner("eqprop", **kwargs)
    for word in words:
        assert word in str(info.value)
