"""Predictive coding: kernels against their formulas, the equivalences with backprop, the energy
descent, the learned feedback's locality and state, option errors and a PPO run from the CLI."""

import json
import subprocess
import sys
from itertools import pairwise

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.nn.functional import cosine_similarity

from biocredit.errors import ConfigError, UnknownNameError
from biocredit.learners import LocalNetwork, NetworkSpec, make_learner
from biocredit.learners.alignment import layer_cosines
from biocredit.learners.pc import (
    Coupling,
    error_message,
    feedback_grad,
    layer_couplings,
    mirror_step,
    output_step,
    output_stiffness,
    pc_weight_grads,
    prediction_error,
    unit_stiffness,
    value_step,
)

SPEC = NetworkSpec(6, (24, 16), 3, "tanh")


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.randn(8, 6), torch.randn(8, 3)


def grads_of(net: LocalNetwork, x: torch.Tensor, target: torch.Tensor):
    """Parameter gradients and input gradient for a mean squared error through ``net``."""
    x = x.clone().requires_grad_(True)
    net.zero_grad()
    (0.5 * (net(x) - target).pow(2).sum(1).mean()).backward()
    return [p.grad.clone() for p in net.parameters_in_order()], x.grad.clone()


def pc_like(reference: LocalNetwork, **kwargs) -> LocalNetwork:
    """A pc network with ``reference``'s forward weights."""
    net = LocalNetwork(reference.spec, "pc", **kwargs)
    net.load_state_dict(reference.state_dict(), strict=False)
    return net


def test_kernels_match_their_formulas():
    torch.manual_seed(2)
    x, mu, eps, above, B, fprime, pre = (
        torch.randn(4, 5),
        torch.randn(4, 5),
        torch.randn(4, 5),
        torch.randn(4, 3),
        torch.randn(3, 5),
        torch.rand(4, 5),
        torch.randn(4, 7),
    )
    beta = torch.tensor(0.3)
    torch.testing.assert_close(prediction_error(x, mu), x - mu)
    torch.testing.assert_close(error_message(above, B), above @ B)
    message = above @ B
    torch.testing.assert_close(
        value_step(x, eps, message, fprime, 1 / 0.2), x + 0.2 * (-eps + fprime * message)
    )
    coupling = Coupling(through=torch.rand(5), above=torch.rand(5), below=torch.rand(5))
    fprime_below = torch.rand(4, 7)
    slope, peak = fprime.abs(), fprime.abs().amax(1, keepdim=True)
    peak_below = fprime_below.abs().amax(1, keepdim=True)
    stiffness = unit_stiffness(slope, peak, coupling, peak_below, 0.2)
    expected = (
        1
        + fprime * fprime.amax(1, keepdim=True) * coupling.through
        + fprime * coupling.above
        + fprime_below.amax(1, keepdim=True) * coupling.below
    ) / 0.2
    torch.testing.assert_close(stiffness, expected)
    torch.testing.assert_close(
        value_step(x, eps, message, fprime, stiffness), x + (-eps + fprime * message) / expected
    )
    feedback = [torch.randn(7, 6), torch.randn(5, 7), torch.randn(3, 5)]  # [7, 5] hidden units
    B_below, B = feedback[1:]
    lower, top = layer_couplings(feedback, free_output=False)
    torch.testing.assert_close(top.through, B.abs().t() @ B.abs().sum(1))
    assert top.above is None  # a clamped output does not move
    torch.testing.assert_close(top.below, B_below.abs().sum(1))
    torch.testing.assert_close(lower.through, B_below.abs().t() @ B_below.abs().sum(1))
    torch.testing.assert_close(lower.above, B_below.abs().sum(0))
    assert lower.below is None  # the input does not move
    assert layer_couplings(feedback, free_output=True)[1].above is not None
    torch.testing.assert_close(output_stiffness(B, peak, 0.2), (1 + peak * B.abs().sum(1)) / 0.2)
    force = torch.randn(4, 5)
    torch.testing.assert_close(output_step(x, eps, force, 1 / 0.2), x + 0.2 * (-eps + force))
    grad_w, grad_b = pc_weight_grads(eps, pre, beta)
    torch.testing.assert_close(grad_w, -(eps.T @ pre) / beta)
    torch.testing.assert_close(grad_b, -eps.sum(0) / beta)
    E = torch.randn(5, 7)
    torch.testing.assert_close(
        feedback_grad(E, eps, pre, beta, decay=0.01), -(eps.T @ pre) / beta + 0.01 * E
    )


