"""Contrastive Hebbian learning: the Hebbian difference kernel, the free and clamped phases as
descent on one energy, the update against the phases settled as full states, and Xie & Seung's
equivalence to backprop under weak feedback."""

import copy

import pytest
import torch

from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec, make_learner
from biocredit.learners.settling import energy, relative_contrastive_grads

SPEC = NetworkSpec(5, (8, 7, 6), 3)


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    flat_a, flat_b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    return float(torch.nn.functional.cosine_similarity(flat_a, flat_b, dim=0))


def strong_net(units: str = "hard_tanh", **kwargs) -> LocalNetwork:
    """Recurrent coupling strong enough for the phases to take many sweeps and clip units."""
    torch.manual_seed(3)
    net = LocalNetwork(SPEC, "chl", units=units, **kwargs)
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(3.0)
            layer.bias.uniform_(-0.5, 0.5)
    return net


def test_hebbian_difference_kernel_is_the_formula():
    """``dW = -(post_c^T pre_c - post_f^T pre_f) / span``, ``db = -sum (post_c - post_f) /
    span``, from the free activities and the clamped ones given relative to them."""
    torch.manual_seed(0)
    post_f, pre_f = torch.rand(4, 6), torch.rand(4, 5)
    post_c, pre_c = torch.rand(4, 6), torch.rand(4, 5)
    grad_w, grad_b = relative_contrastive_grads(post_f, pre_f, post_c - post_f, pre_c - pre_f, 0.3)
    hebbian = sum(
        torch.outer(post_c[i], pre_c[i]) - torch.outer(post_f[i], pre_f[i]) for i in range(4)
    )
    torch.testing.assert_close(grad_w, -hebbian / 0.3)
    torch.testing.assert_close(grad_b, -(post_c - post_f).sum(0) / 0.3)


def test_a_contrast_below_float32_resolution_survives():
    """The clamped phase given relative to the free one: a 1e-9 contrast on O(1) activities is
    kept in float32, where the plain difference of the two products is rounding noise."""
    torch.manual_seed(0)
    post_f = torch.rand(8, 6, dtype=torch.float32) + 0.5
    pre_f = torch.rand(8, 5, dtype=torch.float32) + 0.5
    post_a = torch.randn(8, 6, dtype=torch.float32) * 1e-9
    got = relative_contrastive_grads(post_f, pre_f, post_a, torch.zeros_like(pre_f), 1e-9)[0]
    expected = -post_a.double().t() @ pre_f.double() / 1e-9
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    plain = ((post_f + post_a).t() @ pre_f - post_f.t() @ pre_f) / -1e-9
    assert cosine([plain.double()], [expected]) < 0.9  # what storing the clamped phase loses


def free_states(net: LocalNetwork, x: torch.Tensor) -> list[torch.Tensor]:
    """``[x, s_1 .. s_H, y]`` as chl's forward pass leaves them."""
    with torch.no_grad():
        y, cache = net.learner.forward_pass(net.layers, x, record=True)
    return [*cache.inputs, y]


@pytest.mark.parametrize("units", ["hard_sigmoid", "hard_tanh"])
@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_free_phase_descends_the_energy_with_the_output_in_the_loop(units, dt):
    net = strong_net(units, dt=dt, feedback_gain=0.5, coupling_gain=0.5)
    learner, layers = net.learner, net.layers
    weights = [layer.weight.detach() for layer in layers]
    biases = [layer.bias.detach() for layer in layers]
    x = torch.randn(16, 5)
    with torch.no_grad():
        states = learner.free_phase(layers, x)
        assert len(states) == len(layers) + 1  # the output units are a settling layer
        energies = [energy(states, weights, biases, 0.5)]
        for _ in range(300):
            states = learner.settle(layers, states, 1)
            energies.append(energy(states, weights, biases, 0.5))
        again = learner.settle(layers, states, 1)
    steps = torch.stack(energies)
    assert (steps[1:] <= steps[:-1] + 1e-12).all()  # monotone, in every sample
    assert (steps[0] - steps[-1]).max() > 1e-3  # the default free phase had not converged
    assert max(float((a - b).abs().max()) for a, b in zip(again, states, strict=True)) < 1e-8
    # the output units sit at their minimiser given the top hidden layer
    torch.testing.assert_close(states[-1], layers[-1](states[-2]), rtol=0, atol=1e-8)


