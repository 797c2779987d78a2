"""Equilibrium propagation: the kernels, the free phase's energy descent and fixed point, the
nudged phases kept as a state and a difference, the beta -> 0 limit against autograd through the
fixed point of the same energy network, and the defaults on deep networks in float32."""

import copy

import pytest
import torch

from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec, make_learner
from biocredit.learners.settling import (
    clamp_difference,
    contrastive_grads,
    drive_change,
    energy,
    relative_contrastive_grads,
    settle_layer,
    unit_drive,
)

SPEC = NetworkSpec(5, (8, 7, 6), 3)


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


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
    torch.testing.assert_close(drive_change(below, w_in, above, w_above), drive - bias)
    torch.testing.assert_close(drive_change(None, w_in, above, w_above), above @ w_above)
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
    relative = relative_contrastive_grads(post_b, pre_b, post_a - post_b, pre_a - pre_b, 0.2)
    torch.testing.assert_close(relative, (grad_w, grad_b))
    s1, weight = torch.rand(4, 6), torch.randn(6, 5)
    e = 0.5 * (s1**2).sum(1) - ((below @ weight.T) * s1).sum(1) - (s1 * bias).sum(1)
    torch.testing.assert_close(energy([below, s1], [weight], [bias]), e)


def test_clamp_difference_is_exact_inside_the_box_and_at_its_edges():
    drive = torch.tensor([0.3, -0.2, 0.999, 1.5, -2.0, 0.9, -0.95])
    change = torch.tensor([1e-3, -1e-3, 0.01, 0.2, -0.1, 0.5, 0.2])
    expected = (drive + change).clamp(-1.0, 1.0) - drive.clamp(-1.0, 1.0)
    torch.testing.assert_close(clamp_difference(drive, change, -1.0, 1.0), expected)
    # inside the box a change below float32's resolution of the drive is kept exactly
    drive = torch.full((3,), 0.5, dtype=torch.float32)
    change = torch.full((3,), 1e-12, dtype=torch.float32)
    assert float((drive + change - drive).abs().max()) == 0.0  # what a plain difference gives
    assert torch.equal(clamp_difference(drive, change, -1.0, 1.0), change)


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


def plain_phase(net: LocalNetwork, free: list[torch.Tensor], top: torch.Tensor, sweeps: int):
    """A nudged phase as full states, the paper's form: block sweeps from the free state with the
    force ``top`` (through the readout's synapses) on the top hidden layer."""
    learner, layers = net.learner, net.layers
    states, n = list(free), len(free) - 1
    for _ in range(sweeps):
        for first in (1, 2):
            for l in range(first, n + 1, 2):
                above = learner.feedback_gain * states[l + 1] if l < n else top
                drive = layers[l - 1](states[l - 1]) + above @ layers[l].weight
                target = drive.clamp(learner.low, learner.high)
                states[l] = torch.lerp(states[l], target, learner.dt)
    return states


@pytest.mark.parametrize("units", ["hard_sigmoid", "hard_tanh"])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_nudged_phases_kept_as_a_state_and_a_difference_are_the_plain_phases(units, symmetric, dt):
    """In exact arithmetic (float64 here) phase b and ``s^b + w`` are the two phases settled as
    full states, on a strongly coupled network whose units often sit at the box's edges."""
    net = strong_net(units, symmetric=symmetric, dt=dt, feedback_gain=0.5, nudge_steps=6)
    learner, layers = net.learner, net.layers
    x, error = torch.randn(16, 5), torch.randn(16, 3)
    with torch.no_grad():
        free = learner.free_phase(layers, x)
        force = -0.3 * error
        base, shift = learner.nudged_phases(layers, free, force)
        plus = plain_phase(net, free, force, 6)
        minus = plain_phase(net, free, -force, 6) if symmetric else free
    clipped = sum(
        int((s.abs() == 1).sum() if units == "hard_tanh" else (s == 0).sum()) for s in plus
    )
    assert clipped > 0  # the edges are exercised
    assert not shift[0].any()  # the clamped input does not move
    for l in range(1, len(free)):
        torch.testing.assert_close(base[l], minus[l], rtol=0, atol=1e-12)
        torch.testing.assert_close(base[l] + shift[l], plus[l], rtol=0, atol=1e-12)


def test_default_sweeps_follow_the_depth():
    """One sweep per hidden layer, at least 4, for both phases; explicit integers are kept."""
    learner = make_learner("eqprop")
    assert (learner.free_steps, learner.nudge_steps) == (None, None)
    assert [learner.sweeps(None, depth) for depth in (1, 2, 4, 5, 8, 12)] == [4, 4, 4, 5, 8, 12]
    explicit = make_learner("eqprop", free_steps=3, nudge_steps=6)
    assert explicit.sweeps(explicit.free_steps, 8) == 3
    assert explicit.sweeps(explicit.nudge_steps, 8) == 6


def float32_update(depth: int, seed: int, **options) -> tuple[list, list]:
    """eqprop's update in float32 on a ``[8, 32 x depth, 3]`` network under SB3's orthogonal
    init, and autograd's gradient of the same loss through the settled state (100 free sweeps on
    a float64 copy)."""
    torch.manual_seed(seed)
    net = LocalNetwork(NetworkSpec(8, (32,) * depth, 3), "eqprop", **options)
    net.init_orthogonal(2**0.5, 1.0)
    x, target = torch.randn(16, 8), torch.randn(16, 3)
    reference_net = copy.deepcopy(net)
    net.float()
    (0.5 * (net(x.float()) - target.float()).square().sum()).backward()
    update = [p.grad for p in net.parameters_in_order()]
    assert all(g.dtype == torch.float32 for g in update)
    params = reference_net.parameters_in_order()
    reference = torch.autograd.grad(unrolled_loss(reference_net, x, target, 100), params)
    return [g.double() for g in update], list(reference)


@pytest.mark.parametrize("depth", [2, 4, 8])
@pytest.mark.parametrize(("nudge", "layer_cosine"), [(0.1, 0.98), (1e-4, 0.999)])
def test_float32_update_is_the_gradient_through_the_settled_state_at_any_depth(
    depth, nudge, layer_cosine
):
    """At the default sweeps (one per hidden layer, at least 4) and feedback gain, every layer
    gets an update, in float32, close to the gradient through the settled state, also where its
    contrast ``beta gamma^(H-l)`` (1e-4 x 0.05^7 at the first of 8 layers) lies far below
    float32's resolution of the states. Measured: cosine >= 0.992 per layer at nudge 0.1 and
    >= 0.9999 at 1e-4."""
    for seed in (0, 1):
        update, reference = float32_update(depth, seed, nudge=nudge)
        for l in range(0, len(update), 2):
            assert update[l].any(), (seed, l)
            assert cosine(update[l : l + 2], reference[l : l + 2]) >= layer_cosine, (seed, l)
        assert cosine(update, reference) >= 0.99, seed


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