@pytest.mark.parametrize("nudge", [1e-3, 0.1, 1.0])
def test_fixed_prediction_with_symmetric_feedback_is_backprop(nudge, batch):
    """With eta = 1 the errors settle in one step per hidden layer to -beta x backprop's deltas,
    at any nudge; the input error too."""
    x, target = batch
    bp = LocalNetwork(SPEC, "bp")
    pc = pc_like(bp, formulation="fixed_prediction", feedback="symmetric", nudge=nudge)
    (g_pc, x_pc), (g_bp, x_bp) = grads_of(pc, x, target), grads_of(bp, x, target)
    for got, want in zip([*g_pc, x_pc], [*g_bp, x_bp], strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-9)


def test_fixed_prediction_needs_its_steps(batch):
    """One step short of the depth, the first layer has not heard of the error yet."""
    x, target = batch
    pc = LocalNetwork(
        SPEC, "pc", formulation="fixed_prediction", feedback="symmetric", steps=len(SPEC.hidden) - 1
    )
    grads, _ = grads_of(pc, x, target)
    assert torch.count_nonzero(grads[0]) == 0 and torch.count_nonzero(grads[2]) > 0


@pytest.mark.parametrize("output", ["nudged", "clamped"])
def test_iterative_symmetric_updates_approach_backprop(output, batch):
    x, target = batch
    bp = LocalNetwork(SPEC, "bp")
    pc = pc_like(bp, output=output, feedback="symmetric", steps=100, nudge=0.01)
    (g_pc, x_pc), (g_bp, x_bp) = grads_of(pc, x, target), grads_of(bp, x, target)
    cosines = [
        float(cosine_similarity(a.flatten(), b.flatten(), 0))
        for a, b in zip(g_pc, g_bp, strict=True)
    ]
    if output == "nudged":  # the settled errors are -beta x backprop's deltas, up to O(beta)
        assert min(cosines) >= 0.99, cosines
        assert float(cosine_similarity(x_pc.flatten(), x_bp.flatten(), 0)) >= 0.99
    else:  # the clamped output shares its error with the hidden layers: not backprop
        assert min(cosines) < 0.99, cosines


def test_iterative_inference_descends_the_energy(batch):
    """Symmetric feedback makes inference gradient descent on the (total) energy: monotone for
    a small step, from the forward pass's initialisation."""
    x, target = batch
    for output in ("nudged", "clamped"):
        net = LocalNetwork(
            SPEC, "pc", output=output, feedback="symmetric", steps=60, step_size=0.05
        )
        learner = net.learner
        with torch.no_grad():
            y, cache = learner.forward_pass(net.layers, x, record=True)
            error = (y - target) / len(x)
            beta = learner.output_nudge(error)
            settled = learner.settle(net.layers, cache, -beta * error, beta, record_energy=True)
        energies = settled.energies
        assert len(energies) == 61
        assert all(b <= a + 1e-15 for a, b in pairwise(energies)), (output, energies)
        assert energies[-1] < energies[0] - 1e-6


def _null_space_twin(net: LocalNetwork, x: torch.Tensor) -> LocalNetwork:
    """A copy whose upper weights change only in directions orthogonal to their inputs on this
    batch: the same forward pass, different transposes."""
    twin = LocalNetwork(
        net.spec, "pc", formulation="fixed_prediction", feedback=net.learner.feedback_mode
    )
    twin.load_state_dict(net.state_dict())
    with torch.no_grad():
        _, cache = net.learner.forward_pass(net.layers, x, record=True)
        for l in (1, 2):
            null = torch.linalg.svd(cache.inputs[l], full_matrices=True).Vh[-1]
            twin.layers[l].weight.add_(5.0 * torch.randn(twin.layers[l].out_features, 1) * null)
    return twin