def plain_phases(net: LocalNetwork, x: torch.Tensor, shift: torch.Tensor):
    """Both phases as full states, the paper's form: free sweeps over hidden and output layers,
    the output read out at the end; then from there the hidden layers swept again with the
    output held at ``y`` (the free phase, continued) and clamped at ``y + shift``."""
    learner, layers = net.learner, net.layers
    gain, low, high, dt = learner.feedback_gain, learner.low, learner.high, learner.dt
    states = [x]
    for layer in layers[:-1]:
        states.append(layer(states[-1]).clamp(low, high))
    states.append(layers[-1](states[-1]))
    n = len(states) - 1
    for _ in range(max(4, n)):
        for first in (1, 2):
            for l in range(first, n + 1, 2):
                drive = layers[l - 1](states[l - 1])
                if l < n:
                    drive = drive + gain * states[l + 1] @ layers[l].weight
                    states[l] = torch.lerp(states[l], drive.clamp(low, high), dt)
                else:
                    states[l] = torch.lerp(states[l], drive, dt)
    start = [*states[:-1], layers[-1](states[-2])]
    phases = []
    for output in (start[-1], start[-1] + shift):  # held where it settled; clamped at y*
        phase = [*start[:-1], output]
        for _ in range(max(4, n - 1)):
            for first in (1, 2):
                for l in range(first, n, 2):
                    drive = layers[l - 1](phase[l - 1]) + gain * phase[l + 1] @ layers[l].weight
                    phase[l] = torch.lerp(phase[l], drive.clamp(low, high), dt)
        phases.append(phase)
    return phases