@pytest.mark.parametrize("feedback", ["learned", "mirror", "random", "symmetric"])
def test_error_messages_never_read_forward_weights(feedback, batch):
    """Fixed predictions: learned and random feedback settle to the same hidden errors when W's
    transposes change behind an unchanged forward pass; symmetric feedback (the probe's control)
    does not. (Iterative inference moves the value nodes off the forward pass, so there the
    transport probe of tests/test_plausibility.py decides.)"""
    x, target = batch
    torch.manual_seed(5)
    net = LocalNetwork(SPEC, "pc", formulation="fixed_prediction", feedback=feedback, seed=0)
    twin = _null_space_twin(net, x)
    torch.testing.assert_close(net(x), twin(x))
    g_net, g_twin = grads_of(net, x, target)[0], grads_of(twin, x, target)[0]
    same = [
        torch.allclose(a, b, atol=1e-12, rtol=0) for a, b in zip(g_net[:4], g_twin[:4], strict=True)
    ]
    assert all(same) == (feedback != "symmetric"), same


def test_learned_feedback_messages_come_from_the_error_synapses(batch):
    """Iterative inference: with E copied from W the learned variant matches symmetric exactly,
    and its messages do not change when the forward weights are replaced."""
    x, target = batch
    symmetric = LocalNetwork(SPEC, "pc", feedback="symmetric", steps=10, step_size=0.3)
    learned = pc_like(symmetric, steps=10, step_size=0.3, feedback="learned")
    with torch.no_grad():
        for l, layer in enumerate(learned.layers):
            getattr(learned.learner, f"feedback_{l}").copy_(layer.weight)
    for got, want in zip(
        grads_of(learned, x, target)[0], grads_of(symmetric, x, target)[0], strict=True
    ):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    others = LocalNetwork(SPEC, "bp").layers
    for mine, theirs in zip(
        learned.learner.feedback_matrices(learned.layers),
        learned.learner.feedback_matrices(others),
        strict=True,
    ):
        assert mine is theirs
    assert learned.learner.feedback_matrices(others)[1] is not others[1].weight


def test_learned_feedback_follows_its_local_rule(batch):
    """Output layer: eps_L = -beta e at rest, so E_L.grad = e^T h_{L-1} + d E_L, the forward
    weights' own gradient plus decay; random feedback is a fixed buffer."""
    x, target = batch
    net = LocalNetwork(
        SPEC, "pc", formulation="fixed_prediction", feedback="learned", feedback_decay=0.01
    )
    fixed = LocalNetwork(SPEC, "pc", feedback="random")
    with torch.no_grad():
        y, cache = net.learner.forward_pass(net.layers, x, record=True)
    e = (y - target) / len(x)
    grads, _ = grads_of(net, x, target)
    E = net.learner.feedback_2
    torch.testing.assert_close(E.grad, e.T @ cache.inputs[2] + 0.01 * E.detach())
    torch.testing.assert_close(E.grad - 0.01 * E.detach(), grads[4])
    assert [name for name, _ in fixed.named_parameters() if "feedback" in name] == []
    assert "learner.feedback_2" in dict(net.named_parameters())


def test_save_load_carries_learned_feedback(tmp_path, batch):
    x, target = batch
    net = LocalNetwork(SPEC, "pc", feedback="learned", seed=0)
    for _ in range(3):
        grads_of(net, x, target)
    save_file(net.state_dict(), str(tmp_path / "pc.safetensors"))
    copy = LocalNetwork(SPEC, "pc", feedback="learned", seed=1)
    assert not torch.equal(copy.learner.feedback_1, net.learner.feedback_1)
    copy.load_state_dict(load_file(str(tmp_path / "pc.safetensors")))
    for l in range(3):
        assert torch.equal(
            getattr(copy.learner, f"feedback_{l}"), getattr(net.learner, f"feedback_{l}")
        )
    for got, want in zip(grads_of(copy, x, target)[0], grads_of(net, x, target)[0], strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"formulation": "iterativ"}, "Did you mean 'iterative'"),
        ({"feedback": "symetric"}, "Did you mean 'symmetric'"),
        ({"output": "clamp"}, "Did you mean 'clamped'"),
        ({"steps": -1}, "'steps' must be an integer >= 0 or null, got -1"),
        ({"steps": 2.5}, "'steps' must be an integer"),
        ({"step_size": 0.0}, "'step_size' must be in (0, 1], got 0.0"),
        ({"step_size": 1.5}, "'step_size' must be in (0, 1], got 1.5"),
        ({"nudge": 0}, "'nudge' must be > 0, got 0"),
        ({"feedback_decay": -1.0}, "'feedback_decay' must be >= 0, got -1.0"),
        ({"mirror_rate": 0.0}, "'mirror_rate' must be in (0, 1], got 0.0"),
        ({"mirror_init_samples": -1}, "'mirror_init_samples' must be an integer >= 0, got -1"),
        ({"init": "normal"}, "Unknown feedback init 'normal'"),
        ({"inference_steps": 3}, "Learner 'pc' does not accept these options"),
    ],
)
def test_bad_options_are_clear(kwargs, message):
    with pytest.raises(ConfigError) as info:
        make_learner("pc", **kwargs)
    assert message in str(info.value)
    if "Did you mean" in message:
        assert isinstance(info.value, UnknownNameError)


@pytest.mark.slow
def test_ppo_with_pc_from_the_cli(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "biocredit.cli", "train", "--learner", "pc", "--steps", "2048"]
    command += ["--seed", "0", "--threads", "1", "--no-progress", "--out", str(out)]
    command += ["--set", "learner_kwargs.feedback=learned", "--set", "eval_episodes=2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["learner"] == "pc" and summary["status"] == "done"
    assert summary["steps"] >= 2048 and summary["eval_episodes"] == 2  # ran and evaluated
    assert summary["final_return_mean"] is not None


def test_learned_feedback_mirrors_the_forward_weights(batch):
    """Error synapses get the forward weights' own gradient, so under SGD with the same weight
    decay their gap to W shrinks by (1 - lr decay) per step (Kolen-Pollack), without reading W."""
    x, target = batch
    lr, decay = 0.1, 0.05
    net = LocalNetwork(SPEC, "pc", feedback="learned", feedback_decay=decay)
    weights = [layer.weight for layer in net.layers]
    feedback = net.learner.feedback_matrices([])
    optimizer = torch.optim.SGD(
        [{"params": weights, "weight_decay": decay}, {"params": feedback}], lr=lr
    )

    def gaps():
        return [
            float((layer.weight - getattr(net.learner, f"feedback_{l}")).detach().norm())
            for l, layer in enumerate(net.layers)
        ]

    before = gaps()
    for _ in range(20):
        grads_of(net, x, target)
        optimizer.step()
    for now, then in zip(gaps(), before, strict=True):
        assert now == pytest.approx(then * (1 - lr * decay) ** 20, rel=1e-9)


def test_mirror_step_matches_its_formula():
    torch.manual_seed(3)
    feedback, noise, response = torch.randn(4, 5), torch.randn(7, 5), torch.randn(7, 4)
    want = 0.9 * feedback + 0.1 * response.T @ noise / 7
    mirror_step(feedback, noise, response, 0.1)
    torch.testing.assert_close(feedback, want)


def test_mirror_feedback_tracks_forward_weights_under_adam(batch):
    """Weight mirror: the error synapses come to mirror W from W's response to noise alone,
    while Adam moves W."""
    x, target = batch
    torch.manual_seed(4)
    net = LocalNetwork(SPEC, "pc", feedback="mirror", mirror_rate=0.02)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)

    def alignment():
        return [
            float(cosine_similarity(getattr(net.learner, f"feedback_{l}").flatten(), w, dim=0))
            for l, w in enumerate(layer.weight.detach().flatten() for layer in net.layers)
        ]

    assert max(alignment()) < 0.3  # independent random initial error synapses
    for _ in range(500):
        grads_of(net, x, target)
        optimizer.step()
    # 8 noise samples per update averaged over ~1 / 0.02 updates: a sampling error of ~0.2
    assert min(alignment()) > 0.95, alignment()