@pytest.mark.parametrize("units", ["hard_sigmoid", "hard_tanh"])
@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_update_is_the_hebbian_difference_of_the_two_phases(units, dt):
    """In float64 the learner's update (the clamped phase kept as a difference) equals Movellan's
    contrast of the phases settled as full states, ``gamma^(l-L)``-scaled, on a strongly coupled
    network whose units often clip."""
    net = strong_net(units, dt=dt, feedback_gain=0.5, nudge=0.3, relative_nudge=False)
    x, error = torch.randn(16, 5), torch.randn(16, 3)
    x.requires_grad_(True)
    net(x).backward(error)
    update = [p.grad for p in net.parameters_in_order()]
    with torch.no_grad():
        free, clamped = plain_phases(net, x.detach(), -0.3 * error)
    clipped = sum(
        int((s.abs() == 1).sum() if units == "hard_tanh" else (s == 0).sum()) for s in clamped[1:-1]
    )
    assert clipped > 0  # the box's edges are exercised
    n_layers = len(net.layers)
    for l in range(1, n_layers + 1):
        span = 0.3 * 0.5 ** (n_layers - l)
        hebbian = clamped[l].t() @ clamped[l - 1] - free[l].t() @ free[l - 1]
        torch.testing.assert_close(update[2 * l - 2], -hebbian / span, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(
            update[2 * l - 1], -(clamped[l] - free[l]).sum(0) / span, rtol=1e-9, atol=1e-9
        )
    input_error = -(clamped[1] - free[1]) @ net.layers[0].weight / (0.3 * 0.5 ** (n_layers - 1))
    torch.testing.assert_close(x.grad, input_error, rtol=1e-9, atol=1e-9)


def test_clamped_phase_descends_the_energy_with_the_output_held():
    """Both phases of the update, as the learner settles them (40 sweeps from the free state),
    lower ``E`` with the output held: at ``y*`` (clamped) and at ``y`` (free, continued)."""
    net = strong_net(feedback_gain=0.5, clamped_steps=40, nudge=0.5, relative_nudge=False)
    weights = [layer.weight.detach() for layer in net.layers]
    biases = [layer.bias.detach() for layer in net.layers]
    x, error = torch.randn(16, 5), torch.randn(16, 3)
    free = free_states(net, x)
    clamped_output = free[-1] - 0.5 * error
    with torch.no_grad():
        base, difference = net.learner.perturbed_phases(
            net.layers, free[:-1], 0.5 * free[-1], -0.25 * error, True
        )
    clamped = [b + d for b, d in zip(base, difference, strict=True)]
    for start, end, output in ((free[:-1], clamped, clamped_output), (free[:-1], base, free[-1])):
        before = energy([*start, output], weights, biases, 0.5)
        after = energy([*end, output], weights, biases, 0.5)
        assert (after <= before + 1e-12).all() and (before - after).max() > 1e-3


def feedforward_gradient(net: LocalNetwork, x: torch.Tensor, error: torch.Tensor):
    """Backprop's gradient of the feedforward pass of the same hard-bounded units."""
    h = x
    for layer in net.layers[:-1]:
        h = layer(h).clamp(net.learner.low, net.learner.high)
    return torch.autograd.grad(net.layers[-1](h), net.parameters_in_order(), grad_outputs=error)


def chl_update(net: LocalNetwork, x: torch.Tensor, error: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad()
    net(x).backward(error)
    return [p.grad.clone() for p in net.parameters_in_order()]


def test_weak_feedback_and_small_clamping_give_backprops_gradient():
    """Xie & Seung 2003: with weak feedback the free phase is the feedforward pass and the
    ``gamma^(l-L)``-scaled Hebbian difference is backprop's gradient. Measured on ``[5, 8, 7,
    6, 3]`` under SB3's orthogonal init, batch 32: gamma 1e-3, nudge 1e-3: cosine 0.999999
    (every layer >= 0.999998); gamma 1 (full feedback), same weights: 0.33, 0.03 on the first
    layer."""
    torch.manual_seed(5)
    net = LocalNetwork(SPEC, "chl", feedback_gain=1e-3, nudge=1e-3, free_steps=20)
    net.init_orthogonal(2**0.5, 1.0)
    x, error = torch.randn(32, 5), torch.randn(32, 3)
    update, reference = chl_update(net, x, error), feedforward_gradient(net, x, error)
    for l in range(0, len(update), 2):
        assert cosine(update[l : l + 2], list(reference[l : l + 2])) >= 0.9999, l
    assert cosine(update, list(reference)) >= 0.99995
    net.learner.feedback_gain = 1.0  # strong feedback: another fixed point, another update
    strong = chl_update(net, x, error)
    assert cosine(strong[:2], list(reference[:2])) < 0.95


@pytest.mark.parametrize("depth", [2, 4, 8])
def test_float32_update_at_the_defaults_follows_backprop(depth):
    """At the defaults (gamma 0.01, nudge 0.1 of rms(e)), in float32, on ``[8, 64 x depth, 1]``
    under SB3's orthogonal init with outputs around 10 (a value head's size), against autograd
    through the same free phase on a float64 copy: every layer gets an update, cosine >= 0.999
    (measured 1.00000 on every layer at depths 2, 4, 8). Against backprop of the plain
    feedforward pass it is lower (the top-down halves): measured 0.996, 0.984, 0.950 at depths
    2, 4, 8 (worst layer 0.990, 0.972, 0.925)."""
    torch.manual_seed(depth)
    net = LocalNetwork(NetworkSpec(8, (64,) * depth, 1), "chl")
    net.init_orthogonal(2**0.5, 1.0)
    with torch.no_grad():
        net.layers[-1].bias.fill_(10.0)
    x, error = torch.randn(64, 8), torch.randn(64, 1)
    reference_net = copy.deepcopy(net)
    params = reference_net.parameters_in_order()
    y = reference_net.learner.forward_pass(reference_net.layers, x, record=False)[0]
    reference = torch.autograd.grad(y, params, grad_outputs=error)
    net.float()
    update = [g.double() for g in chl_update(net, x.float(), error.float())]
    for l in range(0, len(update), 2):
        assert update[l].any(), l
        assert cosine(update[l : l + 2], list(reference[l : l + 2])) >= 0.999, l
    if depth == 2:
        assert cosine(update, list(feedforward_gradient(reference_net, x, error))) >= 0.98


def test_no_hidden_layer_is_the_delta_rule():
    """Without hidden layers the clamped output against the free one is ``e^T x``, and the
    input's error ``e W``: backprop through a linear layer."""
    net = LocalNetwork(NetworkSpec(5, (), 3), "chl", nudge=0.7)
    x, error = torch.randn(8, 5, requires_grad=True), torch.randn(8, 3)
    net(x).backward(error)
    torch.testing.assert_close(net.layers[0].weight.grad, error.t() @ x.detach())
    torch.testing.assert_close(net.layers[0].bias.grad, error.sum(0))
    torch.testing.assert_close(x.grad, error @ net.layers[0].weight.detach())


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"nudge": 0.0}, ["nudge", "0.0", "> 0"]),
        ({"free_steps": 0}, ["chl", "free_steps", ">= 1"]),
        ({"clamped_steps": 2.5}, ["chl", "clamped_steps", "2.5"]),
        ({"dt": 0.0}, ["chl", "dt", "(0, 1]"]),
        ({"units": "tanh"}, ["chl units", "tanh", "hard_tanh"]),
        ({"coupling_gain": -1.0}, ["chl", "coupling_gain", "> 0"]),
        ({"feedback_gain": 0.0}, ["chl", "feedback_gain", "(0, 1]", "0.01"]),
        ({"nudge_steps": 3}, ["chl", "nudge_steps"]),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, words):
    with pytest.raises(ConfigError) as info:
        make_learner("chl", **kwargs)
    for word in words:
        assert word in str(info.value)