def test_mirror_phase_before_learning_starts_the_error_synapses_at_the_mirror():
    """``mirror_init_samples``: the error synapses start at the noise estimate of W (after the
    network's init and after init_orthogonal), not at random; sampling error ~ sqrt(n_in / k)."""

    def alignment(net):
        return [
            float(cosine_similarity(getattr(net.learner, f"feedback_{l}").flatten(), w, dim=0))
            for l, w in enumerate(layer.weight.detach().flatten() for layer in net.layers)
        ]

    torch.manual_seed(5)
    net = LocalNetwork(SPEC, "pc", feedback="mirror", mirror_init_samples=4096)
    assert min(alignment(net)) > 0.98, alignment(net)
    net.init_orthogonal(2**0.5, 1.0)  # new weights: the mirror phase runs again
    assert min(alignment(net)) > 0.98, alignment(net)
    plain = LocalNetwork(SPEC, "pc", feedback="mirror")
    assert max(alignment(plain)) < 0.3


def test_stiffness_bounds_the_row_sums_of_the_energys_hessian():
    """Gershgorin: at the forward pass (every error 0, so F's Hessian in the hidden value nodes is
    its Gauss-Newton part exactly) each unit's ``P_i`` (step size 1) is at least the row sum of
    ``|H|``: every eigenvalue of ``P^-1 H`` lies in (0, 1]."""
    net = LocalNetwork(NetworkSpec(3, (5, 4), 2, "tanh"), "pc", feedback="symmetric")
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(4.0)  # large weights: where a unit's own curvature is not enough
    x = torch.randn(1, 3)
    W = [layer.weight for layer in net.layers]
    b = [layer.bias for layer in net.layers]
    with torch.no_grad():
        a1 = x @ W[0].T + b[0]
        a2 = torch.tanh(a1) @ W[1].T + b[1]
        y = torch.tanh(a2) @ W[2].T + b[2]

    def energy(hidden):
        x1, x2 = hidden[:5], hidden[5:]
        eps = [
            x1 - a1[0],
            x2 - (W[1] @ torch.tanh(x1) + b[1]),
            y[0] - (W[2] @ torch.tanh(x2) + b[2]),
        ]
        return sum(e.square().sum() for e in eps) / 2

    hessian = torch.autograd.functional.hessian(energy, torch.cat([a1[0], a2[0]]))
    couplings = layer_couplings(W, free_output=False)  # symmetric feedback: B = W
    slopes = [1 - torch.tanh(a1).square(), 1 - torch.tanh(a2).square()]
    peaks = [slope.amax(1, keepdim=True) for slope in slopes]
    stiffness = torch.cat(
        [
            unit_stiffness(slopes[0], peaks[0], couplings[0], None, 1.0)[0],
            unit_stiffness(slopes[1], peaks[1], couplings[1], peaks[0], 1.0)[0],
        ]
    )
    assert torch.all(stiffness >= hessian.abs().sum(1) - 1e-12), (stiffness, hessian.abs().sum(1))
    eigenvalues = torch.linalg.eigvals(hessian / stiffness[:, None]).real
    assert eigenvalues.max() <= 1 + 1e-12 and eigenvalues.min() > 0


def test_inference_stays_aligned_with_backprop_when_the_weights_grow():
    """A trained critic's output layer grows large (values of 100 from tanh units). With each
    unit's step set by its own curvature alone (the rule before the row-sum bound), a
    [4, 64, 64, 1] network with a 30x or 100x output layer got layer updates of cosine -0.07 to
    0.18 to backprop's on this batch; at the defaults they measured 0.87-1.0."""
    torch.manual_seed(0)
    for scale in (1.0, 30.0, 100.0):
        net = LocalNetwork(NetworkSpec(4, (64, 64), 1, "tanh"), "pc", feedback="symmetric")
        bp = LocalNetwork(net.spec, "bp")
        with torch.no_grad():
            net.layers[-1].weight.mul_(scale)
        bp.load_state_dict(net.state_dict(), strict=False)
        x, target = torch.randn(256, 4) * 2, torch.randn(256, 1)
        (g_pc, _), (g_bp, _) = grads_of(net, x, target), grads_of(bp, x, target)
        assert min(layer_cosines(g_pc, g_bp)) > 0.85, scale
